# Copyright (c) EVLab contributors.
"""The impact score (spec 2.3 and 5) on a tiny ViT (3 blocks, 2 heads, 5
tokens, width 8), in float64: the vectorised exact-paths score equals a
loop over every head path, the mean-head score equals the formula computed
by hand, and the recorded maps are those of the pruned network."""
import itertools

import pytest
import torch

from projects.patch_slim import PatchSlimViT
from projects.patch_slim.score import rank_candidates, token_scores

TINY = dict(arch=dict(embed_dims=8, num_layers=3, num_heads=2,
                      feedforward_channels=16),
            img_size=16, patch_size=8)  # 4 patches + cls = 5 tokens
# block outputs: all 5, then 4, then the class token alone
KEEP = [[0, 1, 2, 3, 4], [0, 1, 3, 4], [0]]


def _model():
    torch.manual_seed(0)
    model = PatchSlimViT(keep_indices=KEEP, **TINY).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def _record(model, x, mask=None):
    record = dict(maps=[], inputs=[])
    tokens, _ = model.embed(x)
    feat = model.forward_blocks(tokens, 0, mask, record)
    return feat, record['maps'], record['inputs']


def test_recorded_maps_are_the_pruned_networks():
    model = _model()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        feat, maps, inputs = _record(model, x)
        torch.testing.assert_close(feat, model(x)[0], rtol=0, atol=1e-12)
    assert [tuple(m.shape) for m in maps] == [(3, 2, 5, 5)] * 3
    for m in maps:
        torch.testing.assert_close(m.sum(-1), torch.ones(3, 2, 5,
                                   dtype=torch.float64))
    # block 2 reads block 1's tokens only: token 2 has no weight as a key
    assert maps[2][..., 2].abs().max() == 0
    assert maps[1][..., 2].abs().min() > 0


def _brute_force(maps, inputs, mask, t):
    """spec 2.3 literally: sum over every head path of
    |A[:, i]|^2 |U[i, :]|^2, A = D_L P_L ... D_{t+1} P_{t+1},
    U = P_t |Z_t|; mean over images."""
    L, H = len(maps), maps[0].shape[1]
    B, N = maps[0].shape[0], maps[0].shape[2]
    out = torch.zeros(N, dtype=torch.float64)
    for b in range(B):
        for path in itertools.product(range(H), repeat=L - t):
            h_t, later = path[0], path[1:]
            a = torch.eye(N, dtype=torch.float64)
            for j, h in zip(range(L - 1, t, -1), later):
                # the product with l = L leftmost
                a = a @ torch.diag(mask[j].double()) @ maps[j][b, h]
            u = maps[t][b, h_t] @ inputs[t][b].abs()
            for i in range(N):
                out[i] += a[:, i].square().sum() * u[i].square().sum()
    return out / B


def _by_hand_mean_head(maps, inputs, mask, t):
    L, B, N = len(maps), maps[0].shape[0], maps[0].shape[2]
    out = torch.zeros(N, dtype=torch.float64)
    for b in range(B):
        a = torch.eye(N, dtype=torch.float64)
        for j in range(L - 1, t, -1):
            a = a @ torch.diag(mask[j].double()) @ maps[j][b].mean(0)
        u = maps[t][b].mean(0) @ inputs[t][b].abs()
        for i in range(N):
            out[i] += a[0, i] ** 2 * u[i].square().sum()
    return out / B


@pytest.mark.parametrize('t', [0, 1])
def test_exact_paths_equals_the_loop_over_head_paths(t):
    model = _model()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    mask = model.keep_mask.clone()
    mask[:t + 1] = True  # blocks up to t dense while t is scored
    with torch.no_grad():
        _, maps, inputs = _record(model, x, mask)
        ours = token_scores(maps, inputs, mask, t, 'exact_paths').mean(0)
    torch.testing.assert_close(ours, _brute_force(maps, inputs, mask, t),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('t', [0, 1])
def test_mean_head_equals_the_formula_by_hand(t):
    model = _model()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    mask = model.keep_mask.clone()
    mask[:t + 1] = True
    with torch.no_grad():
        _, maps, inputs = _record(model, x, mask)
        ours = token_scores(maps, inputs, mask, t, 'mean_head').mean(0)
    torch.testing.assert_close(
        ours, _by_hand_mean_head(maps, inputs, mask, t), rtol=1e-9,
        atol=1e-12)
    assert ours.min() >= 0 and ours[0] > 0


def test_scores_of_tokens_no_later_block_reads_are_zero():
    """A token dropped by block t+1 cannot reach the class token through
    the blocks after t (its column of the rollout is zero) ... except as
    a key of block t+1 itself, which reads every token of block t."""
    model = _model()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    mask = model.keep_mask.clone()
    mask[0] = True
    with torch.no_grad():
        _, maps, inputs = _record(model, x, mask)
        # block 0: block 1 reads all 5 tokens as keys: all may matter
        s0 = token_scores(maps, inputs, mask, 0).mean(0)
        # block 1's output: block 2 keeps only the class token as query;
        # its keys are block 1's 4 tokens, so token 2 (dropped) scores 0
        s1 = token_scores(maps, inputs, mask, 1).mean(0)
    assert (s0 > 0).all()
    assert s1[2] == 0 and (s1[[0, 1, 3, 4]] > 0).all()


def test_rank_candidates_orders_the_tokens_not_kept_yet():
    scores = torch.tensor([9.0, 0.5, 3.0, 3.0, 0.1])
    keep_next = torch.tensor([True, False, False, False, True])
    assert rank_candidates(scores, keep_next) == [2, 3, 1]


def test_unknown_score_mode_is_refused():
    with pytest.raises(ValueError, match="score_mode must be one of"):
        token_scores([], [], torch.ones(1, 1, dtype=torch.bool), 0, 'max')
