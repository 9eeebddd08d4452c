# Copyright (c) EVLab contributors.
"""Fixtures for the manifold KD tests: the toy configs (tiny ViTs, random
teacher) and a preprocessed toy batch."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONFIGS = osp.join(ROOT, 'configs', 'manifold_kd')


def toy_config(role: str) -> Config:
    """``'manifold'`` (distiller), ``'softkd'``, ``'student'`` or
    ``'teacher'``; the teacher's CNN embedding without its pretrained
    checkpoint (tests never need the trained baseline)."""
    cfg = Config.fromfile(osp.join(CONFIGS, f'toy_vit_{role}.py'))
    if role == 'teacher':
        cfg.model.backbone.cnn.init_cfg = None
    return cfg


_BUILT = {}


def _build(role: str, overrides: dict):
    from mmpretrain.registry import MODELS

    import projects.manifold_kd  # noqa: F401  (registers)
    init_default_scope('mmpretrain')
    cfg = toy_config(role)
    if role in ('manifold', 'softkd'):
        cfg.model.teacher_ckpt = None
        cfg.model.allow_random_teacher = True
    cfg.merge_from_dict({f'model.{k}': v for k, v in overrides.items()})
    cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def build(role: str = 'manifold', **model_overrides):
    """A toy model; the distiller gets a random teacher unless overridden.
    Built as the Runner does (top-level data_preprocessor merged in).
    Override keys may be dotted (``**{'student.train_cfg': ...}``).
    Every call returns a fresh copy (same seeded weights per key)."""
    init_default_scope('mmpretrain')
    key = (role, repr(sorted(model_overrides.items())))
    if key not in _BUILT:
        torch.manual_seed(0)
        _BUILT[key] = _build(role, model_overrides)
    return copy.deepcopy(_BUILT[key])


@pytest.fixture(scope='session')
def build_model():
    return build


@pytest.fixture(scope='session')
def configs_dir():
    return CONFIGS


def _make_batch(model, seed: int = 0, batch: int = 4, training=True):
    """``batch`` uint8 64x64 images with labels, through the model's
    data preprocessor (batch augments apply when ``training``)."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (3, 64, 64), generator=g,
                            dtype=torch.uint8) for _ in range(batch)]
    samples = [DataSample().set_gt_label(i % 10) for i in range(batch)]
    return model.data_preprocessor(
        dict(inputs=images, data_samples=samples), training)


@pytest.fixture(scope='session')
def make_batch():
    return _make_batch
