# Copyright (c) EVLab contributors.
"""The interlaced partition of ISA (arXiv 1907.12273, Sec. 3.2), as pure
tensor functions.

A feature map of size (h, w) is zero-padded to (Q_h * P_h, Q_w * P_w) with
``Q = ceil(size / P)``; the padded pixel (y, x) = (i * P_h + a, j * P_w + b)
with 0 <= a < P_h, 0 <= i < Q_h (and likewise b, j). The *long-range*
groups are indexed by (a, b): P_h * P_w groups of Q_h x Q_w pixels that lie
P apart across the whole map. The *short-range* groups are indexed by
(i, j): Q_h * Q_w contiguous blocks of P_h x P_w pixels. Padding follows
mmseg's ``ISAHead``: ``pad // 2`` rows (columns) before, the rest after.

Layouts, all contiguous tensors of rank 4 so that 2-d convs apply:

- map: (n, c, Q_h * P_h, Q_w * P_w), or (n, c, h, w) before padding;
- long: (n * P_h * P_w, c, Q_h, Q_w), batch index ``(n, a, b)``;
- short: (n * Q_h * Q_w, c, P_h, P_w), batch index ``(n, i, j)``.
"""
from typing import NamedTuple, Sequence, Tuple, Union

import torch
import torch.nn.functional as F


class PartitionMeta(NamedTuple):
    """What the inverse steps need to undo :func:`to_long_groups`.

    ``pad`` is ``(left, right, top, bottom)``, the order of ``F.pad``.
    """
    n: int
    c: int
    h: int
    w: int
    p_h: int
    p_w: int
    q_h: int
    q_w: int
    pad: Tuple[int, int, int, int]


def _pair(down_factor: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(down_factor, int):
        down_factor = (down_factor, down_factor)
    p_h, p_w = (int(p) for p in down_factor)
    if p_h < 1 or p_w < 1:
        raise ValueError(f'down_factor must be positive, got {down_factor}')
    return p_h, p_w


def partition_meta(shape: Sequence[int],
                   down_factor: Union[int, Sequence[int]]) -> PartitionMeta:
    """Group sizes and padding of an (n, c, h, w) map (spec 2.1 step 1)."""
    n, c, h, w = (int(s) for s in shape)
    p_h, p_w = _pair(down_factor)
    q_h, q_w = -(-h // p_h), -(-w // p_w)  # ceil
    pad_h, pad_w = q_h * p_h - h, q_w * p_w - w
    pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return PartitionMeta(n, c, h, w, p_h, p_w, q_h, q_w, pad)


def pad_map(x: torch.Tensor, meta: PartitionMeta) -> torch.Tensor:
    """Zero-pad (n, c, h, w) to (n, c, Q_h * P_h, Q_w * P_w)."""
    return F.pad(x, meta.pad) if any(meta.pad) else x


def crop_map(x: torch.Tensor, meta: PartitionMeta) -> torch.Tensor:
    """Undo :func:`pad_map`."""
    if not any(meta.pad):
        return x
    left, _, top, _ = meta.pad
    return x[:, :, top:top + meta.h, left:left + meta.w]


def _map_to(x: torch.Tensor, meta: PartitionMeta, dims: Tuple[int, ...],
            size: Tuple[int, int]) -> torch.Tensor:
    m = meta
    # (n, c, Q_h * P_h, Q_w * P_w) -> (n, c, Q_h, P_h, Q_w, P_w)
    x = x.reshape(m.n, m.c, m.q_h, m.p_h, m.q_w, m.p_w)
    return x.permute(*dims).reshape(-1, m.c, *size)


def to_long_groups(x: torch.Tensor, down_factor: Union[int, Sequence[int]]
                   ) -> Tuple[torch.Tensor, PartitionMeta]:
    """Pad and regroup a map into the long-range groups (spec 2.1, 1-3).

    Args:
        x (Tensor): (n, c, h, w).
        down_factor (int | Sequence[int]): (P_h, P_w), the size of a
            short-range group (mmseg's "local group size").

    Returns:
        tuple[Tensor, PartitionMeta]: (n * P_h * P_w, c, Q_h, Q_w) and the
        meta for the inverse steps.
    """
    meta = partition_meta(x.shape, down_factor)
    # -> (n, P_h, P_w, c, Q_h, Q_w) -> (n * P_h * P_w, c, Q_h, Q_w)
    g = _map_to(pad_map(x, meta), meta, (0, 3, 5, 1, 2, 4),
                (meta.q_h, meta.q_w))
    return g, meta


def to_short_groups(x: torch.Tensor, down_factor: Union[int, Sequence[int]]
                    ) -> Tuple[torch.Tensor, PartitionMeta]:
    """Pad and regroup a map into the short-range groups.

    Returns:
        tuple[Tensor, PartitionMeta]: (n * Q_h * Q_w, c, P_h, P_w) and the
        meta.
    """
    meta = partition_meta(x.shape, down_factor)
    # -> (n, Q_h, Q_w, c, P_h, P_w) -> (n * Q_h * Q_w, c, P_h, P_w)
    g = _map_to(pad_map(x, meta), meta, (0, 2, 4, 1, 3, 5),
                (meta.p_h, meta.p_w))
    return g, meta


def long_to_short(g: torch.Tensor, meta: PartitionMeta) -> torch.Tensor:
    """Long-range groups -> short-range groups (spec 2.1 step 4)."""
    m = meta
    # (n * P_h * P_w, c, Q_h, Q_w) -> (n, P_h, P_w, c, Q_h, Q_w)
    # -> (n, Q_h, Q_w, c, P_h, P_w) -> (n * Q_h * Q_w, c, P_h, P_w)
    g = g.reshape(m.n, m.p_h, m.p_w, m.c, m.q_h, m.q_w)
    return g.permute(0, 4, 5, 3, 1, 2).reshape(-1, m.c, m.p_h, m.p_w)


def short_to_long(g: torch.Tensor, meta: PartitionMeta) -> torch.Tensor:
    """Short-range groups -> long-range groups (inverse of the above)."""
    m = meta
    # (n * Q_h * Q_w, c, P_h, P_w) -> (n, Q_h, Q_w, c, P_h, P_w)
    # -> (n, P_h, P_w, c, Q_h, Q_w) -> (n * P_h * P_w, c, Q_h, Q_w)
    g = g.reshape(m.n, m.q_h, m.q_w, m.c, m.p_h, m.p_w)
    return g.permute(0, 4, 5, 3, 1, 2).reshape(-1, m.c, m.q_h, m.q_w)


def short_to_map(g: torch.Tensor, meta: PartitionMeta) -> torch.Tensor:
    """Short-range groups -> the (n, c, h, w) map, cropped (step 5)."""
    m = meta
    # (n * Q_h * Q_w, c, P_h, P_w) -> (n, Q_h, Q_w, c, P_h, P_w)
    # -> (n, c, Q_h, P_h, Q_w, P_w) -> (n, c, Q_h * P_h, Q_w * P_w)
    g = g.reshape(m.n, m.q_h, m.q_w, m.c, m.p_h, m.p_w)
    x = g.permute(0, 3, 1, 4, 2, 5).reshape(m.n, m.c, m.q_h * m.p_h,
                                            m.q_w * m.p_w)
    return crop_map(x, meta)


def long_to_map(g: torch.Tensor, meta: PartitionMeta) -> torch.Tensor:
    """Long-range groups -> the (n, c, h, w) map, cropped."""
    m = meta
    # (n * P_h * P_w, c, Q_h, Q_w) -> (n, P_h, P_w, c, Q_h, Q_w)
    # -> (n, c, Q_h, P_h, Q_w, P_w) -> (n, c, Q_h * P_h, Q_w * P_w)
    g = g.reshape(m.n, m.p_h, m.p_w, m.c, m.q_h, m.q_w)
    x = g.permute(0, 3, 4, 1, 5, 2).reshape(m.n, m.c, m.q_h * m.p_h,
                                            m.q_w * m.p_w)
    return crop_map(x, meta)
