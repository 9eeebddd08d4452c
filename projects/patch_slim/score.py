# Copyright (c) EVLab contributors.
"""The impact score of patch tokens (spec 2.3): how strongly the tokens
that later blocks keep, ultimately the class token of the last block,
depend on token ``i`` of block ``t``'s output, times the size of token
``i``'s attention output at block ``t``.

The paper's formula (as transcribed; its details are uncertain) for the
significance of token ``i`` at block ``t``::

    s_{t,i} = sum over head paths ( A_{h,t}[:, i] . U_{h,t}[i, :] )^2
    A_{h,t} = prod_{l=t+1..L} diag(m_l) P_{h,l}      (l = L leftmost)
    U_{h,t} = P_{h,t} |Z_{t-1}|

It linearises the network (no MLP, non-linearity or residual). We read
the product of the column ``A[:, i]`` and the row ``U[i, :]`` as an outer
product, whose squared Frobenius norm is ``|A[:, i]|^2 |U[i, :]|^2``
[re-derivation], and ``Z`` as the attention's input (the block input after
its first LayerNorm) [re-derivation]. Since ``m_L`` keeps only the class
token, only row 0 of ``A`` is non-zero. Blocks are 0-indexed here.

Two modes, both vectorised and averaged over the calibration images:

- ``'mean_head'`` (the default, spec 2.3): the heads' mean attention
  ``P_bar``; ``v = e_0``, then ``v <- (v * m_l) @ P_bar_l`` for ``l`` from
  the last block down to ``t + 1`` (attention rollout restricted to kept
  queries); ``s_i = mean(v_i^2 |(P_bar_t |Z_t|)[i]|^2)``;
- ``'exact_paths'``: the sum over all ``H^(L-t)`` head paths, without
  enumerating them: ``W = e_0 e_0^T``, then
  ``W <- sum_h P_{h,l}^T (D_l W D_l) P_{h,l}`` (``D_l = diag(m_l)``), so
  ``W_ii`` is the sum over the later heads' paths of ``A[0, i]^2``, and
  ``s_i = mean(W_ii sum_h |(P_{h,t} |Z_t|)[i]|^2)``. Tested against a
  loop over every path on a tiny model;
- ``'rollout_residual'``: ``'mean_head'`` with ``0.5 P + 0.5 I`` (the
  residual path), an ablation switch.
"""
from typing import List, Sequence

import torch
from torch import Tensor

SCORE_MODES = ('mean_head', 'exact_paths', 'rollout_residual')


def _check_mode(mode: str) -> None:
    if mode not in SCORE_MODES:
        raise ValueError(f'score_mode must be one of {SCORE_MODES}, got '
                         f'{mode!r}')


def token_scores(maps: Sequence[Tensor], inputs: Sequence[Tensor],
                 keep_mask: Tensor, layer: int,
                 mode: str = 'mean_head') -> Tensor:
    """Per-image impact scores of the tokens of block ``layer``'s output.

    Args:
        maps (list[Tensor]): Attention maps of every block, ``(B, H, N, N)``
            each (rows: queries, columns: keys; absent keys have weight 0).
        inputs (list[Tensor]): Attention inputs of every block (after the
            block's first LayerNorm), ``(B, N, C)`` each.
        keep_mask (Tensor): ``(L, N)`` bool, the kept tokens of each block
            (those of blocks after ``layer`` are used).
        layer (int): The block ``t`` whose output tokens are scored.
        mode (str): See the module docstring. Defaults to ``'mean_head'``.

    Returns:
        Tensor: ``(B, N)`` scores (average over the batch for the score).
    """
    _check_mode(mode)
    num_layers = len(maps)
    B, H, N, _ = maps[layer].shape
    dtype = maps[layer].dtype
    mask = keep_mask.to(dtype)
    e0 = torch.zeros(B, N, dtype=dtype, device=maps[layer].device)
    e0[:, 0] = 1
    z = inputs[layer].abs()  # (B, N, C)
    if mode == 'exact_paths':
        w = e0[:, :, None] * e0[:, None, :]  # (B, N, N)
        for j in range(num_layers - 1, layer, -1):
            d = mask[j]
            dwd = w * d[None, :, None] * d[None, None, :]
            # sum_h P_h^T (D W D) P_h: (B,H,j,i), (B,j,k), (B,H,k,m)
            w = torch.einsum('bhji,bjk,bhkm->bim', maps[j], dwd, maps[j])
        a2 = torch.diagonal(w, dim1=1, dim2=2)  # (B, N)
        u2 = (maps[layer] @ z[:, None]).square().sum(-1).sum(1)  # (B, N)
        return a2 * u2
    # (B, N, N) each; blocks before `layer` are not needed (may be None)
    p_bar = [None if m is None else m.mean(dim=1) for m in maps]
    if mode == 'rollout_residual':
        eye = torch.eye(N, dtype=dtype, device=e0.device)
        p_bar = [None if p is None else 0.5 * p + 0.5 * eye for p in p_bar]
    v = e0[:, None, :]  # (B, 1, N)
    for j in range(num_layers - 1, layer, -1):
        v = (v * mask[j]) @ p_bar[j]
    u2 = (p_bar[layer] @ z).square().sum(-1)  # (B, N)
    return v[:, 0].square() * u2


def rank_candidates(scores: Tensor, keep_next: Tensor) -> List[int]:
    """Positions not kept by the next block, most significant first (ties:
    the lower position first); ``scores`` is ``(N,)``."""
    candidates = (~keep_next.bool()).nonzero().flatten().tolist()
    return sorted(candidates, key=lambda i: (-float(scores[i]), i))
