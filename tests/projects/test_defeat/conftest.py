# Copyright (c) EVLab contributors.
"""Fixtures for the DeFeat tests: the toy distillers (tiny, random teacher)
and a hand-made batch with boxes on several FPN levels."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONFIGS = osp.join(ROOT, 'configs', 'defeat')
KINDS = ('retinanet', 'faster_rcnn')


def toy_config(kind: str, role: str) -> Config:
    return Config.fromfile(osp.join(CONFIGS, f'toy_{kind}_{role}.py'))


def build(kind: str, role: str = 'defeat', **model_overrides):
    """A toy model; the distiller gets a random teacher unless overridden."""
    from mmdet.registry import MODELS

    import projects.defeat  # noqa: F401  (registers)
    init_default_scope('mmdet')
    cfg = toy_config(kind, role)
    if role == 'defeat':
        cfg.model.teacher_ckpt = None
        cfg.model.allow_random_teacher = True
    cfg.model.update(model_overrides)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.fixture(scope='session')
def build_model():
    return build


@pytest.fixture(scope='session')
def configs_dir():
    return CONFIGS


def _make_batch(model, seed: int = 0, size=(96, 128)):
    """Two preprocessed images with boxes of several sizes (levels 0-1)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    h, w = size
    boxes = [
        torch.tensor([[10., 10., 40., 50.], [50., 20., 120., 90.],
                      [0., 0., 127., 95.]]),
        torch.tensor([[4., 60., 20., 80.], [64., 8., 100., 40.]]),
    ]
    labels = [torch.tensor([0, 3, 1]), torch.tensor([2, 4])]
    samples = []
    for b, lab in zip(boxes, labels):
        ds = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
            scale_factor=(1., 1.)))
        ds.gt_instances = InstanceData(bboxes=b, labels=lab)
        samples.append(ds)
    images = [
        torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        for _ in range(2)
    ]
    return model.data_preprocessor(
        dict(inputs=images, data_samples=samples), True)


@pytest.fixture(scope='session')
def make_batch():
    return _make_batch
