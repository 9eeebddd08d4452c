# Copyright (c) EVLab contributors.
"""The interlaced partition: exact round trips with and without padding,
group membership, the padding split."""
import pytest
import torch

from projects.issa import (
    long_to_map,
    long_to_short,
    partition_meta,
    short_to_long,
    short_to_map,
    to_long_groups,
    to_short_groups,
)

# (h, w, down_factor): divisible, padded on one or both axes, P = 1, P > size
CASES = [(16, 16, (8, 8)), (13, 11, (4, 4)), (7, 9, (3, 5)), (97, 97, (8, 8)),
         (5, 6, (1, 1)), (3, 2, (8, 8)), (1, 1, (4, 4))]


def coords(h: int, w: int, n: int = 2) -> torch.Tensor:
    """(n, 2, h, w) maps whose channels are the pixel's (y + 1, x + 1);
    padded pixels become (0, 0)."""
    ys, xs = torch.meshgrid(torch.arange(h) + 1., torch.arange(w) + 1.,
                            indexing='ij')
    return torch.stack([ys, xs])[None].expand(n, -1, -1, -1).contiguous()


@pytest.mark.parametrize('h,w,df', CASES)
def test_round_trips_restore_the_input_exactly(h, w, df):
    x = torch.randn(2, 3, h, w)
    g, meta = to_long_groups(x, df)
    assert torch.equal(short_to_map(long_to_short(g, meta), meta), x)
    assert torch.equal(long_to_map(g, meta), x)
    s, meta_s = to_short_groups(x, df)
    assert meta_s == meta
    assert torch.equal(long_to_map(short_to_long(s, meta), meta), x)
    assert torch.equal(short_to_long(long_to_short(g, meta), meta), g)


@pytest.mark.parametrize('h,w,df', CASES)
def test_groups_hold_the_interlaced_and_the_local_pixels(h, w, df):
    n = 2
    x = coords(h, w, n)
    g, m = to_long_groups(x, df)
    p_h, p_w = df
    assert g.shape == (n * p_h * p_w, 2, m.q_h, m.q_w)
    left, _, top, _ = m.pad
    # padded pixel (i * P_h + a, j * P_w + b) is input pixel (.. - top, ..)
    for b_idx in range(n):
        for a in range(p_h):
            for b in range(p_w):
                grp = g[(b_idx * p_h + a) * p_w + b]
                for i in range(m.q_h):
                    for j in range(m.q_w):
                        y = i * p_h + a - top
                        xx = j * p_w + b - left
                        inside = 0 <= y < h and 0 <= xx < w
                        want = [y + 1., xx + 1.] if inside else [0., 0.]
                        assert grp[:, i, j].tolist() == want
    s = long_to_short(g, m)
    assert s.shape == (n * m.q_h * m.q_w, 2, p_h, p_w)
    padded = torch.nn.functional.pad(x, m.pad)
    for b_idx in range(n):
        for i in range(m.q_h):
            for j in range(m.q_w):
                block = padded[b_idx, :, i * p_h:(i + 1) * p_h,
                               j * p_w:(j + 1) * p_w]
                assert torch.equal(s[(b_idx * m.q_h + i) * m.q_w + j], block)


@pytest.mark.parametrize('size,p,q,before,after', [
    (97, 8, 13, 3, 4),  # 769 crop, D8 (spec 3)
    (86, 8, 11, 1, 1),  # ADE20K 683 px wide, D8
    (64, 8, 8, 0, 0),
    (13, 4, 4, 1, 2),
])
def test_padding_split_is_mmseg_s(size, p, q, before, after):
    m = partition_meta((1, 1, size, size), (p, p))
    assert (m.q_h, m.q_w) == (q, q)
    assert m.pad == (before, after, before, after)


def test_bad_down_factor_is_named():
    with pytest.raises(ValueError, match='down_factor'):
        to_long_groups(torch.zeros(1, 1, 4, 4), (0, 2))
