# Copyright (c) EVLab contributors.
"""Hit-Detector's operators (spec 2.1): names, output shapes, the shortcut
rule, and the analytic MACs and parameters against counters."""
import random

import pytest
import torch
from mmengine.analysis import FlopAnalyzer

from projects.common.complexity import count_params
from projects.common.nas.ops import parse_op
from projects.hit_detector.ops import (
    HEAD_OPS,
    NECK_OPS,
    build_op,
    parse_op_name,
)

OPS = sorted(set(NECK_OPS) | set(HEAD_OPS) | {'ir_k3_e3_r2', 'ir_k7_e6',
                                              'ir_k3_e1'})


def test_names_normalise_the_dilation():
    assert parse_op_name('ir_k3_e3_r2').name == 'ir_k3_e3_d2'
    assert parse_op_name('ir_k3_e3_d2') == parse_op_name('ir_k3_e3_r2')
    assert parse_op_name('ir_k3_e6_d1').name == 'ir_k3_e6'
    spec = parse_op_name('sd_k5_d3')
    assert (spec.kind, spec.kernel, spec.dilation) == ('sd', 5, 3)
    assert spec.padding == 6
    assert parse_op_name('conv_1x1').kind == 'conv_1x1'
    # HourNAS's names still parse as before
    assert parse_op('ir_k5_e6_se').se and parse_op('skip').kind == 'skip'


@pytest.mark.parametrize('name', ['skip', 'ir_k3_e3_se', 'ir_k4_e3',
                                  'sd_k3', 'ir_k3_e0', 'sd_k3_d0', 'conv3'])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError, match='op'):
        parse_op_name(name)


@pytest.mark.parametrize('name', OPS)
def test_shape_shortcut_macs_and_params(name):
    rng = random.Random(name)
    for _ in range(3):
        c_in, c_out = rng.choice([8, 16]), rng.choice([8, 16, 24])
        stride = rng.choice([1, 2])
        h, w = rng.randint(5, 13), rng.randint(5, 13)
        op = build_op(name, c_in, c_out, stride).eval()
        x = torch.randn(2, c_in, h, w)
        with torch.no_grad():
            y = op(x)
        # (C_out, ceil(H / s), ceil(W / s)), odd sizes included
        assert y.shape == (2, c_out, -(-h // stride), -(-w // stride))
        assert op.use_shortcut == (c_in == c_out and stride == 1
                                   and name != 'conv_1x1')
        conv_macs = FlopAnalyzer(op, (x, )).by_operator()['conv']
        assert op.analytic_macs(x.shape) == conv_macs
        assert op.analytic_params() == count_params(op)


def test_shortcut_is_the_identity_added():
    op = build_op('sd_k3_d1', 8, 8, 1).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        for m in op.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.zero_()
                m.bias.zero_()
        assert torch.equal(op(x), x)  # branch output 0: only the identity


def test_released_module_names():
    """The released code's key layout (conv1.conv / conv1.bn, ...), so its
    checkpoints map key for key."""
    keys = set(build_op('ir_k5_e6_r2', 16, 16).state_dict())
    assert {'conv1.conv.weight', 'conv2.bn.running_mean',
            'conv3.bn.weight'} <= keys
    assert 'conv.conv.bias' in build_op('conv_1x1', 8, 8).state_dict()
    conv = build_op('ir_k3_e3_d2', 8, 8).conv2.conv
    assert (conv.dilation, conv.padding, conv.groups) == ((2, 2), (2, 2), 24)
