# Copyright (c) EVLab contributors.
"""The Dual Part-aligned Block against its formulas (spec 2.2, 5), in
float64 so that the checks do not depend on the CPU's kernels."""
import math

import pytest
import torch
import torch.nn.functional as F

from projects.p2net.dpb import (
    DualPartAlignedBlock,
    masked_part_mean,
    resize_part_map,
)


def dense_human_pool(x, labels, bg_mode='own'):
    """The official dense formula: a row-L1-normalised N x N
    label-equality matrix times X; with ``bg_mode='global'`` background
    rows average over every pixel."""
    same = (labels[:, :, None] == labels[:, None, :]).double()  # (B, N, N)
    if bg_mode == 'global':
        bg = labels == 0
        same[bg] = 1.0
    same = same / same.sum(-1, keepdim=True)
    return torch.bmm(same, x.transpose(1, 2)).transpose(1, 2)  # (B, C, N)


def scatter_back(means, labels):
    idx = labels[:, None].expand(-1, means.shape[2], -1)
    return torch.gather(means.transpose(1, 2), 2, idx)


@pytest.mark.parametrize('bg_mode', ['own', 'global'])
@pytest.mark.parametrize('absent', [None, 3])
def test_masked_mean_equals_the_dense_formula(bg_mode, absent):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 16, 40, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (3, 40), generator=g)
    if absent is not None:  # one class absent from every image
        labels[labels == absent] = 0
    means = masked_part_mean(x, labels, 5, bg_mode)
    assert means.shape == (3, 5, 16)
    torch.testing.assert_close(scatter_back(means, labels),
                               dense_human_pool(x, labels, bg_mode),
                               atol=1e-12, rtol=0)
    if absent is not None:
        assert torch.equal(means[:, absent], torch.zeros(3, 16).double())


def test_new_block_is_exactly_the_identity_in_train_and_eval():
    torch.manual_seed(0)
    block = DualPartAlignedBlock(32, num_parts=5)
    x = torch.randn(2, 32, 6, 4)
    parts = torch.randint(0, 5, (2, 24, 16))
    block.train()
    assert torch.equal(block(x, parts), x)
    block.eval()
    assert torch.equal(block(x, parts), x)


def _trained_like(block):
    """Non-zero BN affine and running statistics: the block is no longer
    the identity, and eval mode uses the running statistics."""
    g = torch.Generator().manual_seed(1)
    for bn in (block.bn_latent, block.bn_human):
        bn.weight.data = torch.rand(bn.num_features, generator=g,
                                    dtype=torch.float64) + 0.5
        bn.bias.data = torch.randn(bn.num_features, generator=g,
                                   dtype=torch.float64)
        bn.running_mean = torch.randn(bn.num_features, generator=g,
                                      dtype=torch.float64)
        bn.running_var = torch.rand(bn.num_features, generator=g,
                                    dtype=torch.float64) + 0.5
    return block.eval()


def _bn(bn, z):
    return F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight,
                        bn.bias, False, 0.0, bn.eps)


def test_block_equals_the_formulas_of_both_branches():
    torch.manual_seed(0)
    block = _trained_like(DualPartAlignedBlock(16, c1=8, c2=6,
                                               num_parts=4).double())
    x = torch.randn(2, 16, 5, 3, dtype=torch.float64)
    parts = torch.randint(0, 4, (2, 10, 6))
    out = block(x, parts)
    b, c = 2, 16
    xf = x.flatten(2)

    def conv(m, t):  # 1x1 conv on (B, C, N)
        return torch.einsum('oc,bcn->bon', m.weight[:, :, 0, 0], t) + \
            m.bias[None, :, None]

    q, k, v = conv(block.theta, xf), conv(block.phi, xf), conv(block.g, xf)
    attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(8), dim=-1)
    z_lat = conv(block.rho, v @ attn.transpose(1, 2))
    labels = resize_part_map(parts, (5, 3)).flatten(1)
    pooled = dense_human_pool(xf, labels)
    z_hum = conv(block.human, pooled)
    want = xf + _bn(block.bn_latent, z_lat.view(b, c, 5, 3)).flatten(2) + \
        _bn(block.bn_human, z_hum.view(b, c, 5, 3)).flatten(2)
    torch.testing.assert_close(out.flatten(2), want, atol=1e-10, rtol=0)


@pytest.mark.parametrize('use_latent,use_human', [(True, False),
                                                  (False, True)])
def test_each_branch_alone(use_latent, use_human):
    torch.manual_seed(0)
    full = _trained_like(DualPartAlignedBlock(8, num_parts=3).double())
    one = DualPartAlignedBlock(8, num_parts=3, use_latent=use_latent,
                               use_human=use_human).double().eval()
    one.load_state_dict(full.state_dict(), strict=False)
    x = torch.randn(2, 8, 4, 2, dtype=torch.float64)
    parts = torch.randint(0, 3, (2, 8, 4))
    branch = (_bn(full.bn_latent, full.latent(x)) if use_latent
              else _bn(full.bn_human, full.human_part(x, parts)))
    torch.testing.assert_close(one(x, parts if use_human else None),
                               x + branch, atol=1e-12, rtol=0)


def test_resize_part_map_is_nearest_with_pad_as_background():
    parts = torch.arange(8 * 4).view(1, 8, 4) % 5
    parts[0, 0, 0] = 255
    small = resize_part_map(parts, (4, 2))
    # nearest: source index floor(dst * in / out) = 2 * dst
    want = parts[:, ::2, ::2].clone()
    want[want == 255] = 0
    assert torch.equal(small, want)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match='bg_mode'):
        DualPartAlignedBlock(8, bg_mode='all')
    with pytest.raises(ValueError, match='dpb_stages'):
        DualPartAlignedBlock(8, use_latent=False, use_human=False)
    block = DualPartAlignedBlock(8, num_parts=3)
    with pytest.raises(ValueError, match='part maps'):
        block(torch.randn(1, 8, 2, 2))
    with pytest.raises(ValueError, match=r'\[0, 3\)'):
        block(torch.randn(1, 8, 2, 2), torch.full((1, 2, 2), 4))
