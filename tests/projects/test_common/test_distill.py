# Copyright (c) EVLab contributors.
"""The shared distillation core: model configs, feature recorders, student
export; host-agnostic (DeFeat's tests cover the distiller itself)."""
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from projects.common.distill import (
    DistillError,
    FeatureRecorder,
    load_model_config,
    student_checkpoint,
)


def test_the_core_imports_no_host_library():
    code = ('import sys; import projects.common.distill; '
            'print(sorted(m for m in sys.modules '
            'if m.split(".")[0] in ("mmdet", "mmseg", "mmpretrain")))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True,
                         env={'PYTHONPATH': ':'.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'


def test_model_config_from_package_path_with_overrides():
    cfg, scope = load_model_config(dict(
        cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
        backbone=dict(depth=18, init_cfg=None), neck=dict(out_channels=64)))
    assert scope == 'mmdet'
    assert cfg.type == 'RetinaNet'
    assert cfg.backbone.depth == 18 and cfg.backbone.init_cfg is None
    assert cfg.backbone.frozen_stages == 1  # untouched keys stay
    assert cfg.neck.out_channels == 64 and cfg.neck.num_outs == 5


def test_model_config_forms_and_errors(tmp_path):
    cfg, scope = load_model_config(dict(type='Foo', depth=3))
    assert scope is None and cfg.depth == 3
    cfg, scope = load_model_config(dict(model=dict(type='Foo'),
                                        default_scope='mmpretrain'))
    assert (cfg.type, scope) == ('Foo', 'mmpretrain')
    with pytest.raises(DistillError, match='missing_teacher.py'):
        load_model_config(str(tmp_path / 'missing_teacher.py'))
    (tmp_path / 'no_model.py').write_text('x = 1\n')
    with pytest.raises(DistillError, match='no `model` key'):
        load_model_config(str(tmp_path / 'no_model.py'))
    with pytest.raises(DistillError, match='cannot build a model'):
        load_model_config(42)


class Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        return self.body(x)


def test_feature_recorder_by_module_path():
    net = Net()
    x = torch.randn(5, 3)
    with FeatureRecorder(net, ['body.0', 'body']) as rec:
        out = net(x)
    assert torch.equal(rec['body'], out)
    assert torch.equal(rec['body.0'], net.body[0](x))
    # detached on exit: a later forward records nothing
    net(torch.randn(5, 3))
    assert torch.equal(rec['body'], out)
    assert not net.body[0]._forward_hooks
    # outputs are cleared on entry: no stale feature of an earlier batch
    rec2 = FeatureRecorder(net, ['unused'])
    with rec2:
        net(x)
        with pytest.raises(DistillError, match="'unused' did not run"):
            rec2['unused']
    with pytest.raises(DistillError, match="no module 'body.7'"):
        FeatureRecorder(net, ['body.7'])


def test_student_checkpoint():
    ckpt = {'meta': {'epoch': 3},
            'state_dict': {'student.a.weight': torch.ones(1),
                           'teacher.a.weight': torch.zeros(1),
                           'neck_adapters.0.weight': torch.zeros(1)},
            'optimizer': {}}
    out = student_checkpoint(ckpt)
    assert set(out) == {'meta', 'state_dict'}
    assert list(out['state_dict']) == ['a.weight']
    assert out['meta'] == {'epoch': 3}
    with pytest.raises(DistillError, match=r"no 'student\.' weights.*"
                       r"\['teacher'\]"):
        student_checkpoint({'state_dict': {'teacher.w': torch.ones(1)}})
