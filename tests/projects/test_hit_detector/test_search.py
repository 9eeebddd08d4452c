# Copyright (c) EVLab contributors.
"""Hit-Detector's search pieces (spec 2.3 / 5): mixed ops, the proximal
step, the expected-cost penalty, the alternation, screening and export."""
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import OptimWrapper, OptimWrapperDict

from projects.common.errors import EVLabError
from projects.common.nas import DifferentiableChoice
from projects.hit_detector import (
    HIT_BACKBONE,
    HIT_HEAD,
    HIT_NECK,
    HalfSplitSampler,
    build_op,
    genotype_to_config,
    proximal_group_shrink,
)
from projects.hit_detector.search import (
    check_genotype_in_sub_spaces,
    expected_cost,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CFG = osp.join(ROOT, 'configs', 'hit_detector')
OPS = ['ir_k3_e3', 'ir_k5_e6', 'sd_k3_d1', 'conv_1x1']


def _searcher(**overrides):
    register_all_modules()
    cfg = Config.fromfile(osp.join(CFG, 'toy_hitdet_screen.py'))
    cfg.model.update(overrides)
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def softmax_searcher():
    return _searcher(mode='softmax', sub_spaces=dict(
        backbone=OPS[:2], neck=OPS[1:3], head=OPS[2:]))


def _choice(mode):
    torch.manual_seed(0)
    ops = {n: build_op(n, 8, 8, 1).eval() for n in OPS}
    return DifferentiableChoice(ops, alias='x', mode=mode)


def test_mixed_op_one_hot_equals_the_op():
    x = torch.randn(2, 8, 6, 6)
    for j, name in enumerate(OPS):
        soft, gate = _choice('softmax'), _choice('linear')
        with torch.no_grad():
            soft.arch_param.zero_()
            soft.arch_param[j] = 1e4  # fp32 softmax exactly one-hot
            gate.arch_param.zero_()
            gate.arch_param[j] = 1.0
            ref = soft.candidates[name](x)
            torch.testing.assert_close(soft(x), ref, atol=1e-6, rtol=0)
            torch.testing.assert_close(gate(x), ref, atol=1e-6, rtol=0)
    assert torch.equal(_choice('linear').arch_param,
                       torch.full((4, ), 0.25))  # gates start at 1 / N


def test_proximal_step_by_hand():
    g = torch.tensor([[3., 0., 1., .1], [4., 0., 0., .1], [0., 1., 0., .1]])
    out = proximal_group_shrink(g, 1.0)
    # column norms 5, 1, 1, 0.17: scaled by 1 - 1 / norm, clipped at 0
    want = torch.tensor([[2.4, 0., 0., 0.], [3.2, 0., 0., 0.],
                         [0., 0., 0., 0.]])
    torch.testing.assert_close(out, want, atol=1e-7, rtol=0)
    assert (out[:, 1:] == 0).all()  # norm <= step: exactly zero


def test_penalty_at_zero_and_its_gradient(softmax_searcher):
    s = softmax_searcher
    blocks = s.mutator.blocks
    for b in blocks.values():
        b.arch_param.data.zero_()
    mean_sum = sum(float(c.mean()) for c in s.costs.values())
    assert float(s.penalty()) == pytest.approx(
        s.gamma * mean_sum / s.cost_ref, rel=1e-6)
    # d/d alpha of sum_k softmax_k c_k, float64, against finite
    # differences (gradcheck) on one block
    alias, cost = next(iter(s.costs.items()))
    block = blocks[alias]

    def f(alpha):
        return (torch.softmax(alpha, 0) * cost).sum()
    alpha = torch.randn(len(cost), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (alpha, ))
    with torch.no_grad():
        block.arch_param.copy_(alpha.float())
    s.zero_grad()
    s.penalty().backward()
    w = torch.softmax(alpha.detach(), 0)
    analytic = s.gamma / s.cost_ref * w * (cost - (w * cost).sum())
    torch.testing.assert_close(block.arch_param.grad.double(), analytic,
                               rtol=1e-4, atol=1e-9)
    # only the architecture parameters get a gradient
    assert all(p.grad is None for p in s.weight_parameters())
    assert all(p.grad is not None for p in s.arch_parameters())
    s.zero_grad()
    assert float(expected_cost(blocks, s.costs)) > 0


def test_alternation_steps_one_side_only(softmax_searcher):
    s = softmax_searcher.train()
    s.arch_enabled = True
    torch.manual_seed(0)
    data = demo_mm_inputs(2, [[3, 64, 64]] * 2, num_items=[2, 2],
                          num_classes=5)  # dict(inputs=..., data_samples=...)
    wrappers = OptimWrapperDict(
        weights=OptimWrapper(torch.optim.SGD(s.weight_parameters(), lr=0.1)),
        arch=OptimWrapper(torch.optim.SGD(s.arch_parameters(), lr=0.1)))

    def snap(params):
        return [p.detach().clone() for p in params]
    arch0, w0 = snap(s.arch_parameters()), snap(s.weight_parameters())
    s._step(data, wrappers['weights'], s.weight_parameters(),
            s.arch_parameters(), penalty=False)
    assert all(torch.equal(a, b) for a, b in
               zip(arch0, s.arch_parameters()))
    w1 = snap(s.weight_parameters())
    assert any(not torch.equal(a, b) for a, b in zip(w0, w1))
    s._step(data, wrappers['arch'], s.arch_parameters(),
            s.weight_parameters(), penalty=True)
    assert all(torch.equal(a, b) for a, b in
               zip(w1, s.weight_parameters()))
    assert any(not torch.equal(a, b) for a, b in
               zip(arch0, s.arch_parameters()))
    # the frozen side's requires_grad is restored
    assert all(p.requires_grad for p in s.arch_parameters())


def test_screening_keeps_the_top_k_columns():
    s = _searcher()  # gate mode, K = 2 per component
    norms = dict(backbone=[.1, .9, .5, .3], neck=[.4, .2, .8, .0],
                 head=[.7, .6, .1, .9])
    for name, cols in norms.items():
        for b in s.component_blocks(name):
            b.arch_param.data.copy_(torch.tensor(cols))
    assert s.sub_spaces() == dict(backbone=['ir_k5_e6', 'sd_k3_d1'],
                                  neck=['sd_k3_d1', 'ir_k3_e3'],
                                  head=['conv_1x1', 'ir_k3_e3'])
    s.shrink_gates(lr=1e3)  # lr x lambda = 50: every column to exactly 0
    assert all((b.arch_param == 0).all() for b in s.mutator.blocks.values())


def test_export_of_the_released_choices(tmp_path):
    """A supernet over the released ops, alpha one-hot on the released
    choices, exports the released genotype; that genotype written into the
    COCO config builds the same detector as the hand-written config."""
    space = dict(backbone=sorted(set(HIT_BACKBONE)),
                 neck=sorted(set(HIT_NECK)), head=sorted(set(HIT_HEAD)))
    s = _searcher(mode='softmax', op_space=space, searchable=None)
    released = dict(backbone=list(HIT_BACKBONE), neck=list(HIT_NECK),
                    head=list(HIT_HEAD))
    for alias, block in s.mutator.blocks.items():
        name, i = alias.split('.')
        op = released[name][int(i) - (name == 'backbone')]
        with torch.no_grad():
            block.arch_param.fill_(-1.0)
            block.arch_param[block.choices.index(op)] = 1.0
    assert s.genotype() == released

    template = osp.join(CFG, 'hitdet_faster-rcnn_1x_coco.py')
    out = genotype_to_config(released, template, str(tmp_path / 'g.py'))

    def state(path):
        cfg = Config.fromfile(path)
        cfg.model.backbone.init_cfg = None
        return {k: tuple(v.shape) for k, v in
                MODELS.build(cfg.model).state_dict().items()}
    assert state(out) == state(template)


def test_genotype_outside_the_screened_sub_space():
    spaces = dict(head=['ir_k3_e3', 'ir_k5_e6'])
    check_genotype_in_sub_spaces(dict(head=['ir_k5_e6'] * 4), spaces)
    with pytest.raises(ValueError, match="head position 2: op 'sd_k3_d1' "
                                         'is not in the head sub-space'):
        check_genotype_in_sub_spaces(
            dict(head=['ir_k3_e3', 'ir_k5_e6', 'sd_k3_d1', 'ir_k3_e3']),
            spaces)


def test_cost_target_below_the_cheapest_network_is_refused():
    s = _searcher(mode='softmax')
    with pytest.raises(EVLabError, match=f'{s.cost_min:,.0f} macs at '
                                         'least'):
        _searcher(mode='softmax', cost_target=s.cost_min - 1)


def test_half_split_is_disjoint_and_complete():
    data = list(range(11))
    a = set(HalfSplitSampler(data, 'A', seed=0, round_up=False))
    b = set(HalfSplitSampler(data, 'B', seed=0, round_up=False))
    assert not a & b and a | b == set(data)
    assert a == set(range(0, 11, 2))


def test_whole_space_is_the_spec_s_28_ops():
    from projects.hit_detector import WHOLE_SPACE
    assert len(WHOLE_SPACE) == len(set(WHOLE_SPACE)) == 28
    assert sum(op.startswith('ir_') for op in WHOLE_SPACE) == 21
    assert sum(op.startswith('sd_') for op in WHOLE_SPACE) == 6
    assert 'ir_k7_e6' in WHOLE_SPACE and 'ir_k7_e6_d2' not in WHOLE_SPACE


def test_genotype_tool_checks_the_sub_spaces(script, tmp_path):
    import json
    tool = osp.join(ROOT, 'tools', 'misc', 'hitdet_genotype_to_config.py')
    geno = tmp_path / 'genotype.json'
    geno.write_text(json.dumps(dict(genotype=dict(
        backbone=list(HIT_BACKBONE), neck=list(HIT_NECK),
        head=list(HIT_HEAD)))))
    subs = tmp_path / 'sub_spaces.json'
    subs.write_text(json.dumps(dict(sub_spaces=dict(
        head=['ir_k5_e6', 'ir_k3_e6']))))
    out = tmp_path / 'retrain.py'
    args = [str(geno), '--template', osp.join(CFG, 'toy_hitdet.py'),
            '--out', str(out), '--sub-spaces', str(subs)]
    res = script(tool, args)
    assert res.returncode == 0, res.stderr
    assert Config.fromfile(str(out)).model.neck.genotype == list(HIT_NECK)
    subs.write_text(json.dumps(dict(sub_spaces=dict(head=['ir_k3_e3']))))
    res = script(tool, args)
    assert res.returncode == 2
    assert "head position 0: op 'ir_k5_e6' is not in the head sub-space" \
        in res.stderr
