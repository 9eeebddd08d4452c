# Copyright (c) EVLab contributors.
"""The attention modules: an independent reference of the interlacing,
the degenerate group sizes (single group == dense attention), padding
masks, the global receptive field, the cost formula and the registry.
Comparisons with a reference run in float64 (exact up to rounding on any
CPU's kernels)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import init_default_scope

import projects.issa  # noqa: F401  (registers)
from projects.common.complexity import count_macs, peak_memory
from projects.issa import (
    DenseSelfAttention,
    InterlacedSparseSelfAttention,
    ISSABlock,
    ISSAHead,
    interlaced_attention,
    isa_cost,
)

BN, RELU = dict(type='BN'), dict(type='ReLU')
F64 = torch.float64


def assert_close64(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float64 rounding: 1e-10 of the largest magnitude."""
    assert actual.dtype == expected.dtype == F64
    scale = max(float(expected.abs().max()), 1.0)
    torch.testing.assert_close(actual, expected, rtol=1e-9,
                               atol=1e-10 * scale)


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return model.eval()


def isa(c=8, ck=4, df=(4, 4), order=('long', 'short'), mask=False,
        norm=BN, act=RELU, seed=0):
    torch.manual_seed(seed)
    return randomise_bn(InterlacedSparseSelfAttention(
        c, ck, df, order, mask, norm_cfg=norm, act_cfg=act))


def attend(block: ISSABlock, tokens: torch.Tensor,
           valid: torch.Tensor = None) -> torch.Tensor:
    """Reference attention on (L, C) tokens of one group, written from
    the formula with einsum (not ISSABlock.forward)."""
    x = tokens.t()[None, :, :, None]  # (1, C, L, 1): a 1x1 conv input
    q = block.query_project(x)[0, :, :, 0]  # (C_k, L)
    k = block.key_project(x)[0, :, :, 0]
    v = block.value_project(x)[0, :, :, 0]  # (C, L)
    sim = torch.einsum('ci,cj->ij', q, k) / math.sqrt(q.shape[0])
    if valid is not None:
        sim = sim.masked_fill(~valid[None, :], float('-inf'))
    ctx = torch.einsum('ij,cj->ci', sim.softmax(-1), v)
    return block.output_project(ctx[None, :, :, None])[0, :, :, 0].t()


def reference_isa(m: InterlacedSparseSelfAttention, x: torch.Tensor
                  ) -> torch.Tensor:
    """ISA by explicit strided slicing of the padded map, group by group."""
    n, c, h, w = x.shape
    p_h, p_w = m.down_factor
    q_h, q_w = -(-h // p_h), -(-w // p_w)
    pad_h, pad_w = q_h * p_h - h, q_w * p_w - w
    top, left = pad_h // 2, pad_w // 2
    y = F.pad(x, (left, pad_w - left, top, pad_h - top))
    valid = F.pad(torch.ones(1, 1, h, w), (left, pad_w - left, top,
                                           pad_h - top))[0, 0] > 0

    def long_step(y):
        out = torch.empty_like(y)
        for a in range(p_h):
            for b in range(p_w):
                # the pixels (i * P_h + a, j * P_w + b) for all i, j
                grp = y[:, :, a::p_h, b::p_w]
                keys = valid[a::p_h, b::p_w].flatten()
                for s in range(n):
                    tok = grp[s].flatten(1).t()
                    o = attend(m.global_relation, tok,
                               keys if m.mask_padding else None)
                    out[s, :, a::p_h, b::p_w] = o.t().reshape(c, q_h, q_w)
        return out

    def short_step(y):
        out = torch.empty_like(y)
        for i in range(q_h):
            for j in range(q_w):
                sl = (slice(i * p_h, (i + 1) * p_h),
                      slice(j * p_w, (j + 1) * p_w))
                keys = valid[sl].flatten()
                for s in range(n):
                    tok = y[s][(slice(None), ) + sl].flatten(1).t()
                    o = attend(m.local_relation, tok,
                               keys if m.mask_padding else None)
                    out[s][(slice(None), ) + sl] = o.t().reshape(c, p_h,
                                                                 p_w)
        return out

    if m.order == ('long', 'short'):
        y = short_step(long_step(y))
    else:
        y = long_step(short_step(y))
    return y[:, :, top:top + h, left:left + w]


LS, SL = ('long', 'short'), ('short', 'long')


@pytest.mark.parametrize('h,w,df,order,mask', [
    (13, 11, (4, 4), LS, False), (13, 11, (4, 4), SL, True),
    (7, 9, (3, 5), LS, True), (7, 9, (3, 5), SL, False),
    (8, 8, (4, 2), LS, False)])
def test_equals_group_by_group_reference(h, w, df, order, mask):
    m = isa(df=df, order=order, mask=mask).double()
    x = torch.randn(2, 8, h, w, dtype=F64)
    with torch.no_grad():
        assert_close64(m(x), reference_isa(m, x))


def test_padding_mask_changes_only_padded_maps_and_stays_finite():
    x = torch.randn(1, 8, 6, 6)
    plain, masked = isa(df=(4, 4)), isa(df=(4, 4), mask=True)
    masked.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(x), masked(x), atol=1e-4)
        x8 = torch.randn(1, 8, 8, 8)  # no padding: the mask is a no-op
        assert torch.equal(plain(x8), masked(x8))
        # 3x2 with P = 8: long groups made only of padding exist
        out = isa(df=(8, 8), mask=True)(torch.randn(2, 8, 3, 2))
    assert out.shape == (2, 8, 3, 2) and torch.isfinite(out).all()


def dense_with(block: ISSABlock) -> DenseSelfAttention:
    d = DenseSelfAttention(block.channels, block.key_channels,
                           norm_cfg=BN, act_cfg=RELU)
    d.to(block.value_project.weight.dtype)  # before the load: no casts
    d.relation.load_state_dict(block.state_dict())
    return d.eval()


def test_dense_module_equals_the_formula():
    m = isa().double()
    d = dense_with(m.global_relation)
    x = torch.randn(1, 8, 5, 7, dtype=F64)
    with torch.no_grad():
        ref = attend(m.global_relation, x[0].flatten(1).t())
        assert_close64(d(x)[0].flatten(1).t(), ref)


def test_one_long_group_is_dense_attention_then_one_key_groups():
    """P = (1, 1): the long step is dense attention over the whole map and
    each short group has one key (softmax = 1), so the module equals
    psi_2(v_2(dense_1(x)))."""
    m = isa(df=(1, 1)).double()
    x = torch.randn(2, 8, 6, 5, dtype=F64)
    lr = m.local_relation
    with torch.no_grad():
        want = lr.output_project(lr.value_project(
            dense_with(m.global_relation)(x)))
        assert_close64(m(x), want)


def test_one_short_group_is_dense_attention_after_one_key_groups():
    """P = (h, w): one key per long group, then dense attention."""
    m = isa(df=(6, 5)).double()
    x = torch.randn(2, 8, 6, 5, dtype=F64)
    gr = m.global_relation
    with torch.no_grad():
        want = dense_with(m.local_relation)(
            gr.output_project(gr.value_project(x)))
        assert_close64(m(x), want)


def input_gradient(m, x, y0=3, x0=4):
    x = x.clone().requires_grad_()
    m(x)[0, :, y0, x0].sum().backward()
    return x.grad[0].abs().sum(0)  # (h, w)


def test_two_steps_reach_every_pixel_one_step_does_not():
    """Gradient of one output pixel w.r.t. the input, random weights, no
    ReLU dead zones: non-zero at every (unpadded) input pixel."""
    m = isa(df=(4, 4), norm=None, act=None)
    x = torch.randn(1, 8, 13, 11)
    assert (input_gradient(m, x) > 0).all()

    # the long step alone reaches only the pixel's own lattice
    def long_only(inp):
        return interlaced_attention(inp, m.global_relation,
                                    lambda g, mask: g, (4, 4))
    grad = input_gradient(long_only, x)
    # padded by (top, left) = (1, 0): the lattice of padded pixel (4, 4)
    ys, xs = torch.meshgrid(torch.arange(13), torch.arange(11),
                            indexing='ij')
    lattice = ((ys + 1) % 4 == 0) & (xs % 4 == 0)
    assert torch.equal(grad > 0, lattice)


@pytest.mark.parametrize('h,w', [(1, 1), (3, 2), (5, 9), (13, 11),
                                 (17, 8)])
def test_odd_sizes_keep_their_shape(h, w):
    m = isa(df=(8, 8))
    m.train()  # BN over the regrouped batch
    x = torch.randn(2, 8, h, w, requires_grad=True)
    out = m(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    head = ISSAHead(in_channels=8, channels=8, isa_channels=4,
                    num_classes=3, norm_cfg=BN).eval()
    with torch.no_grad():
        assert head([torch.randn(1, 8, h, w)]).shape == (1, 3, h, w)


# spec 2.4, C = 512, C_k = 256, P = 8x8, fp32: (h, w) -> (dense MiB,
# ISA MiB, dense GMAC, ISA GMAC) at the printed precision
TABLE = {(128, 128): ('1024', '20', '221', '34'),
         (64, 128): ('256', '6', '59', '16'),
         (97, 97): ('338', '9.6', '77', '22'),
         (24, 8): ('0.14', '0.05', '0.20', '0.36')}


@pytest.mark.parametrize('hw', sorted(TABLE))
def test_cost_formula_gives_the_spec_table(hw):
    cost = isa_cost(*hw, 512, 256, (8, 8))

    def fmt(value, printed):
        digits = len(printed.split('.')[1]) if '.' in printed else 0
        return f'{value:.{digits}f}'

    dense_mib, isa_mib, dense_g, isa_g = TABLE[hw]
    assert fmt(cost['dense']['affinity'] * 4 / 2**20, dense_mib) == dense_mib
    assert fmt(cost['isa']['affinity'] * 4 / 2**20, isa_mib) == isa_mib
    assert fmt(cost['dense']['macs'] / 1e9, dense_g) == dense_g
    assert fmt(cost['isa']['macs'] / 1e9, isa_g) == isa_g


@pytest.mark.parametrize('hw,df', [((16, 32), (8, 8)), ((13, 11), (8, 8)),
                                   ((13, 11), (3, 5))])
def test_cost_formula_counts_what_the_modules_run(hw, df):
    from mmengine.analysis import FlopAnalyzer
    cost = isa_cost(*hw, 32, 16, df)
    m = isa(c=32, ck=16, df=df)
    d = dense_with(m.global_relation)
    x = torch.randn(1, 32, *hw)
    # mmengine's analyzer (fvcore rules: conv and bmm MACs), within 1 %
    fa = FlopAnalyzer(m, (x, ))
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    ops = fa.by_operator()
    assert abs(ops['conv'] + ops['bmm'] - cost['isa']['macs']) \
        <= 0.01 * cost['isa']['macs']
    # the benchmark's counter (torch FlopCounterMode), exactly
    assert count_macs(lambda: m(x)) == cost['isa']['macs']
    assert count_macs(lambda: d(x)) == cost['dense']['macs']


def test_peak_memory_sees_live_tensors_only():
    mib = 2**20

    def two_live():
        a = torch.ones(mib, dtype=torch.uint8)
        b = torch.ones(mib, dtype=torch.uint8)
        return a, b

    def one_at_a_time():
        for _ in range(3):
            a = torch.ones(mib, dtype=torch.uint8)
            del a

    assert peak_memory(two_live) == 2 * mib
    assert peak_memory(one_at_a_time) == mib


def test_registered_in_mmseg_and_arguments_checked():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    for cls in (InterlacedSparseSelfAttention, DenseSelfAttention, ISSAHead):
        assert MODELS.get(cls.__name__) is cls
    m = MODELS.build(dict(type='InterlacedSparseSelfAttention', channels=8,
                          key_channels=4, down_factor=3, norm_cfg=BN,
                          act_cfg=RELU))
    assert m.down_factor == (3, 3)
    assert MODELS.get('ISAHead') is not ISSAHead  # mmseg's stays
    with pytest.raises(ValueError, match='order'):
        InterlacedSparseSelfAttention(8, 4, order=('short', 'short'))
    with pytest.raises(ValueError, match='down_factor'):
        ISSAHead(isa_channels=4, down_factor=(8, 0), in_channels=8,
                 channels=8, num_classes=2)
