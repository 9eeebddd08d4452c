# Copyright (c) EVLab contributors.
"""Query/gallery re-ID evaluation: the exact Market-1501 protocol.

For each query the gallery is sorted by distance (ascending, stable, so
that ties go to the earlier gallery item). Gallery items with the query's
pid *and* camera are removed, and so are junk items (pid -1) when
``drop_junk``; distractors (pid 0) stay as negatives. Hits are the items
with the query's pid. A query with no hit left is skipped and counted.

Per valid query, with n hits at 1-based ranks r_1 < ... < r_n among the
kept items:

- CMC@k = 1 if r_1 <= k;
- AP (``'trapezoid'``, the official Market-1501 code, key ``mAP``):
  sum_i (1/n) (P'_{i-1} + P_i) / 2 with P_i = i / r_i and
  P'_{i-1} = (i - 1) / (r_i - 1), P' = 1 when r_i = 1;
- AP (``'ir'``, torchreid, key ``mAP_ir``): (1/n) sum_i i / r_i;
- INP (AGW, Ye et al., TPAMI 2021; key ``mINP``): n / r_n, i.e. one minus
  the share of negatives ranked before the hardest hit.

Everything is torch (CPU or CUDA) and vectorised over a chunk of queries,
with no loop over queries: a q x g problem never holds more than
``chunk_size`` x g distances at once (:func:`evaluate_features` computes
them chunk by chunk). The hits' ranks are counted rather than read off a
sorted gallery (:func:`_hit_ranks`), with the same result as the stable
sort. Float32 distances of 2048-d unit vectors tie often (about a hundred
tied pairs per gallery row at Market-1501 size); the stable order makes the
scores deterministic, whereas torchreid's ``np.argsort`` breaks ties
arbitrarily, so on float32 distances the two can differ by ~1e-7.

:func:`re_ranking` is the k-reciprocal re-ranking of Zhong et al. (CVPR
2017), equal to torchreid's ``re_ranking``. :class:`QueryGalleryReIDMetric`
runs all of it in mmengine's val loop.
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmengine.structures import BaseDataElement
from mmpretrain.registry import METRICS
from torch import Tensor

from ..common.errors import EVLabError

AP_MODES = ('trapezoid', 'ir')
DIST_METRICS = ('cosine', 'euclidean')
#: the metric key of each AP mode
AP_KEYS = {'trapezoid': 'mAP', 'ir': 'mAP_ir'}

ArrayLike = Union[Tensor, np.ndarray, Sequence[int]]


class ReIDEvalError(EVLabError):
    """The query/gallery results cannot be evaluated as given."""


TORCHREID_INSTALL = (
    'torchreid 0.2.5 is the parity reference: install it with '
    '`.venv/bin/python -m pip install --no-deps torchreid==0.2.5` '
    '(make setup does)')


def load_torchreid_file(rel_path: str):
    """A file of torchreid 0.2.5 (``'reid/metrics/rank.py'``,
    ``'reid/utils/rerank.py'``) loaded alone, numpy only, without
    ``import torchreid`` (which pulls cv2, gdown and tensorboard): the
    reference of the tests and of the benchmark.

    Raises:
        ReIDEvalError: torchreid is not installed (says how to install it).
    """
    import importlib.util
    import sys
    import warnings

    spec = importlib.util.find_spec('torchreid')
    if spec is None or not spec.submodule_search_locations:
        raise ReIDEvalError(TORCHREID_INSTALL)
    path = osp.join(spec.submodule_search_locations[0], *rel_path.split('/'))
    if not osp.isfile(path):
        raise ReIDEvalError(f'{path} is missing: {TORCHREID_INSTALL}')
    mod_spec = importlib.util.spec_from_file_location(
        '_torchreid_' + osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(mod_spec)
    saved = sys.modules.get('torchreid')
    sys.modules['torchreid'] = None  # its optional cython import fails fast
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            mod_spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules['torchreid']
        else:
            sys.modules['torchreid'] = saved
    return module


@dataclass
class RankResult:
    """What :func:`evaluate_rank` returns; all scores are fractions in
    [0, 1], averaged over the valid queries.

    Attributes:
        cmc (Tensor): (max_rank,) float64, ``cmc[k - 1]`` = Rank-k.
        ap (dict[str, float]): mAP of each requested AP mode.
        minp (float): mean inverse negative penalty.
        num_valid (int): queries with at least one hit left.
        num_skipped (int): queries with no hit left (not averaged).
    """

    cmc: Tensor
    ap: Dict[str, float] = field(default_factory=dict)
    minp: float = float('nan')
    num_valid: int = 0
    num_skipped: int = 0


def _as_long(x: ArrayLike, device: torch.device, name: str) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    if t.dim() != 1:
        raise ValueError(f'{name} must be 1-D, got shape {tuple(t.shape)}')
    return t.to(device=device, dtype=torch.long)


def _as_float(x: Union[Tensor, np.ndarray]) -> Tensor:
    t = torch.as_tensor(x)
    return t if t.is_floating_point() else t.float()


def _check_modes(ap_modes: Sequence[str], max_rank: int) -> Tuple[str, ...]:
    ap_modes = tuple(ap_modes)
    bad = [m for m in ap_modes if m not in AP_MODES]
    if bad:
        raise ValueError(f'unknown ap_modes {bad}; choose from {AP_MODES}')
    if max_rank < 1:
        raise ValueError(f'max_rank must be >= 1, got {max_rank}')
    return ap_modes


def pairwise_distance(x: Tensor, y: Tensor,
                      metric: str = 'cosine') -> Tensor:
    """Distances between the rows of ``x`` (m, d) and ``y`` (n, d).

    Args:
        x (Tensor): (m, d) features.
        y (Tensor): (n, d) features.
        metric (str): ``'cosine'``: 1 - cos (the features are
            L2-normalised here, so unnormalised inputs are fine);
            ``'euclidean'``: the L2 distance. Defaults to ``'cosine'``.

    Returns:
        Tensor: (m, n) distances, in the dtype of ``x``.
    """
    if metric == 'cosine':
        return 1 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()
    if metric == 'euclidean':
        # |x - y|^2 = |x|^2 + |y|^2 - 2 x.y, clamped against round-off
        d2 = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None] \
            - 2 * x @ y.t()
        return d2.clamp_min_(0).sqrt_()
    raise ValueError(f'metric must be one of {DIST_METRICS}, got '
                     f'{metric!r}')


def _hit_ranks(dist: Tensor, q_pids: Tensor, q_camids: Tensor,
               g_pids: Tensor, g_camids: Tensor, drop_junk: bool,
               method: str = 'auto') -> Tuple[Tensor, Tensor, Tensor]:
    """The rank of every hit of a chunk of queries, without sorting the
    gallery.

    Equal to sorting each row of ``dist`` with a stable sort, removing the
    same-pid-same-camera (and junk) items and reading off the 1-based
    positions of the hits, but without the O(g log g) sort:
    the n hits of a row are sorted by (distance, gallery index), and the
    rank of hit i is i plus the number of kept negatives that a stable sort
    puts before it (smaller distance, or the same distance and a smaller
    index). Only the negatives no farther than the row's last hit are
    compared with the hits, so the cost is O(g + k n) for k such
    negatives: small for useful features (hits rank high), O(g n) at worst
    (random features). ``method='auto'`` falls back to the stable sort
    (:func:`_hit_ranks_by_sort`) for a chunk where counting would cost
    more; ``'count'`` and ``'sort'`` force one (the tests check both).

    Returns:
        tuple[Tensor, Tensor, Tensor]: for each hit, row-major and in rank
        order within a row: its row (H,), its number i among the row's
        hits (1-based, float64) and its rank r (1-based, float64).
    """
    b, g = dist.shape
    same_pid = g_pids[None] == q_pids[:, None]  # (b, g)
    hits = same_pid & (g_camids[None] != q_camids[:, None])
    negs = ~same_pid  # kept negatives: distractors included
    if drop_junk:
        junk = g_pids[None] == -1
        negs &= ~junk
        hits &= ~junk  # for a (malformed) query of pid -1
        del junk
    del same_pid
    rows, cols = hits.nonzero(as_tuple=True)  # row-major, cols ascending
    del hits
    n = torch.bincount(rows, minlength=b)
    empty = rows.new_empty(0)
    if rows.numel() == 0:
        return empty, empty.double(), empty.double()
    m = int(n.max())
    slot = torch.arange(rows.numel(), device=rows.device) - (n.cumsum(0)
                                                             - n)[rows]
    # (b, m) hit distances, padded with +inf, and their gallery indices
    hd = dist.new_full((b, m), float('inf'))
    hd[rows, slot] = dist[rows, cols]
    hj = torch.full((b, m), g, dtype=torch.long, device=dist.device)
    hj[rows, slot] = cols
    # by (distance, index): the indices ascend already, so sort stably
    hd, perm = torch.sort(hd, dim=1, stable=True)
    hj = hj.gather(1, perm)
    # only a negative no farther than the row's last hit can precede a
    # hit: count those, in blocks of at most 2**22 comparisons
    last = hd.gather(1, (n - 1).clamp_min(0)[:, None])  # (b, 1)
    last = torch.where(n[:, None] > 0, last, float('-inf'))
    negs &= dist <= last
    # ~25 ns a comparison here against ~100 ns an item for torch's sort
    if method == 'sort' or (method == 'auto'
                            and int(negs.sum()) * m > 4 * b * g):
        del negs, hd, hj
        return _hit_ranks_by_sort(dist, q_pids, q_camids, g_pids, g_camids,
                                  drop_junk)
    nr, nc = negs.nonzero(as_tuple=True)
    del negs
    below = torch.zeros(b, m, dtype=torch.long, device=dist.device)
    block = max(1, 2**22 // m)
    for s in range(0, nr.numel(), block):
        r_, c_ = nr[s:s + block], nc[s:s + block]
        v, h = dist[r_, c_][:, None], hd[r_]  # (k, 1), (k, m)
        # before hit k in a stable sort: closer, or as close and earlier
        before = (v < h) | ((v == h) & (c_[:, None] < hj[r_]))
        below.index_add_(0, r_, before.long())
    valid = torch.arange(m, device=dist.device)[None] < n[:, None]
    rows, slot = valid.nonzero(as_tuple=True)  # row-major, rank order
    i = (slot + 1).double()
    return rows, i, i + below[rows, slot].double()


def _hit_ranks_by_sort(dist: Tensor, q_pids: Tensor, q_camids: Tensor,
                       g_pids: Tensor, g_camids: Tensor,
                       drop_junk: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`_hit_ranks` the plain way: sort each row (stable), remove
    the same-pid-same-camera and junk items, read off the hits' ranks."""
    b = dist.shape[0]
    order = torch.sort(dist, dim=1, stable=True).indices  # (b, g)
    gp = g_pids[order]
    same_pid = gp == q_pids[:, None]
    remove = same_pid & (g_camids[order] == q_camids[:, None])
    if drop_junk:
        remove |= gp == -1
    del gp, order
    keep = ~remove
    hits = same_pid & keep
    del same_pid, remove
    rank = keep.cumsum(1, dtype=torch.int32)  # 1-based, among kept items
    rows, cols = hits.nonzero(as_tuple=True)  # row-major, rank order
    r = rank[rows, cols].double()
    n = torch.bincount(rows, minlength=b)
    i = (torch.arange(rows.numel(), device=rows.device)
         - (n.cumsum(0) - n)[rows] + 1).double()
    return rows, i, r


class _RankAccumulator:
    """Sums of the per-query scores over chunks of queries."""

    def __init__(self, g_pids: Tensor, g_camids: Tensor, max_rank: int,
                 ap_modes: Tuple[str, ...], drop_junk: bool) -> None:
        self.g_pids, self.g_camids = g_pids, g_camids
        self.max_rank, self.ap_modes = max_rank, ap_modes
        self.drop_junk = drop_junk
        dev = g_pids.device
        self.cmc = torch.zeros(max_rank, dtype=torch.float64, device=dev)
        self.ap = {m: torch.zeros((), dtype=torch.float64, device=dev)
                   for m in ap_modes}
        self.inp = torch.zeros((), dtype=torch.float64, device=dev)
        self.num_valid = 0
        self.num_skipped = 0

    def add(self, dist: Tensor, q_pids: Tensor, q_camids: Tensor) -> None:
        """Score a chunk: ``dist`` (b, g) of queries with these ids."""
        b = dist.shape[0]
        rows, i, r = _hit_ranks(dist, q_pids, q_camids, self.g_pids,
                                self.g_camids, self.drop_junk)
        n = torch.bincount(rows, minlength=b)  # (b,) hits per query
        valid = n > 0
        start = n.cumsum(0) - n  # offset of each row's first hit
        n_v = n[valid].to(torch.float64)
        self.num_valid += int(valid.sum())
        self.num_skipped += b - int(valid.sum())
        if not bool(valid.any()):
            return
        r_first = r[start[valid]]
        r_last = r[(start + n - 1)[valid]]
        ks = torch.arange(1, self.max_rank + 1, device=r.device,
                          dtype=torch.float64)
        self.cmc += (r_first[:, None] <= ks[None]).sum(0)
        self.inp += (n_v / r_last).sum()
        precision = i / r  # P_i
        for mode in self.ap_modes:
            if mode == 'ir':
                terms = precision
            else:  # trapezoid: (P'_{i-1} + P_i) / 2, P' = 1 when r_i = 1
                prev = torch.where(r > 1, (i - 1) / (r - 1).clamp_min(1),
                                   torch.ones_like(r))
                terms = (prev + precision) / 2
            per_q = torch.zeros(b, dtype=torch.float64, device=r.device)
            per_q.index_add_(0, rows, terms)
            self.ap[mode] += (per_q[valid] / n_v).sum()

    def result(self) -> RankResult:
        if self.num_valid == 0:
            raise ReIDEvalError(
                f'no query has a match in the gallery (all '
                f'{self.num_skipped} queries skipped): check that query '
                'ids appear in the gallery under another camera')
        nv = self.num_valid
        return RankResult(
            cmc=(self.cmc / nv).cpu(),
            ap={m: float(v) / nv for m, v in self.ap.items()},
            minp=float(self.inp) / nv, num_valid=nv,
            num_skipped=self.num_skipped)


def evaluate_rank(distmat: Union[Tensor, np.ndarray],
                  q_pids: ArrayLike,
                  g_pids: ArrayLike,
                  q_camids: ArrayLike,
                  g_camids: ArrayLike,
                  max_rank: int = 10,
                  ap_modes: Sequence[str] = AP_MODES,
                  drop_junk: bool = True,
                  chunk_size: Optional[int] = None) -> RankResult:
    """CMC, mAP and mINP of a query x gallery distance matrix.

    Args:
        distmat (Tensor | np.ndarray): (q, g) distances, smaller is closer.
        q_pids (ArrayLike): (q,) query person ids.
        g_pids (ArrayLike): (g,) gallery person ids; -1 is junk, 0 a
            distractor.
        q_camids (ArrayLike): (q,) query cameras.
        g_camids (ArrayLike): (g,) gallery cameras.
        max_rank (int): Length of the CMC curve. Defaults to 10.
        ap_modes (Sequence[str]): AP definitions to compute, of
            ``'trapezoid'`` and ``'ir'``. Defaults to both.
        drop_junk (bool): Remove gallery items with pid -1. Defaults to
            True.
        chunk_size (int, optional): Queries scored at once; None scores
            all at once. Defaults to None.

    Returns:
        RankResult: the scores (fractions) and the skipped-query count.
    """
    ap_modes = _check_modes(ap_modes, max_rank)
    distmat = _as_float(distmat)
    if distmat.dim() != 2:
        raise ValueError(f'distmat must be (q, g), got shape '
                         f'{tuple(distmat.shape)}')
    dev = distmat.device
    q_pids, g_pids = _as_long(q_pids, dev, 'q_pids'), _as_long(
        g_pids, dev, 'g_pids')
    q_camids, g_camids = _as_long(q_camids, dev, 'q_camids'), _as_long(
        g_camids, dev, 'g_camids')
    nq, ng = distmat.shape
    if len(q_pids) != nq or len(q_camids) != nq or len(g_pids) != ng or \
            len(g_camids) != ng:
        raise ValueError(
            f'distmat is {nq} x {ng} but there are {len(q_pids)} / '
            f'{len(q_camids)} query and {len(g_pids)} / {len(g_camids)} '
            'gallery pids / camids')
    acc = _RankAccumulator(g_pids, g_camids, max_rank, ap_modes, drop_junk)
    step = chunk_size or max(nq, 1)
    for s in range(0, nq, step):
        acc.add(distmat[s:s + step].contiguous(), q_pids[s:s + step],
                q_camids[s:s + step])
    return acc.result()


def evaluate_features(q_feats: Tensor,
                      g_feats: Tensor,
                      q_pids: ArrayLike,
                      g_pids: ArrayLike,
                      q_camids: ArrayLike,
                      g_camids: ArrayLike,
                      metric: str = 'cosine',
                      max_rank: int = 10,
                      ap_modes: Sequence[str] = AP_MODES,
                      drop_junk: bool = True,
                      chunk_size: Optional[int] = 256) -> RankResult:
    """:func:`evaluate_rank` from features, computing the distances one
    chunk of queries at a time (``chunk_size`` x g, never q x g).

    Args:
        q_feats (Tensor): (q, d) query features.
        g_feats (Tensor): (g, d) gallery features, on the same device.
        q_pids (ArrayLike): (q,) query person ids.
        g_pids (ArrayLike): (g,) gallery person ids.
        q_camids (ArrayLike): (q,) query cameras.
        g_camids (ArrayLike): (g,) gallery cameras.
        metric (str): ``'cosine'`` or ``'euclidean'``, see
            :func:`pairwise_distance`. Defaults to ``'cosine'``.
        max_rank (int): Length of the CMC curve. Defaults to 10.
        ap_modes (Sequence[str]): AP definitions. Defaults to both.
        drop_junk (bool): Remove gallery items with pid -1. Defaults to
            True.
        chunk_size (int, optional): Queries scored at once; None scores
            all at once. Defaults to 256.

    Returns:
        RankResult: the scores (fractions) and the skipped-query count.
    """
    ap_modes = _check_modes(ap_modes, max_rank)
    if metric not in DIST_METRICS:
        raise ValueError(f'metric must be one of {DIST_METRICS}, got '
                         f'{metric!r}')
    q_feats, g_feats = _as_float(q_feats), _as_float(g_feats)
    if q_feats.dim() != 2 or g_feats.dim() != 2 or \
            q_feats.shape[1] != g_feats.shape[1]:
        raise ValueError(f'features must be (q, d) and (g, d), got '
                         f'{tuple(q_feats.shape)} and '
                         f'{tuple(g_feats.shape)}')
    dev = q_feats.device
    nq, ng = q_feats.shape[0], g_feats.shape[0]
    q_pids, g_pids = _as_long(q_pids, dev, 'q_pids'), _as_long(
        g_pids, dev, 'g_pids')
    q_camids, g_camids = _as_long(q_camids, dev, 'q_camids'), _as_long(
        g_camids, dev, 'g_camids')
    if len(q_pids) != nq or len(q_camids) != nq or len(g_pids) != ng or \
            len(g_camids) != ng:
        raise ValueError(
            f'{nq} query and {ng} gallery features but {len(q_pids)} / '
            f'{len(q_camids)} query and {len(g_pids)} / {len(g_camids)} '
            'gallery pids / camids')
    if metric == 'cosine':  # normalise once, not per chunk
        q_feats, g_feats = F.normalize(q_feats, dim=1), F.normalize(
            g_feats, dim=1)
        g_t = g_feats.t()
    acc = _RankAccumulator(g_pids, g_camids, max_rank, ap_modes, drop_junk)
    step = chunk_size or max(nq, 1)
    for s in range(0, nq, step):
        q = q_feats[s:s + step]
        if metric == 'cosine':
            dist = 1 - q @ g_t  # (b, g)
        else:
            dist = pairwise_distance(q, g_feats, 'euclidean')
        acc.add(dist, q_pids[s:s + step], q_camids[s:s + step])
        del dist
    return acc.result()


def _stable_topk(dist: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """The first ``k`` columns of the stable ascending argsort of each
    row, sorted chunk by chunk: (n, k) int64."""
    k = min(k, dist.shape[1])
    return torch.cat([
        torch.sort(dist[s:s + chunk], dim=1, stable=True).indices[:, :k]
        for s in range(0, dist.shape[0], chunk)
    ])


def _reciprocal_mask(rank: Tensor, k: int) -> Tensor:
    """(n, k + 1) bool: whether ``rank[i, a]`` (among the k + 1 nearest of
    i, i itself included) also has i among its own k + 1 nearest."""
    fwd = rank[:, :k + 1]  # (n, k+1)
    me = torch.arange(rank.shape[0], device=rank.device)[:, None, None]
    return (rank[fwd, :k + 1] == me).any(2)  # (n, k+1, k+1) -> (n, k+1)


def re_ranking(q_g_dist: Union[Tensor, np.ndarray],
               q_q_dist: Union[Tensor, np.ndarray],
               g_g_dist: Union[Tensor, np.ndarray],
               k1: int = 20,
               k2: int = 6,
               lambda_value: float = 0.3,
               chunk_size: int = 1024) -> Tensor:
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017), vectorised.

    Follows torchreid's ``re_ranking`` (and the authors' code) step by
    step: squared distances over all q + g items, each row divided by its
    column's max; k-reciprocal sets R(i, k1), expanded by the R(c, k1/2)
    of each candidate c that shares more than 2/3 of its set with R(i,
    k1) (eq. 9); Gaussian-kernel set vectors V (eq. 10), averaged over the
    k2 nearest (local query expansion, eq. 11); Jaccard distance of the
    query rows against the gallery (eq. 12 with min/max, as sum of minima);
    final = (1 - lambda) d_J + lambda d (eq. 13).

    Memory is O((q + g)^2): the n x n distances and two dense n x n V
    matrices (about 4.5 GB in float32 at Market-1501 size).

    Args:
        q_g_dist (Tensor | np.ndarray): (q, g) query-gallery distances.
        q_q_dist (Tensor | np.ndarray): (q, q) query-query distances.
        g_g_dist (Tensor | np.ndarray): (g, g) gallery-gallery distances.
        k1 (int): k of the k-reciprocal sets. Defaults to 20.
        k2 (int): Neighbours of the query expansion. Defaults to 6.
        lambda_value (float): Weight of the original distance. Defaults
            to 0.3.
        chunk_size (int): Rows processed at once. Defaults to 1024.

    Returns:
        Tensor: (q, g) re-ranked distances, in the inputs' dtype.
    """
    q_g, q_q, g_g = (_as_float(d) for d in (q_g_dist, q_q_dist, g_g_dist))
    nq = q_g.shape[0]
    dist = torch.cat([torch.cat([q_q, q_g], 1),
                      torch.cat([q_g.t(), g_g], 1)], 0)  # (n, n)
    del q_q, g_g
    dist = dist * dist
    # torchreid: transpose(d / d.max(axis=0)): row i / max of column i
    dist = (dist / dist.amax(0, keepdim=True)).t().contiguous()
    n = dist.shape[0]
    dev = dist.device
    kh = int(round(k1 / 2))  # round half to even, like np.around
    rank = _stable_topk(dist, max(k1 + 1, k2), chunk_size)  # (n, K)
    fwd = rank[:, :k1 + 1]  # (n, k1+1)
    fwd_ok = _reciprocal_mask(rank, k1)  # R(i, k1) as a mask on fwd
    half = rank[:, :kh + 1]  # (n, kh+1)
    half_ok = _reciprocal_mask(rank, kh)  # R(c, k1/2) as a mask on half

    v = torch.zeros_like(dist)
    for s in range(0, n, chunk_size):
        e = min(s + chunk_size, n)
        f, f_ok = fwd[s:e], fwd_ok[s:e]  # (b, k1+1)
        cand, cand_ok = half[f], half_ok[f]  # (b, k1+1, kh+1)
        # is cand[i, a, b] in R(i, k1)? (b, k1+1, kh+1, k1+1) -> any
        in_r = ((cand[..., None] == f[:, None, None, :])
                & f_ok[:, None, None, :]).any(-1)
        inter = (in_r & cand_ok).sum(-1).double()  # |R(c,k/2) & R(i,k)|
        size = cand_ok.sum(-1).double()  # |R(c, k/2)|
        grow = f_ok & (inter > 2. / 3 * size)  # (b, k1+1), eq. 9
        member = torch.zeros(e - s, n, dtype=torch.int32, device=dev)
        member.scatter_add_(1, f, f_ok.int())
        member.scatter_add_(1, cand.flatten(1),
                            (cand_ok & grow[..., None]).flatten(1).int())
        w = torch.exp(-dist[s:e]) * (member > 0)
        v[s:e] = w / w.sum(1, keepdim=True)  # eq. 10
        del member, w, in_r
    if k2 != 1:  # local query expansion, eq. 11
        m = min(k2, rank.shape[1])
        v_qe = torch.zeros_like(v)
        for s in range(0, n, chunk_size):
            for t in range(m):  # V_qe[i] = mean of V over the k2 nearest
                v_qe[s:s + chunk_size] += v[rank[s:s + chunk_size, t]]
        v_qe /= m
        v = v_qe
        del v_qe
    original = dist[:nq, nq:]  # (q, g)
    v_q = v[:nq].clone()  # (q, n)
    v_t = v.t().contiguous()  # (n, n): row k = column k of V
    del v, dist
    v_t_g = v_t[:, nq:]  # (n, g)
    jaccard = torch.empty_like(original)
    for i in range(nq):
        # sum_k min(V[i, k], V[j, k]) over the support of V[i]
        cols = v_q[i].nonzero().squeeze(1)
        inter = torch.minimum(v_t_g[cols], v_q[i, cols][:, None]).sum(0)
        jaccard[i] = 1 - inter / (2 - inter)
    return jaccard * (1 - lambda_value) + original * lambda_value


def filtered_ranking(dist: Tensor, q_pid: int, q_camid: int,
                     g_pids: ArrayLike, g_camids: ArrayLike,
                     topk: int = 10,
                     drop_junk: bool = True) -> Tuple[Tensor, Tensor]:
    """The ``topk`` nearest gallery items of one query after the
    same-pid-same-camera (and junk) removal, as evaluated.

    Args:
        dist (Tensor): (g,) distances of the query to the gallery.
        q_pid (int): The query's pid.
        q_camid (int): The query's camera.
        g_pids (ArrayLike): (g,) gallery pids.
        g_camids (ArrayLike): (g,) gallery cameras.
        topk (int): Items to return. Defaults to 10.
        drop_junk (bool): Remove pid -1. Defaults to True.

    Returns:
        tuple[Tensor, Tensor]: gallery indices (k,) and whether each is a
        hit (k,), nearest first.
    """
    g_pids = _as_long(g_pids, dist.device, 'g_pids')
    g_camids = _as_long(g_camids, dist.device, 'g_camids')
    order = torch.sort(dist, stable=True).indices
    p, c = g_pids[order], g_camids[order]
    keep = ~((p == q_pid) & (c == q_camid))
    if drop_junk:
        keep &= p != -1
    order = order[keep][:topk]
    return order, g_pids[order] == q_pid


def draw_ranked_list(query_path: str,
                     gallery_paths: Sequence[str],
                     is_hit: Sequence[bool],
                     out_file: str,
                     img_size: Tuple[int, int] = (128, 64),
                     border: int = 4,
                     gap: int = 16) -> str:
    """Draw one query and its ranked gallery as a single-row PNG.

    The query has a grey border, each gallery image a green (hit) or red
    (miss) one, and its rank is written above it.

    Args:
        query_path (str): The query's image file.
        gallery_paths (Sequence[str]): Gallery image files, nearest first.
        is_hit (Sequence[bool]): Whether each gallery item is a hit.
        out_file (str): The PNG to write; its folder is created.
        img_size (tuple[int, int]): (h, w) each image is resized to.
            Defaults to (128, 64).
        border (int): Border width in pixels. Defaults to 4.
        gap (int): Space between the query and the gallery. Defaults to 16.

    Returns:
        str: ``out_file``.
    """
    from PIL import Image, ImageDraw

    h, w = img_size
    cell_w, cell_h = w + 2 * border, h + 2 * border
    top = 14  # room for the rank labels
    pad = 4
    n = len(gallery_paths)
    width = cell_w * (n + 1) + gap + pad * (n + 1)
    canvas = Image.new('RGB', (width, cell_h + top), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)

    def paste(path: str, x: int, colour: Tuple[int, int, int],
              label: str) -> None:
        with Image.open(path) as im:
            im = im.convert('RGB').resize((w, h), Image.BILINEAR)
        draw.rectangle([x, top, x + cell_w - 1, top + cell_h - 1],
                       fill=colour)
        canvas.paste(im, (x + border, top + border))
        draw.text((x + 2, 1), label, fill=(0, 0, 0))

    paste(query_path, 0, (128, 128, 128), 'query')
    x = cell_w + gap
    for k, (path, hit) in enumerate(zip(gallery_paths, is_hit), 1):
        paste(path, x, (0, 200, 0) if hit else (220, 0, 0), str(k))
        x += cell_w + pad
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    canvas.save(out_file)
    return out_file


@METRICS.register_module()
class QueryGalleryReIDMetric(BaseMetric):
    """Re-ID evaluation of a query/gallery test set, Market-1501 protocol
    (see the module docstring): CMC Rank-k, mAP, mAP_ir and mINP.

    Each data sample carries ``pid``, ``camid``, ``is_query`` and
    ``img_path`` (metainfo) and ``pred_feats``, a dict of 1-D features
    such as ``{'pool5': (2048,), 'embed': (256,)}``. Results from all
    ranks are pooled, so their order does not matter. Scores are in
    percent (like mmpretrain's ``Accuracy``); the keys are ``mAP``
    (trapezoid AP), ``mAP_ir``, ``mINP``, ``Rank-k`` and
    ``skipped_queries`` (queries with no valid match, also logged as a
    warning), under the prefix ``reid/``.

    Args:
        feature (str): Key of ``pred_feats`` to evaluate. Defaults to
            ``'pool5'``.
        ranks (Sequence[int]): CMC ranks to report. Defaults to
            (1, 5, 10).
        ap_modes (Sequence[str]): AP definitions, of ``'trapezoid'`` (key
            ``mAP``) and ``'ir'`` (key ``mAP_ir``). Defaults to both.
        drop_junk (bool): Remove gallery items with pid -1. Defaults to
            True.
        metric (str): ``'cosine'`` or ``'euclidean'`` distance. Defaults
            to ``'cosine'``.
        rerank (bool): Apply k-reciprocal re-ranking (O((q+g)^2) memory;
            not part of the P2Net protocol). Defaults to False.
        k1 (int): Re-ranking k1. Defaults to 20.
        k2 (int): Re-ranking k2. Defaults to 6.
        lambda_value (float): Re-ranking lambda. Defaults to 0.3.
        chunk_size (int): Queries ranked at once. Defaults to 256.
        show_dir (str, optional): When given, write a ranked-list PNG for
            each of the first ``max_show`` queries (sorted by image path)
            there. Defaults to None.
        show_topk (int): Gallery items per ranked list. Defaults to 10.
        max_show (int): Queries drawn. Defaults to 20.
        collect_device (str): ``'cpu'`` or ``'gpu'``, for gathering the
            results across ranks. Defaults to ``'cpu'``.
        prefix (str, optional): Metric key prefix. Defaults to ``'reid'``.
    """

    default_prefix: Optional[str] = 'reid'

    def __init__(self,
                 feature: str = 'pool5',
                 ranks: Sequence[int] = (1, 5, 10),
                 ap_modes: Sequence[str] = AP_MODES,
                 drop_junk: bool = True,
                 metric: str = 'cosine',
                 rerank: bool = False,
                 k1: int = 20,
                 k2: int = 6,
                 lambda_value: float = 0.3,
                 chunk_size: int = 256,
                 show_dir: Optional[str] = None,
                 show_topk: int = 10,
                 max_show: int = 20,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ranks = tuple(int(k) for k in ranks)
        if not self.ranks or min(self.ranks) < 1:
            raise ValueError(f'ranks must be positive ints, got {ranks}')
        self.ap_modes = _check_modes(ap_modes, 1)
        if metric not in DIST_METRICS:
            raise ValueError(f'metric must be one of {DIST_METRICS}, got '
                             f'{metric!r}')
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
        self.feature = feature
        self.drop_junk = drop_junk
        self.metric = metric
        self.rerank = rerank
        self.k1, self.k2, self.lambda_value = k1, k2, lambda_value
        self.chunk_size = chunk_size
        self.show_dir = show_dir
        self.show_topk = show_topk
        self.max_show = max_show

    @staticmethod
    def _field(sample: dict, key: str) -> Any:
        if key in sample:
            return sample[key]
        meta = sample.get('metainfo') or {}
        if key in meta:
            return meta[key]
        raise ReIDEvalError(
            f'data sample has no {key!r} (keys: {sorted(sample)}); the test '
            'pipeline must pack pid, camid and is_query into the metainfo '
            '(PackP2NetInputs)')

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep each sample's identity fields and the chosen feature (on
        the CPU).

        Args:
            data_batch (Any): The batch from the dataloader (unused).
            data_samples (Sequence[dict | DataSample]): The model's
                outputs, as dicts (what mmengine's evaluator passes) or as
                data elements.
        """
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            feats = self._field(sample, 'pred_feats')
            if isinstance(feats, BaseDataElement):
                feats = feats.to_dict()
            if not isinstance(feats, dict):
                raise ReIDEvalError(
                    'pred_feats must be a dict of named features, got '
                    f'{type(feats).__name__}')
            if self.feature not in feats:
                raise ReIDEvalError(
                    f'feature {self.feature!r} is not in pred_feats; '
                    f'available: {sorted(feats)}')
            feat = torch.as_tensor(feats[self.feature])
            path = sample.get('img_path',
                              (sample.get('metainfo') or {}).get('img_path'))
            self.results.append(dict(
                feat=feat.detach().reshape(-1).float().cpu(),
                pid=int(self._field(sample, 'pid')),
                camid=int(self._field(sample, 'camid')),
                is_query=bool(self._field(sample, 'is_query')),
                img_path=path))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Split the results into query and gallery and score them.

        Args:
            results (list[dict]): What :meth:`process` kept, from all
                ranks.

        Returns:
            dict[str, float]: ``mAP``, ``mAP_ir``, ``mINP`` and ``Rank-k``
            in percent, and ``skipped_queries``.
        """
        logger = MMLogger.get_current_instance()
        # sorted by path: deterministic ties, whatever the ranks' order
        results = sorted(results, key=lambda r: r['img_path'] or '')
        query = [r for r in results if r['is_query']]
        gallery = [r for r in results if not r['is_query']]
        if not query or not gallery:
            raise ReIDEvalError(
                f'need both queries and gallery items, got {len(query)} '
                f'queries and {len(gallery)} gallery items: does the '
                'dataset set is_query?')
        dims = {r['feat'].numel() for r in results}
        if len(dims) > 1:
            raise ReIDEvalError(f'feature {self.feature!r} has several '
                                f'sizes: {sorted(dims)}')
        q_feats = torch.stack([r['feat'] for r in query])
        g_feats = torch.stack([r['feat'] for r in gallery])
        ids = {
            name: torch.tensor([r[key] for r in part])
            for part, pre in ((query, 'q'), (gallery, 'g'))
            for key, name in (('pid', f'{pre}_pids'),
                              ('camid', f'{pre}_camids'))
        }
        max_rank = max(self.ranks)
        dist = None
        if self.rerank:
            dist = re_ranking(
                pairwise_distance(q_feats, g_feats, self.metric),
                pairwise_distance(q_feats, q_feats, self.metric),
                pairwise_distance(g_feats, g_feats, self.metric),
                k1=self.k1, k2=self.k2, lambda_value=self.lambda_value)
            res = evaluate_rank(dist, max_rank=max_rank,
                                ap_modes=self.ap_modes,
                                drop_junk=self.drop_junk,
                                chunk_size=self.chunk_size, **ids)
        else:
            res = evaluate_features(q_feats, g_feats, metric=self.metric,
                                    max_rank=max_rank,
                                    ap_modes=self.ap_modes,
                                    drop_junk=self.drop_junk,
                                    chunk_size=self.chunk_size, **ids)
        if res.num_skipped:
            logger.warning(
                f'{res.num_skipped} of {len(query)} queries have no match '
                'in the gallery (after removing same-camera and junk '
                'items) and are not counted')
        logger.info(f'{len(query)} queries, {len(gallery)} gallery items, '
                    f'feature {self.feature!r} ({q_feats.shape[1]}-d), '
                    f'{self.metric} distance'
                    + (', re-ranked' if self.rerank else ''))
        metrics = {AP_KEYS[m]: res.ap[m] * 100 for m in self.ap_modes}
        metrics['mINP'] = res.minp * 100
        for k in self.ranks:
            metrics[f'Rank-{k}'] = float(res.cmc[k - 1]) * 100
        metrics['skipped_queries'] = res.num_skipped
        if self.show_dir:
            self._show(query, gallery, q_feats, g_feats, ids, dist)
        return metrics

    def _show(self, query: List[dict], gallery: List[dict], q_feats: Tensor,
              g_feats: Tensor, ids: Dict[str, Tensor],
              dist: Optional[Tensor]) -> None:
        """Ranked-list PNGs of the first ``max_show`` queries."""
        if any(r['img_path'] is None for r in query + gallery):
            raise ReIDEvalError('show_dir needs img_path in every data '
                                'sample')
        num = min(self.max_show, len(query))
        if dist is None:
            dist = pairwise_distance(q_feats[:num], g_feats, self.metric)
        for qi in range(num):
            idx, hit = filtered_ranking(
                dist[qi], query[qi]['pid'], query[qi]['camid'],
                ids['g_pids'], ids['g_camids'], self.show_topk,
                self.drop_junk)
            stem = osp.splitext(osp.basename(query[qi]['img_path']))[0]
            draw_ranked_list(
                query[qi]['img_path'],
                [gallery[j]['img_path'] for j in idx.tolist()],
                hit.tolist(),
                osp.join(self.show_dir, f'{qi:04d}_{stem}.png'))
        MMLogger.get_current_instance().info(
            f'wrote {num} ranked lists to {self.show_dir}')
