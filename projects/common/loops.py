# Copyright (c) EVLab contributors.
"""A base for train loops that search or prune a trained model instead of
training it (HourNAS's and Hit-Detector's evolution search, Patch
Slimming's token search): ``train_cfg=dict(type=<the loop>, ...)`` runs
them through ``tools/train.py``."""
import os.path as osp
from typing import Optional

from mmengine.runner import BaseLoop

from .errors import EVLabError


class TrainedModelLoop(BaseLoop):
    """A loop over a trained model: no epochs or iterations of its own
    (mmengine's ``Runner.train`` reads them before ``run``), the model
    unwrapped from DDP, and the trained weights loaded from a checkpoint
    file or a work dir."""

    @property
    def iter(self) -> int:
        return 0

    @property
    def max_iters(self) -> int:
        return 0

    @property
    def epoch(self) -> int:
        return 0

    @property
    def max_epochs(self) -> int:
        return 0

    @property
    def model(self):
        m = self.runner.model
        return getattr(m, 'module', m)

    def load_trained(self, path: Optional[str], what: str) -> Optional[str]:
        """Load ``path`` (a checkpoint, or a work dir: its newest
        checkpoint) strictly into the model; the file used (None when
        ``path`` is None: the model keeps its weights, e.g. ``load_from``)."""
        if path is None:
            return None
        from .checkpoint import find_resume_checkpoint
        from .distill import load_weights
        if osp.isdir(path):
            found = find_resume_checkpoint(path)
            if found is None:
                raise EVLabError(f'{what} checkpoint: no checkpoint in '
                                 f'{path!r}; train the {what} first')
            path = found
        load_weights(self.model, path, strict=True, what=what)
        return osp.abspath(path)
