# Copyright (c) EVLab contributors.
"""DeFeat's losses against the spec's hand-computed values (2.2-2.4)."""
import math

import pytest
import torch
import torch.nn.functional as F

from projects.defeat import (
    DecoupledDenseKLLoss,
    DecoupledFeatLoss,
    DecoupledRoIKLLoss,
)


def test_neck_loss_tiny_example():
    # one level, C=1, S=[[1,2],[3,4]], T=0, M=[[1,0],[0,0]], identity
    # adapter: obj = 1 / (2 * 1) = 0.5, bg = (4 + 9 + 16) / (2 * 3) = 29/6
    s = torch.tensor([[1., 2.], [3., 4.]])[None, None]
    t = torch.zeros_like(s)
    m = torch.tensor([[1., 0.], [0., 0.]])[None]
    obj, bg = DecoupledFeatLoss(1., 1.)([s], [t], [m])
    assert obj.item() == pytest.approx(0.5, abs=1e-6)
    assert bg.item() == pytest.approx(29 / 6, abs=1e-6)
    # duplicating the channel leaves both terms unchanged (per-element
    # normalisation, channels included)
    obj2, bg2 = DecoupledFeatLoss(1., 1.)([s.repeat(1, 2, 1, 1)],
                                          [t.repeat(1, 2, 1, 1)], [m])
    assert obj2.item() == pytest.approx(0.5, abs=1e-6)
    assert bg2.item() == pytest.approx(29 / 6, abs=1e-6)
    # weights multiply each term
    obj4, bg16 = DecoupledFeatLoss(4., 16.)([s], [t], [m])
    assert obj4.item() == pytest.approx(2.0, abs=1e-6)
    assert bg16.item() == pytest.approx(16 * 29 / 6, abs=1e-5)


def test_neck_loss_levels_are_averaged_and_empty_mask_is_zero():
    s1 = torch.tensor([[1., 2.], [3., 4.]])[None, None]
    m1 = torch.tensor([[1., 0.], [0., 0.]])[None]
    s2 = torch.full((1, 1, 1, 2), 2.)  # level 2: no object, D = 4 each
    m2 = torch.zeros(1, 1, 2)
    obj, bg = DecoupledFeatLoss(1., 1.)(
        [s1, s2], [torch.zeros_like(s1), torch.zeros_like(s2)], [m1, m2])
    # obj: (0.5 + 0 / max(1, 0)) / 2; bg: (29/6 + 8 / (2 * 2)) / 2
    assert obj.item() == pytest.approx(0.25, abs=1e-6)
    assert bg.item() == pytest.approx((29 / 6 + 2.) / 2, abs=1e-6)
    assert torch.isfinite(obj) and torch.isfinite(bg)


def test_neck_loss_is_fp32_and_refuses_mismatched_maps():
    s = torch.randn(2, 4, 3, 3, dtype=torch.bfloat16)
    t = torch.randn(2, 4, 3, 3, dtype=torch.bfloat16)
    m = (torch.rand(2, 3, 3) > 0.5).float()
    obj, bg = DecoupledFeatLoss(1., 1.)([s], [t], [m])
    assert obj.dtype == bg.dtype == torch.float32
    d = (s.float() - t.float())**2
    mm = m[:, None].expand_as(d)
    assert obj.item() == pytest.approx(
        (d * mm).sum().item() / (2 * mm.sum().item()), rel=1e-5)
    with pytest.raises(ValueError, match='differ'):
        DecoupledFeatLoss()([s], [t[:, :2]], [m])


ZS = torch.tensor([[0., 0., 0.], [1., 0., 2.], [2., 1., 0.]])
ZT = torch.tensor([[2., 0., 0.], [0., 0., 3.], [1., 1., 1.]])
LABELS = torch.tensor([0, 2, 1])  # 2 classes + background (2)


@pytest.mark.parametrize('temperature,obj,bg', [(1., 0.371017, 0.176848),
                                                (2., 0.409884, 0.319470)])
def test_roi_kl_tiny_example(temperature, obj, bg):
    o, b = DecoupledRoIKLLoss(1., 1., temperature)(ZS, ZT, LABELS)
    assert o.item() == pytest.approx(obj, abs=1e-5)
    assert b.item() == pytest.approx(bg, abs=1e-5)


def test_roi_kl_equals_torch_kl_div_on_random_logits():
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(64, 6, generator=g), torch.randn(64, 6, generator=g)
    labels = torch.randint(0, 6, (64, ), generator=g)
    t = 3.
    o, b = DecoupledRoIKLLoss(1., 1., t)(zs, zt, labels)
    for part, mask in ((o, labels < 5), (b, labels == 5)):
        ref = F.kl_div(F.log_softmax(zs[mask] / t, 1),
                       F.softmax(zt[mask] / t, 1),
                       reduction='sum') / mask.sum() * t * t
        assert part.item() == pytest.approx(ref.item(), rel=1e-6)


def test_roi_kl_without_background_rois():
    # the official labels.max() test would call class 0 "background" here
    zs, zt, labels = ZS[[0, 2]], ZT[[0, 2]], LABELS[[0, 2]]
    o, b = DecoupledRoIKLLoss(2., 2., 1.)(zs, zt, labels)
    assert b.item() == 0.
    ref = F.kl_div(F.log_softmax(zs, 1), F.softmax(zt, 1),
                   reduction='sum') / 2
    assert o.item() == pytest.approx(2 * ref.item(), rel=1e-6)


def _bernoulli_kl(zt: float, zs: float, t: float) -> float:
    q, p = 1 / (1 + math.exp(-zt / t)), 1 / (1 + math.exp(-zs / t))
    return q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))


def test_dense_kl_hand_computed():
    # 4 anchors x 2 classes: anchor 0 positive, 1 and 2 negative, 3 ignored
    zs = torch.tensor([[0., 1.], [2., -1.], [0.5, 0.5], [9., 9.]])
    zt = torch.tensor([[1., 0.], [-1., -1.], [0.5, 1.5], [-9., -9.]])
    labels = torch.tensor([1, 2, 2, 2])
    weights = torch.tensor([1., 1., 1., 0.])
    for t in (1., 2.):
        o, b = DecoupledDenseKLLoss(1., 1., t)(zs, zt, labels, weights)
        kl = [sum(_bernoulli_kl(zt[a, c].item(), zs[a, c].item(), t)
                  for c in range(2)) for a in range(4)]
        assert o.item() == pytest.approx(t * t * kl[0], rel=1e-5)
        assert b.item() == pytest.approx(t * t * (kl[1] + kl[2]) / 2,
                                         rel=1e-5)
    same = DecoupledDenseKLLoss()(zs, zs, labels, weights)
    assert same[0].item() == pytest.approx(0., abs=1e-7)
    assert same[1].item() == pytest.approx(0., abs=1e-7)
