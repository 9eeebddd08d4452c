# Copyright (c) EVLab contributors.
"""Training-time schedule of DeFeat's distillation weights."""
import math

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DeFeatLossDecayHook(Hook):
    """Scale every DeFeat term by ``1 - epoch / max_epochs`` (``'linear'``)
    or ``(1 + cos(pi * epoch / max_epochs)) / 2`` (``'cosine'``), set at the
    start of each epoch (official option, off in the released configs).

    Args:
        mode (str): ``'linear'`` or ``'cosine'``. Defaults to ``'linear'``.
    """

    def __init__(self, mode: str = 'linear'):
        if mode not in ('linear', 'cosine'):
            raise ValueError(f'mode must be "linear" or "cosine", got '
                             f'{mode!r}')
        self.mode = mode

    def factor(self, epoch: int, max_epochs: int) -> float:
        progress = min(max(epoch / max(max_epochs, 1), 0.), 1.)
        if self.mode == 'linear':
            return 1. - progress
        return (1. + math.cos(math.pi * progress)) / 2.

    def before_train_epoch(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if not hasattr(model, 'kd_scale'):
            raise TypeError(f'DeFeatLossDecayHook needs a DeFeatDistiller, '
                            f'the model is {type(model).__name__}')
        model.kd_scale = self.factor(runner.epoch, runner.max_epochs)
