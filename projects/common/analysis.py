# Copyright (c) EVLab contributors.
"""What the analysis and deployment tools share: the model a config
deploys, one input of the right shape for it, and a plain ``forward(x)``
that runs the model's ``mode='tensor'`` path on that input.

Used by ``tools/analysis_tools/get_flops.py``, ``benchmark.py``,
``tools/deployment/pytorch2onnx.py`` and ``tools/docs/count_complexity.py``.
Works for the three hosts (mmpretrain, mmdet, mmseg); a distiller deploys
its student, and its teacher is reported apart. :func:`last_validation`
reads a run's last validation for the seed scripts of ``tools/misc``.
"""
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict

from .errors import EVLabError

HOSTS = ('mmpretrain', 'mmdet', 'mmseg')
# proposals given to a two-stage detector's RoI head (fixed boxes, so
# that counts do not depend on what a random RPN happens to propose)
NUM_PROPOSALS = 1000


class AnalysisError(EVLabError):
    """A config or model cannot be analysed or exported as asked."""


def deployed_model_cfg(cfg: Config) -> Tuple[ConfigDict, str,
                                             Optional[Tuple[ConfigDict,
                                                            str]]]:
    """The model a config deploys, its scope, and the teacher's.

    Returns:
        tuple: ``(model_cfg, scope, teacher)`` where ``teacher`` is None
        for a plain model and ``(teacher_model_cfg, teacher_scope)`` for a
        distiller, whose deployed model is its student.
    """
    from .distill import load_model_config

    scope = cfg.get('default_scope')
    model_cfg = cfg.model
    if cfg.get('data_preprocessor') is not None and \
            model_cfg.get('data_preprocessor') is None and \
            'student' not in model_cfg:
        model_cfg = ConfigDict(model_cfg,
                               data_preprocessor=cfg.data_preprocessor)
    teacher = None
    if 'student' in model_cfg:
        student, student_scope = load_model_config(model_cfg.student)
        if student.get('data_preprocessor') is None and \
                cfg.get('data_preprocessor') is not None:
            student = ConfigDict(student,
                                 data_preprocessor=cfg.data_preprocessor)
        t_cfg, t_scope = load_model_config(model_cfg.teacher)
        teacher = (t_cfg, t_scope or scope)
        model_cfg, scope = student, student_scope or scope
    return model_cfg, scope, teacher


def build(model_cfg: ConfigDict, scope: str,
          device: str = 'cpu') -> nn.Module:
    """Build ``model_cfg`` in ``scope`` on ``device``, in eval mode.

    On the meta device parameters have shapes and no storage; a model whose
    constructor reads a tensor's value (``.item()``, e.g. mmpretrain's
    drop-path rates) is built on the CPU instead.
    """
    from mmengine.registry import MODELS, DefaultScope

    with DefaultScope.overwrite_default_scope(scope):
        try:
            with torch.device(device):
                model = MODELS.build(model_cfg)
        except RuntimeError as e:
            if device != 'meta' or 'meta' not in str(e):
                raise
            model = MODELS.build(model_cfg)
    return model.eval()


def build_deployed(cfg: Config, device: str = 'cpu',
                   checkpoint: Optional[str] = None) -> nn.Module:
    """The deployed model of ``cfg`` (a distiller's student), in eval
    mode, with the weights of ``checkpoint`` when given (a distiller's
    checkpoint is reduced to its student)."""
    model_cfg, scope, _ = deployed_model_cfg(cfg)
    model = build(model_cfg, scope, device)
    if checkpoint is not None:
        load_deployed_weights(model, checkpoint)
    return model


def load_deployed_weights(model: nn.Module, checkpoint: str) -> None:
    """Load ``checkpoint`` into the deployed ``model``: a plain model's
    checkpoint, or a distiller's (its ``student.*`` weights)."""
    from .distill import load_weights
    load_weights(model, checkpoint, what='model', student_of_distiller=True)


def host_of(scope: str) -> str:
    """The host library of a scope: ``'mmpretrain'``, ``'mmdet'`` or
    ``'mmseg'``."""
    if scope not in HOSTS:
        raise AnalysisError(f'default_scope {scope!r} is not one of the '
                            f'hosts {HOSTS}')
    return scope


def _pair(size: Any, wh: bool) -> Tuple[int, int]:
    """(H, W) of an int or a pair given as (w, h) (``wh``) or (h, w)."""
    if isinstance(size, int):
        return (size, size)
    return (int(size[1]), int(size[0])) if wh else (int(size[0]),
                                                    int(size[1]))


def _pipeline_shape(pipeline: Sequence[dict],
                    train: bool = False) -> Optional[Tuple[int, int]]:
    """(H, W) that a pipeline gives its images, when it fixes one: a
    test pipeline's crop (else its resize), a train pipeline's crop."""
    crop = resize = None
    for t in pipeline or []:
        kind = str(t.get('type', '')).split('.')[-1]
        if kind == 'CenterCrop' and t.get('crop_size') is not None:
            crop = _pair(t['crop_size'], wh=True)  # mmpretrain: (w, h)
        elif kind == 'RandomResizedCrop' and t.get('scale') is not None:
            crop = _pair(t['scale'], wh=True)
        elif kind == 'RandomCrop' and t.get('crop_size') is not None:
            crop = _pair(t['crop_size'], wh=False)  # mmseg: (h, w)
        elif kind in ('Resize', 'RandomResize') and not train and \
                t.get('scale') is not None:
            resize = _pair(t['scale'], wh=True)  # mmdet / mmseg: (w, h)
    return crop or resize


def _dataset(cfg: Config, key: str) -> dict:
    ds = (cfg.get(key) or {}).get('dataset', {}) or {}
    while 'dataset' in ds:  # RepeatDataset, ClassBalancedDataset...
        ds = ds['dataset']
    return ds


def input_shape(cfg: Config) -> Tuple[int, int]:
    """(H, W) of one test input of ``cfg``: a segmentor's sliding-window
    crop, else the test (or val) pipeline's crop or resize, else the train
    pipeline's crop, else 224x224; rounded up to the data preprocessor's
    ``pad_size_divisor`` (mmdet pads every batch to it)."""
    model, _, _ = deployed_model_cfg(cfg)
    shape = None
    test_cfg = model.get('test_cfg') or {}
    if test_cfg.get('mode') == 'slide' and test_cfg.get('crop_size'):
        shape = _pair(test_cfg['crop_size'], wh=False)  # mmseg: (h, w)
    for key, train in (('test_dataloader', False), ('val_dataloader', False),
                       ('train_dataloader', True)):
        if shape is None:
            shape = _pipeline_shape(_dataset(cfg, key).get('pipeline'),
                                    train)
    h, w = shape or (224, 224)
    div = (model.get('data_preprocessor') or {}).get('pad_size_divisor')
    if div:
        h, w = -(-h // div) * div, -(-w // div) * div
    return (h, w)


def is_two_stage(model: nn.Module) -> bool:
    return hasattr(model, 'roi_head') and hasattr(model, 'rpn_head')


class TensorForward(nn.Module):
    """``forward(x)`` = the model's ``mode='tensor'`` path on ``x``.

    A two-stage detector runs its backbone, neck, RPN head and RoI head on
    :data:`NUM_PROPOSALS` fixed proposals (random boxes, seeded), not on
    what its RPN proposes (which needs NMS and image metadata). The
    wrapped model is ``self.model``, so module names in a per-module
    breakdown read ``model.backbone...``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.two_stage = is_two_stage(model)

    def forward(self, x: torch.Tensor) -> Any:
        if not self.two_stage:
            return self.model(x, mode='tensor')
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        n, _, h, w = x.shape
        # numpy, not torch: a jit trace records the boxes as a constant
        rng = np.random.RandomState(0)
        xy = rng.rand(NUM_PROPOSALS, 2) * (w, h)
        wh = rng.rand(NUM_PROPOSALS, 2) * (w, h) / 4
        boxes = torch.from_numpy(np.concatenate(
            [xy, np.minimum(xy + wh, (w, h))], axis=1)).float().to(x.device)
        meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                    batch_input_shape=(h, w), scale_factor=(1., 1.))
        samples = [DetDataSample(metainfo=meta) for _ in range(n)]
        props = [InstanceData(bboxes=boxes.clone()) for _ in range(n)]
        feats = self.model.extract_feat(x)
        rpn = self.model.rpn_head(feats)
        return rpn, self.model.roi_head(feats, props, samples)


def example_input(shape: Sequence[int], device: Any = 'cpu',
                  seed: int = 0) -> torch.Tensor:
    """A seeded N(0, 1) input of ``shape`` (N, C, H, W) on ``device``
    (on the meta device: shapes only)."""
    if torch.device(device).type == 'meta':
        return torch.empty(*shape, device='meta')
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(device)


# -- command-line pieces the analysis tools share ----------------------------
def add_input_args(parser, json_out: bool = True) -> None:
    """``--shape H W`` (or one side), ``--cfg-options`` and, with
    ``json_out``, ``--json OUT`` on an ``argparse`` parser."""
    from mmengine.config import DictAction

    parser.add_argument('--shape', type=int, nargs='+',
                        help='input H W (or one side); default: the '
                        'test pipeline\'s size, else 224')
    if json_out:
        parser.add_argument('--json', help='also write the figures here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)


def shape_arg(parser, args) -> Optional[Tuple[int, int]]:
    """(H, W) from ``--shape`` (None when not given); a wrong count of
    numbers is a usage error."""
    if args.shape is None:
        return None
    if len(args.shape) not in (1, 2) or min(args.shape) < 1:
        parser.error(f'--shape takes H W or one side, got {args.shape}')
    return tuple((args.shape * 2)[:2])


def write_json(result: dict, path: Optional[str]) -> None:
    """Write ``result`` to ``path`` (when given) and say so."""
    if not path:
        return
    import json
    with open(path, 'w') as f:
        json.dump(result, f, indent=1)
    print(f'\nwrote {path}')


def last_validation(work_dir: str,
                    keys: Sequence[str]) -> Dict[str, float]:
    """The metrics ``keys`` of the last validation of the newest run in
    ``work_dir`` (its ``<timestamp>/vis_data/scalars.json``)."""
    import glob
    import json
    import os.path as osp
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no scalars.json under {work_dir!r}')
    with open(files[-1]) as f:
        rows = [json.loads(line) for line in f]
    vals = [r for r in rows if keys[0] in r]
    if not vals:
        raise ValueError(f'{files[-1]!r} holds no {keys[0]} row')
    return {k: float(vals[-1][k]) for k in keys}
