# Copyright (c) EVLab contributors.
"""Every config under configs/ loads (without a misspelt-key warning) and
builds its model on the CPU, without touching the network."""
import glob
import os.path as osp
import socket

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from projects.common import runtime

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                       recursive=True)
    if '_base_' not in p)


def test_configs_are_found():
    assert len(CONFIGS) >= 3


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f'a config tried to reach the network: {args}')
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_model(config, no_network):
    cfg = Config.fromfile(osp.join(ROOT, config))
    assert cfg.get('default_scope') in ('mmdet', 'mmseg', 'mmpretrain')
    # no top-level key of ours looks like a misspelt Runner key
    assert runtime.unknown_key_warnings(cfg, config) == []
    init_default_scope(cfg.default_scope)
    # building must not download; init_weights (the Runner's job) may load
    # pretrained weights that real-dataset configs name
    model = MODELS.build(cfg.model)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > 0
    assert all(p.device.type == 'cpu' for p in model.parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())
