# Copyright (c) EVLab contributors.
"""ManifoldRelationLoss and SoftTargetKDLoss against hand-computed values
and a reference written here from the spec's formulas (2.2-2.3)."""
import math

import pytest
import torch
import torch.nn.functional as F

from projects.manifold_kd import ManifoldRelationLoss, SoftTargetKDLoss

W = dict(intra=4.0, inter=0.1, rand=0.2)


def reference(fs, ft, idx, w=W):
    """Weighted (intra, inter, rand) of one pair, straight from the spec:
    unit tokens, Gram maps by einsum, mean of squared differences."""
    fs = fs / fs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ft = ft / ft.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    intra = (torch.einsum('bnc,bmc->bnm', fs, fs) -
             torch.einsum('bnc,bmc->bnm', ft, ft)).pow(2).mean()
    inter = (torch.einsum('bnc,dnc->nbd', fs, fs) -
             torch.einsum('bnc,dnc->nbd', ft, ft)).pow(2).mean()
    rs = fs.reshape(-1, fs.shape[-1])[idx]
    rt = ft.reshape(-1, ft.shape[-1])[idx]
    rand = (rs @ rs.t() - rt @ rt.t()).pow(2).mean()
    return w['intra'] * intra, w['inter'] * inter, w['rand'] * rand


def values(out):
    return [out[f'loss_mf_{k}'] for k in ('intra', 'inter', 'rand')]


def test_hand_computed_terms():
    # image 0: tokens e1, e2; image 1: e1, e1 (student, with arbitrary
    # positive lengths); the teacher (3 channels) has e1 everywhere
    s = torch.tensor([[[2., 0.], [0., .5]], [[3., 0.], [7., 0.]]])
    t = torch.zeros(2, 2, 3)
    t[..., 0] = 1.
    loss = ManifoldRelationLoss(num_rand_rows=4)
    out = loss([s], [t], rand_indices=[torch.arange(4)])
    # intra: only image 0's off-diagonal pair differs (0 vs 1): 2 of 8
    # inter: position 1 holds (e2, e1): its off-diagonal pair, 2 of 8
    # rand: row 1 (e2) against rows 0, 2, 3 in both orders: 6 of 16
    expected = [4.0 * 2 / 8, 0.1 * 2 / 8, 0.2 * 6 / 16]
    for got, want in zip(values(out), expected):
        assert got.item() == pytest.approx(want, abs=1e-7)


def test_matches_the_reference_on_random_tensors():
    g = torch.Generator().manual_seed(0)
    fs, ft = torch.randn(4, 10, 8, generator=g), torch.randn(4, 10, 12,
                                                            generator=g)
    idx = torch.randperm(40, generator=g)[:6]
    loss = ManifoldRelationLoss(w_intra=4.0, w_inter=0.1, w_rand=0.2,
                                num_rand_rows=6)
    out = loss([fs], [ft], rand_indices=[idx])
    for got, want in zip(values(out), reference(fs, ft, idx)):
        assert torch.allclose(got, want, atol=1e-6)
        assert got > 0
    # loss_weight (mf_weight) multiplies every term
    out3 = ManifoldRelationLoss(num_rand_rows=6, loss_weight=3.)(
        [fs], [ft], rand_indices=[idx])
    for a, b in zip(values(out3), values(out)):
        assert torch.allclose(a, 3 * b, atol=1e-6)


def test_zero_for_equal_or_rotated_features():
    g = torch.Generator().manual_seed(1)
    fs = torch.randn(3, 5, 6, generator=g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    loss = ManifoldRelationLoss(num_rand_rows=7)
    torch.manual_seed(0)
    for ft in (fs.clone(), fs @ q):  # relation maps ignore rotations
        assert all(v.abs() < 1e-6 for v in values(loss([fs], [ft])))
    other = torch.randn(3, 5, 6, generator=g)
    assert all(v > 1e-4 for v in values(loss([fs], [other])))


def test_per_token_scale_invariance():
    g = torch.Generator().manual_seed(2)
    fs, ft = torch.randn(2, 6, 4, generator=g), torch.randn(2, 6, 5,
                                                           generator=g)
    idx = [torch.randperm(12, generator=g)[:5]]
    loss = ManifoldRelationLoss(num_rand_rows=5)
    base = values(loss([fs], [ft], rand_indices=idx))
    scale_s = torch.rand(2, 6, 1, generator=g) * 10 + 0.01
    scale_t = torch.rand(2, 6, 1, generator=g) * 10 + 0.01
    scaled = values(loss([fs * scale_s], [ft * scale_t], rand_indices=idx))
    for a, b in zip(base, scaled):
        assert torch.allclose(a, b, atol=1e-6)
    # a non-uniform change of the tokens is not invariant
    mixed = values(loss([fs + 0.5], [ft], rand_indices=idx))
    assert not torch.allclose(mixed[0], base[0], atol=1e-4)


def test_each_term_is_averaged_over_pairs():
    g = torch.Generator().manual_seed(3)
    a_s, a_t = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 3,
                                                             generator=g)
    b_s, b_t = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 3,
                                                             generator=g)
    idx = torch.arange(8)
    loss = ManifoldRelationLoss(num_rand_rows=8)
    one = values(loss([a_s], [a_t], rand_indices=[idx]))
    twice = values(loss([a_s, a_s], [a_t, a_t], rand_indices=[idx, idx]))
    for x, y in zip(one, twice):
        assert torch.allclose(x, y, atol=1e-7)
    both = values(loss([a_s, b_s], [a_t, b_t], rand_indices=[idx, idx]))
    for x, ra, rb in zip(both, reference(a_s, a_t, idx),
                         reference(b_s, b_t, idx)):
        assert torch.allclose(x, (ra + rb) / 2, atol=1e-6)


def test_random_rows_are_shared_and_seeded():
    g = torch.Generator().manual_seed(4)
    fs = torch.randn(4, 8, 6, generator=g)
    ft = torch.randn(4, 8, 6, generator=g)
    loss = ManifoldRelationLoss(num_rand_rows=5)
    # the same rows for both sides: identical features give exactly zero
    # (different rows for the two sides would not)
    torch.manual_seed(0)
    assert loss([fs], [fs.clone()])['loss_mf_rand'] == 0
    # the rows are randperm(B*N)[:K] of the global RNG, redrawn per pair
    torch.manual_seed(7)
    idx0, idx1 = torch.randperm(32)[:5], torch.randperm(32)[:5]
    torch.manual_seed(7)
    out = loss([fs, ft], [ft, fs])
    want = (reference(fs, ft, idx0)[2] + reference(ft, fs, idx1)[2]) / 2
    assert torch.allclose(out['loss_mf_rand'], want, atol=1e-6)
    assert not torch.equal(idx0, idx1)
    # reproducible under a seed, different under another one
    torch.manual_seed(7)
    again = loss([fs, ft], [ft, fs])['loss_mf_rand']
    torch.manual_seed(8)
    other = loss([fs, ft], [ft, fs])['loss_mf_rand']
    assert torch.equal(again, out['loss_mf_rand'])
    assert not torch.allclose(other, again)
    # an explicit generator gives the same draw as the seeded global RNG
    out_g = loss([fs, ft], [ft, fs],
                 generator=torch.Generator().manual_seed(7))
    assert torch.equal(out_g['loss_mf_rand'], out['loss_mf_rand'])


def test_fewer_rows_than_k_uses_all_rows():
    g = torch.Generator().manual_seed(5)
    fs, ft = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4,
                                                           generator=g)
    out = ManifoldRelationLoss(num_rand_rows=192)([fs], [ft])
    assert torch.allclose(out['loss_mf_rand'],
                          reference(fs, ft, torch.arange(6))[2], atol=1e-6)


def test_token_alignment():
    g = torch.Generator().manual_seed(6)
    fs, ft = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 5,
                                                           generator=g)
    idx = [torch.arange(8)]
    loss = ManifoldRelationLoss(num_rand_rows=8)
    plain = values(loss([fs], [ft], rand_indices=idx))
    cls = torch.randn(2, 1, 3, generator=g)
    two = torch.randn(2, 2, 5, generator=g)
    cases = [
        # 'auto': the student's surplus leading token (DeiT vs CaiT) ...
        (loss, torch.cat([cls, fs], 1), ft),
        # ... or the teacher's (a teacher with cls + dist tokens)
        (loss, fs, torch.cat([two, ft], 1)),
        # explicit counts
        (ManifoldRelationLoss(num_rand_rows=8, student_skip_tokens=1,
                              teacher_skip_tokens=2),
         torch.cat([cls, fs], 1), torch.cat([two, ft], 1)),
        # NCHW maps are token grids
        (loss, fs.transpose(1, 2).reshape(2, 3, 2, 2), ft),
    ]
    for fn, s, t in cases:
        for a, b in zip(values(fn([s], [t], rand_indices=idx)), plain):
            assert torch.allclose(a, b, atol=1e-6)
    # both carry a class token: it stays ('auto' drops nothing)
    both = values(loss([torch.cat([cls, fs], 1)],
                       [torch.cat([two[:, :1], ft], 1)],
                       rand_indices=[torch.arange(10)]))
    assert not torch.allclose(both[0], plain[0])
    with pytest.raises(ValueError, match='differ after skipping'):
        ManifoldRelationLoss(student_skip_tokens=2,
                             teacher_skip_tokens=0)([fs], [ft])
    with pytest.raises(ValueError, match='student_skip_tokens'):
        ManifoldRelationLoss(student_skip_tokens='first')


def test_fp32_under_autocast():
    g = torch.Generator().manual_seed(7)
    fs = torch.randn(2, 5, 8, generator=g).bfloat16().requires_grad_()
    ft = torch.randn(2, 5, 8, generator=g).bfloat16()
    idx = [torch.arange(10)]
    loss = ManifoldRelationLoss(num_rand_rows=10)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss([fs], [ft], rand_indices=idx)
    want = reference(fs.detach().float(), ft.float(), idx[0])
    for got, w in zip(values(out), want):
        assert got.dtype == torch.float32
        assert torch.allclose(got, w, atol=1e-6)
    sum(values(out)).backward()
    assert fs.grad is not None and fs.grad.abs().sum() > 0


def test_soft_kd_equals_hand_computed_kl():
    s = torch.tensor([[1., 2., 0.5], [0., -1., 3.]])
    t = torch.tensor([[2., 0., 1.], [1., 1., 1.]])
    for tau in (1.0, 2.0):
        ps, pt = F.softmax(s / tau, 1), F.softmax(t / tau, 1)
        kl = sum(pt[i, c].item() * math.log(pt[i, c].item() /
                                             ps[i, c].item())
                 for i in range(2) for c in range(3)) / 2
        got = SoftTargetKDLoss(tau=tau, loss_weight=0.5)(s, t)
        assert got.item() == pytest.approx(0.5 * tau * tau * kl, abs=1e-6)
    assert SoftTargetKDLoss()(t, t).abs() < 1e-7


def test_registered_names_are_ours_after_all_upstream_modules():
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    import projects.manifold_kd as pkg
    register_all_modules(init_default_scope=False)
    for name in ('ManifoldKDClassifier', 'ManifoldRelationLoss',
                 'SoftTargetKDLoss'):
        assert MODELS.get(name) is getattr(pkg, name)


@pytest.mark.parametrize('shape_s,shape_t', [((3, 7, 5), (3, 7, 9)),
                                             ((1, 12, 4), (1, 12, 4))])
def test_fused_relation_mse_equals_plain_autograd(shape_s, shape_t):
    """The fused map-difference-mean (one-product backward) gives the
    value and gradient of the maps built separately with autograd."""
    from projects.manifold_kd import relation_mse
    g = torch.Generator().manual_seed(3)
    s = torch.randn(*shape_s, generator=g, dtype=torch.float64)
    t = torch.randn(*shape_t, generator=g, dtype=torch.float64)
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    fused = relation_mse(s1, t)
    plain = (s2 @ s2.transpose(1, 2) - t @ t.transpose(1, 2)).pow(2).mean()
    fused.backward()
    plain.backward()
    assert torch.allclose(fused, plain, atol=1e-12)
    assert torch.allclose(s1.grad, s2.grad, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x: relation_mse(x, t), (s.clone().requires_grad_(),))
    # a teacher side that asks for gradients gets them (plain path)
    t1 = t.clone().requires_grad_()
    relation_mse(s, t1).backward()
    assert t1.grad is not None and t1.grad.abs().sum() > 0


@pytest.mark.parametrize('layout', ['tokens_cls', 'tokens', 'nchw'])
def test_fused_pair_node_equals_the_reference(layout):
    """The one-node pair loss (normalisation, three maps, summed gradients,
    normalisation backward into the skipped-token input) gives the spec
    reference's values and gradients in float64, and passes gradcheck."""
    g = torch.Generator().manual_seed(5)
    b, n, c_s, c_t = 3, 6, 5, 7
    if layout == 'nchw':  # a CNN map read as H*W tokens (strided input)
        x = torch.randn(b, c_s, 2, 3, generator=g, dtype=torch.float64)
        tokens = x.flatten(2).transpose(1, 2)
    else:
        x = torch.randn(b, n + (layout == 'tokens_cls'), c_s, generator=g,
                        dtype=torch.float64)
        # a token shorter than F.normalize's eps (1e-12): the clamped branch
        x[1, -1] = 4e-14
        tokens = x
    t = torch.randn(b, n, c_t, generator=g, dtype=torch.float64)
    idx = torch.randperm(b * n, generator=g)[:8]
    loss = ManifoldRelationLoss(num_rand_rows=8)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    got = values(loss([x1], [t], rand_indices=[idx]))
    ref_in = x2.flatten(2).transpose(1, 2) if layout == 'nchw' else x2
    skip = ref_in.shape[1] - n
    want = reference(ref_in[:, skip:], t, idx)
    for a, w in zip(got, want):
        assert a.dtype == torch.float64
        assert torch.allclose(a, w, atol=1e-12)
    # distinct weights per term, so a mixed-up gradient would show
    (1 * got[0] + 3 * got[1] + 7 * got[2]).backward()
    (1 * want[0] + 3 * want[1] + 7 * want[2]).backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-12)
    if skip:
        assert torch.all(x1.grad[:, :skip] == 0)
    assert x1.grad[:, skip:].abs().sum() > 0
    # gradcheck away from the tiny token (the clamp is not smooth there)
    smooth = tokens.detach() + (tokens.detach().abs() < 1e-6).double()
    assert torch.autograd.gradcheck(
        lambda v: sum(values(loss([v], [t], rand_indices=[idx]))),
        (smooth.requires_grad_(),))


@pytest.mark.parametrize('stacked', [True, False])
def test_pairs_in_one_node_equal_pair_by_pair(stacked, monkeypatch):
    """Pairs of equal shapes share one autograd node (stacked: the GPU
    default), or get one node each (the CPU default); a pair of other
    shapes gets its own. Values and each pair's gradient equal the
    reference averaged over the pairs (float64), and a student feature
    without grad is left alone."""
    from projects.manifold_kd import losses
    monkeypatch.setattr(losses, '_pairs_per_node',
                        lambda device_type: None if stacked else 1)
    g = torch.Generator().manual_seed(11)
    f64 = dict(generator=g, dtype=torch.float64)
    students = [torch.randn(3, 7, 5, **f64), torch.randn(3, 7, 5, **f64),
                torch.randn(3, 5, 2, 3, **f64),  # CNN map: 6 tokens
                torch.randn(3, 7, 5, **f64)]
    teachers = [torch.randn(3, 6, 4, **f64), torch.randn(3, 6, 4, **f64),
                torch.randn(3, 6, 9, **f64), torch.randn(3, 6, 4, **f64)]
    idx = [torch.randperm(18, generator=g)[:5] for _ in range(4)]
    loss = ManifoldRelationLoss(num_rand_rows=5)
    ours = [s.clone().requires_grad_(i != 3) for i, s in enumerate(students)]
    refs = [s.clone().requires_grad_() for s in students]
    got = values(loss(ours, teachers, rand_indices=idx))
    per_pair = []
    for s, t, i in zip(refs, teachers, idx):
        tokens = s.flatten(2).transpose(1, 2) if s.dim() == 4 else s[:, 1:]
        per_pair.append(reference(tokens, t, i))
    want = [sum(p[k] for p in per_pair) / 4 for k in range(3)]
    for a, w in zip(got, want):
        assert torch.allclose(a, w, atol=1e-12)
    (1 * got[0] + 3 * got[1] + 7 * got[2]).backward()
    (1 * want[0] + 3 * want[1] + 7 * want[2]).backward()
    for i in range(3):
        assert torch.allclose(ours[i].grad, refs[i].grad, atol=1e-12)
        assert ours[i].grad.abs().sum() > 0
    assert ours[3].grad is None


def test_given_rows_out_of_range_are_refused():
    """Rows are offset into stacked pairs: a bad given index must fail
    rather than read another pair's tokens."""
    loss = ManifoldRelationLoss(num_rand_rows=2)
    s, t = torch.randn(2, 3, 4), torch.randn(2, 3, 5)
    for bad in (torch.tensor([0, 6]), torch.tensor([-1, 2]),
                torch.tensor([[0, 1]]), torch.tensor([0., 1.])):
        with pytest.raises(ValueError, match=r'rand_indices .*B\*N = 6'):
            loss([s], [t], rand_indices=[bad])


def test_backward_inside_autocast_stays_fp32():
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(4, 7, 8, generator=g), torch.randn(4, 6, 8,
                                                           generator=g)
    idx = [torch.randperm(24, generator=g)[:6]]
    loss = ManifoldRelationLoss(num_rand_rows=6)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    sum(values(loss([x1], [t], rand_indices=idx))).backward()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        total = sum(values(loss([x2], [t], rand_indices=idx)))
        total.backward()
    assert x2.grad.dtype == torch.float32
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-5, atol=1e-8)


def test_teacher_with_grad_takes_plain_autograd():
    """A generic use (both sides trainable) gets the same values and
    gradients for both sides."""
    g = torch.Generator().manual_seed(4)
    fs = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    ft = torch.randn(3, 5, 6, generator=g, dtype=torch.float64)
    idx = torch.randperm(15, generator=g)[:4]
    loss = ManifoldRelationLoss(num_rand_rows=4)
    s1, t1 = fs.clone().requires_grad_(), ft.clone().requires_grad_()
    s2, t2 = fs.clone().requires_grad_(), ft.clone().requires_grad_()
    got = values(loss([s1], [t1], rand_indices=[idx]))
    want = reference(s2, t2, idx)
    for a, w in zip(got, want):
        assert torch.allclose(a, w, atol=1e-12)
    sum(got).backward()
    sum(want).backward()
    assert torch.allclose(s1.grad, s2.grad, atol=1e-12)
    assert torch.allclose(t1.grad, t2.grad, atol=1e-12)
    assert t1.grad.abs().sum() > 0
