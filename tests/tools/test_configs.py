# Copyright (c) EVLab contributors.
"""Every config under configs/ loads (without a misspelt-key warning) and
builds its model on the CPU, without touching the network."""
import glob
import json
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


def _stage_inputs(cfg: Config, tmp_path) -> None:
    """Point a search stage's input from an earlier stage (a JSON under
    work_dirs/: HourNAS stage 2's ``fixed_vital`` genotype, Hit-Detector
    stage B's ``sub_spaces``) at a file such as that stage writes, when the
    stage has not run here."""
    if cfg.model.get('type') == 'HitDetSearcher' and \
            cfg.model.get('op_space') is None and \
            not cfg.model.get('sub_spaces'):
        # Hit-Detector stage A over the whole 28-op space is a supernet of
        # 612 M parameters (13 s to build): built here with 3 of its ops
        # at every position, every other key as configured
        from projects.hit_detector.search import WHOLE_SPACE
        cfg.model.op_space = list(WHOLE_SPACE[:3])
    sub_spaces = cfg.model.get('sub_spaces')
    if isinstance(sub_spaces, str) and not osp.isfile(sub_spaces):
        # Hit-Detector stage B: the screening's output, the first ops of
        # the stage A space per component
        from projects.hit_detector.search import WHOLE_SPACE
        space = cfg.model.op_space or WHOLE_SPACE
        path = tmp_path / 'sub_spaces.json'
        path.write_text(json.dumps(dict(sub_spaces={
            c: list(space)[:2] for c in ('backbone', 'neck', 'head')})))
        cfg.model.sub_spaces = str(path)
    backbone = cfg.model.get('backbone', {})
    path = backbone.get('fixed_vital')
    if isinstance(path, str) and not osp.isfile(path):
        from projects.hournas.space import chain, find_vital
        blocks = chain(backbone.get('arch', 'imagenet'))
        vital = find_vital(blocks)
        stage1 = tmp_path / 'best_genotype.json'
        stage1.write_text(json.dumps(dict(genotype=[
            'ir_k3_e1' if i in vital else 'skip'
            for i in range(len(blocks))])))
        backbone.fixed_vital = str(stage1)


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_model(config, no_network, tmp_path):
    cfg = Config.fromfile(osp.join(ROOT, config))
    _stage_inputs(cfg, tmp_path)
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
