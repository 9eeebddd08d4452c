#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""P2Net's Market-1501 evaluation (projects/p2net/metric.py) next to
torchreid 0.2.5's numpy path, in one process, at Market-1501 size.

    python tools/analysis_tools/reid_eval_benchmark.py --threads 2

The problem is synthetic and shaped like Market-1501's test set: 3,368
queries x 15,913 gallery items (junk already removed, as torchreid counts
it), 2048-d L2-normalised float32 features, 750 ids over 6 cameras, every
query's id in the gallery under another camera, and 2,793 distractors
(pid 0). A feature is its id's centre plus noise, so the ranking is not
trivial (the scores are not P2Net's).

Timed, each as one whole path from features to scores:

- ours: :func:`evaluate_features` (cosine distance, stable sort, CMC,
  both mAPs and mINP), ``--chunk-size`` queries at a time, torch on
  ``--device`` with ``--threads`` intra-op threads; the median of
  ``--repeats`` runs (features already on the device);
- torchreid: ``1 - q @ g.T`` in numpy float32, then
  ``evaluate_rank(..., max_rank=10, use_cython=False)``, once. numpy's
  BLAS gets ``--threads`` threads too (OMP/OPENBLAS/MKL_NUM_THREADS are set
  from ``--threads`` before numpy is loaded).

Agreement (mAP_ir and Rank-1/5/10): float32 distances of 2048-d unit
vectors tie often (about a hundred tied pairs per gallery row at this
size), and numpy's argsort is not stable, so on float32 distances the two
can differ by how ties fall, not by the protocol. The check is therefore
made on float64 distances of the first ``--check-queries`` queries (no
ties): ours and torchreid must agree within 1e-6. The differences on
float32 (ours from the features, and ours on torchreid's own float32
matrix) are reported next to it.

Peak memory: our path alone runs in a child process (multiprocessing
'spawn'; it builds the same problem from the same seed). Reported are the
peak resident set size of that process during the evaluation (Linux
``VmHWM``, reset through /proc/self/clear_refs once the problem is built;
the whole process: Python, torch and the features included), its RSS just
before the evaluation, and the peak of torch's allocator during the
evaluation (``peak_memory``: torch's profiler; CUDA:
``max_memory_allocated``).

Targets: ours >= 5x faster than torchreid's numpy path, peak RSS < 2 GiB.
Timings need a quiet machine; say so with the figures when it was not.
"""
import argparse
import os
import os.path as osp
import sys


def _threads_arg(argv) -> str:
    """``--threads`` from the command line, read before numpy loads."""
    for i, a in enumerate(argv):
        if a == '--threads' and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith('--threads='):
            return a.split('=', 1)[1]
    return '2'


if __name__ == '__main__':
    for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS',
                 'MKL_NUM_THREADS'):
        os.environ[_var] = _threads_arg(sys.argv[1:])

import multiprocessing as mp  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Dict, Optional, Tuple  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.analysis import write_json  # noqa: E402
from projects.common.complexity import peak_memory  # noqa: E402
from projects.p2net.metric import (  # noqa: E402
    ReIDEvalError,
    evaluate_features,
    evaluate_rank,
    load_torchreid_file,
)

MiB = 2**20


def load_torchreid_rank():
    """torchreid's ``reid/metrics/rank.py`` loaded alone (numpy only)."""
    try:
        return load_torchreid_file('reid/metrics/rank.py')
    except ReIDEvalError as e:
        raise SystemExit(str(e)) from None


def market_like(num_query: int, num_gallery: int, dim: int,
                seed: int = 0) -> Dict[str, np.ndarray]:
    """A Market-1501-shaped query/gallery problem (see the docstring).

    Queries go round-robin over the ids, the k-th of an id on camera
    (offset + k) mod 6, so an id's queries are on distinct cameras. Each id
    has two gallery items on two different cameras (so every query has a
    hit under another camera), the other id items get random ids and
    cameras, and 2,793 / 15,913 of the gallery are distractors.
    """
    rng = np.random.default_rng(seed)
    cams = 6
    num_ids = min(num_query, max(1, round(num_query * 750 / 3368)))
    n_distr = round(num_gallery * 2793 / 15913)
    n_rest = num_gallery - n_distr - 2 * num_ids
    if n_rest < 0:
        raise SystemExit(f'--num-gallery {num_gallery} is too small for '
                         f'{num_ids} ids ({2 * num_ids + n_distr} needed)')
    ids = np.arange(1, num_ids + 1)
    q_pids = ids[np.arange(num_query) % num_ids]
    offset = rng.integers(0, cams, num_ids + 1)
    q_camids = (offset[q_pids] + np.arange(num_query) // num_ids) % cams
    c1 = rng.integers(0, cams, num_ids)
    c2 = (c1 + rng.integers(1, cams, num_ids)) % cams
    g_pids = np.concatenate([np.repeat(ids, 2),
                             rng.integers(1, num_ids + 1, n_rest),
                             np.zeros(n_distr, dtype=np.int64)])
    g_camids = np.concatenate([np.stack([c1, c2], 1).reshape(-1),
                               rng.integers(0, cams, n_rest + n_distr)])
    perm = rng.permutation(num_gallery)
    g_pids, g_camids = g_pids[perm], g_camids[perm]
    centres = rng.standard_normal((num_ids + 1, dim), dtype=np.float32)
    centres[0] = 0  # distractors: noise only

    def feats(pids):
        x = rng.standard_normal((len(pids), dim), dtype=np.float32)
        x += 0.3 * centres[pids]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    return dict(q_feats=feats(q_pids), g_feats=feats(g_pids),
                q_pids=q_pids, g_pids=g_pids, q_camids=q_camids,
                g_camids=g_camids)


def _ids(data: dict) -> dict:
    return {k: data[k] for k in ('q_pids', 'g_pids', 'q_camids',
                                 'g_camids')}


def run_ours(data: dict, args) -> Tuple[float, object]:
    """One timed run of our path; returns (seconds, RankResult)."""
    q = torch.from_numpy(data['q_feats']).to(args.device)
    g = torch.from_numpy(data['g_feats']).to(args.device)
    if args.device.startswith('cuda'):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = evaluate_features(q, g, **_ids(data), metric='cosine',
                            max_rank=10, chunk_size=args.chunk_size)
    return time.perf_counter() - t0, res  # the result's floats synced


def _status_mib(key: str) -> Optional[float]:
    """A ``VmRSS`` / ``VmHWM`` line of /proc/self/status, in MiB (Linux)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _memory_child(args, queue) -> None:
    """Child process: our path alone, its peak memory.

    ``ru_maxrss`` is kept across exec, so a spawned child would report its
    parent's peak: the high-water mark of the child's own address space
    (``VmHWM``) is read instead, reset after the problem is built, so that
    it is the peak during the evaluation.
    """
    torch.set_num_threads(args.threads)
    data = market_like(args.num_query, args.num_gallery, args.dim,
                       args.seed)
    lifetime = _status_mib('VmHWM')
    before = _status_mib('VmRSS')
    reset = _reset_peak_rss()
    run_ours(data, args)
    peak = _status_mib('VmHWM')
    if peak is None:  # not Linux: the peak so far, parent's included
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    q = torch.from_numpy(data['q_feats']).to(args.device)
    g = torch.from_numpy(data['g_feats']).to(args.device)
    alloc = peak_memory(
        lambda: evaluate_features(q, g, **_ids(data), max_rank=10,
                                  chunk_size=args.chunk_size), args.device)
    queue.put(dict(peak_rss_mib=peak, rss_before_mib=before,
                   peak_rss_building_problem_mib=lifetime,
                   peak_is_evaluation_only=reset,
                   torch_alloc_peak_mib=alloc / MiB))


def measure_memory(args) -> dict:
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-query', type=int, default=3368)
    parser.add_argument('--num-gallery', type=int, default=15913)
    parser.add_argument('--dim', type=int, default=2048)
    parser.add_argument('--chunk-size', type=int, default=256)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed runs of ours (the median is reported)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--check-queries', type=int, default=1000,
                        help='queries of the float64 agreement check '
                        '(0: all)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the child process that measures memory')
    parser.add_argument('--json', help='write the figures to this file')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    tr_rank = load_torchreid_rank()
    data = market_like(args.num_query, args.num_gallery, args.dim,
                       args.seed)
    nq, ng = len(data['q_pids']), len(data['g_pids'])
    print(f'{nq} queries x {ng} gallery, {args.dim}-d float32, '
          f'{int((data["g_pids"] == 0).sum())} distractors; '
          f'{args.threads} threads, torch {torch.__version__}, '
          f'numpy {np.__version__}, device {args.device}\n')

    times, res = [], None
    for _ in range(args.repeats):
        t, res = run_ours(data, args)
        times.append(t)
    t_ours = statistics.median(times)

    t0 = time.perf_counter()
    dist = 1 - data['q_feats'] @ data['g_feats'].T  # float32 (q, g)
    cmc_tr, map_tr = tr_rank.evaluate_rank(
        dist, data['q_pids'], data['g_pids'], data['q_camids'],
        data['g_camids'], max_rank=10, use_cython=False)
    t_tr = time.perf_counter() - t0

    same = evaluate_rank(torch.from_numpy(dist), **_ids(data), max_rank=10,
                         chunk_size=args.chunk_size)
    del dist

    def diff(r, cmc, mean_ap) -> float:
        return max(abs(r.ap['ir'] - float(mean_ap)),
                   *(abs(float(r.cmc[k - 1]) - float(cmc[k - 1]))
                     for k in (1, 5, 10)))

    d_same, d_feat = diff(same, cmc_tr, map_tr), diff(res, cmc_tr, map_tr)
    # the exact check: float64 distances, no ties
    nc = min(args.check_queries or nq, nq)
    ids_c = dict(_ids(data), q_pids=data['q_pids'][:nc],
                 q_camids=data['q_camids'][:nc])
    dist64 = 1 - data['q_feats'][:nc].astype(np.float64) @ \
        data['g_feats'].astype(np.float64).T
    cmc64, map64 = tr_rank.evaluate_rank(
        dist64, ids_c['q_pids'], ids_c['g_pids'], ids_c['q_camids'],
        ids_c['g_camids'], max_rank=10, use_cython=False)
    ours64 = evaluate_rank(torch.from_numpy(dist64), **ids_c, max_rank=10,
                           chunk_size=args.chunk_size)
    del dist64
    d_64 = diff(ours64, cmc64, map64)
    agree = d_64 <= 1e-6
    print('| path | time (s) | mAP | mAP_ir | mINP | Rank-1 | Rank-5 | '
          'Rank-10 |')
    print('|---|---|---|---|---|---|---|---|')
    pct = [f'{100 * x:.2f}' for x in (
        res.ap['trapezoid'], res.ap['ir'], res.minp,
        *(float(res.cmc[k - 1]) for k in (1, 5, 10)))]
    print(f'| ours ({args.device}, chunk {args.chunk_size}, median of '
          f'{args.repeats}) | {t_ours:.2f} | ' + ' | '.join(pct) + ' |')
    tr = [f'{100 * float(x):.2f}' for x in (map_tr, *(cmc_tr[k - 1]
                                                      for k in (1, 5, 10)))]
    print(f'| torchreid 0.2.5 numpy (use_cython=False) | {t_tr:.2f} | - | '
          f'{tr[0]} | - | {tr[1]} | {tr[2]} | {tr[3]} |')
    ratio = t_tr / t_ours
    print(f'\nratio torchreid / ours: {ratio:.1f}x (target >= 5x)')
    print(f'agreement with torchreid (mAP_ir, Rank-1/5/10) on float64 '
          f'distances of {nc} queries: max |diff| = {d_64:.2e} -> agree: '
          f'{"yes" if agree else "NO"} (tol 1e-6)')
    print(f'on float32 distances, where ties fall differently: ours on '
          f"torchreid's matrix {d_same:.2e}, ours from the features "
          f'{d_feat:.2e}')
    result = dict(
        num_query=nq, num_gallery=ng, dim=args.dim, threads=args.threads,
        device=args.device, chunk_size=args.chunk_size,
        seconds_ours=t_ours, seconds_ours_all=times,
        seconds_torchreid=t_tr, ratio=ratio, agree=agree,
        check_queries=nc, max_diff_float64=d_64,
        max_diff_float32_same_distmat=d_same,
        max_diff_float32_from_features=d_feat,
        ours=dict(mAP=res.ap['trapezoid'], mAP_ir=res.ap['ir'],
                  mINP=res.minp, cmc=res.cmc.tolist(),
                  skipped=res.num_skipped),
        torchreid=dict(mAP_ir=float(map_tr),
                       cmc=[float(x) for x in cmc_tr]))
    if not args.no_memory:
        mem = measure_memory(args)
        during = 'during the evaluation' if mem['peak_is_evaluation_only'] \
            else 'lifetime'
        print(f'\nours alone in a child process: peak RSS {during} '
              f'{mem["peak_rss_mib"]:.0f} MiB (the whole process: Python, '
              f'torch, the features; {mem["rss_before_mib"]:.0f} MiB before '
              f'the evaluation), torch allocator peak during the '
              f'evaluation {mem["torch_alloc_peak_mib"]:.0f} MiB (target: '
              f'peak RSS < 2 GiB)')
        result['memory'] = mem
    write_json(result, args.json)
    if not agree:
        raise SystemExit('ours and torchreid disagree on float64 '
                         'distances')


if __name__ == '__main__':
    main()
