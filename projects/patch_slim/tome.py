# Copyright (c) EVLab contributors.
"""Token merging (ToMe; Bolya et al., "Token Merging: Your ViT but
Faster", ICLR 2023), the training-free comparison of Patch Slimming: after
the attention of each block, ``r`` tokens are merged into others by
bipartite soft matching, so the MLP and every later block see ``r`` fewer
tokens. Written here from the paper's description:

1. the metric is the attention's keys averaged over heads, L2-normalised;
2. the tokens are split alternately into sets A (even positions) and B
   (odd); each token of A is matched to its most similar token of B
   (cosine similarity);
3. the ``r`` most similar A tokens are merged into their B partners (a
   size-weighted average), the class token (position 0, in A) never;
4. each token carries its size (how many patches it stands for), and
   attention adds ``log(size)`` to the logits of its key (proportional
   attention), so a merged token counts as the tokens it replaced.

The class token stays first. MACs of a block that reads ``N`` tokens and
merges ``r``: ``4 N d^2 + 2 N^2 d + 2 (N - r) d h`` plus the matching,
``|A| |B| d_head`` (:func:`tome_block_macs`).
"""
from typing import Tuple

import torch
from torch import Tensor


def bipartite_merge(x: Tensor, size: Tensor, metric: Tensor,
                    r: int) -> Tuple[Tensor, Tensor]:
    """Merge ``r`` tokens of ``x`` (B, N, C) with sizes ``size`` (B, N, 1)
    by bipartite soft matching on ``metric`` (B, N, D); returns the
    ``N - r`` tokens (the class token first) and their sizes."""
    n = x.shape[1]
    r = min(r, (n - 1) // 2)  # at most the A tokens other than the cls
    if r <= 0:
        return x, size
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    a, b = metric[:, ::2], metric[:, 1::2]
    scores = a @ b.transpose(1, 2)  # (B, |A|, |B|)
    scores[:, 0] = float('-inf')  # the class token is never merged
    best, partner = scores.max(dim=-1)  # (B, |A|)
    order = best.argsort(dim=-1, descending=True)
    merged, kept = order[:, :r], order[:, r:]
    # the class token (A position 0) sorts last; keep A's order so it
    # stays first
    kept = kept.sort(dim=-1).values
    dst = partner.gather(1, merged)  # (B, r) positions in B
    c = x.shape[-1]
    xs = x * size
    xa, xb = xs[:, ::2], xs[:, 1::2]
    sa, sb = size[:, ::2], size[:, 1::2]

    def take(t, idx):
        return t.gather(1, idx[..., None].expand(-1, -1, t.shape[-1]))

    xb = xb.scatter_reduce(1, dst[..., None].expand(-1, -1, c),
                           take(xa, merged), reduce='sum')
    sb = sb.scatter_reduce(1, dst[..., None], take(sa, merged), reduce='sum')
    out_x = torch.cat([take(xa, kept), xb], dim=1)
    out_s = torch.cat([take(sa, kept), sb], dim=1)
    return out_x / out_s, out_s


def tome_block_macs(n_in: int, r: int, dims: int, hidden: int,
                    head_dims: int) -> int:
    """MACs of a ToMe block reading ``n_in`` tokens and merging ``r``."""
    r = min(r, (n_in - 1) // 2) if r > 0 else 0
    n_out = n_in - r
    n_a, n_b = (n_in + 1) // 2, n_in // 2
    match = n_a * n_b * head_dims if r else 0
    return (4 * n_in * dims * dims + 2 * n_in * n_in * dims +
            2 * n_out * dims * hidden + match)
