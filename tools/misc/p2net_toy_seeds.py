#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""The P2Net toy evidence: baseline, 1 x Latent and 1 x DPB over seeds.

Trains each toy config of ``configs/p2net/`` once per seed through
``tools/train.py`` (a finished run, one whose work dir holds the final
checkpoint, is reused), then prints the table of the last validation's
mAP and Rank-1 per seed, mean and std, and each model's gain over the
baseline on every seed. Seeded runs repeat on the same machine only, not
across CPUs.

Usage::

    python tools/misc/p2net_toy_seeds.py --seeds 0 1 2 \\
        --work-dir work_dirs/p2net_seeds --json p2net_seeds.json
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'baseline': 'configs/p2net/toy_p2net_baseline.py',
    'latent': 'configs/p2net/toy_p2net_latent.py',
    'dpb': 'configs/p2net/toy_p2net_dpb.py',
}
KEYS = ('reid/mAP', 'reid/Rank-1')
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def last_val(work_dir: str) -> Dict[str, float]:
    """The last validation row of a run's ``scalars.json``."""
    from projects.common.analysis import last_validation
    return last_validation(work_dir, KEYS)


def run(name: str, seed: int, work_root: str, extra: List[str]) -> str:
    work = osp.join(work_root, f'{name}_seed{seed}')
    from mmengine.config import Config
    epochs = Config.fromfile(osp.join(ROOT, CONFIGS[name])).train_cfg[
        'max_epochs']
    if osp.isfile(osp.join(work, f'epoch_{epochs}.pth')):
        print(f'[p2net seeds] {name} seed {seed}: reused {work}', flush=True)
        return work
    t0 = time.time()
    print(f'[p2net seeds] {name} seed {seed}: training ...', flush=True)
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'),
           osp.join(ROOT, CONFIGS[name]), '--work-dir', work,
           '--cfg-options', f'randomness.seed={seed}'] + extra
    log = osp.join(work_root, f'{name}_seed{seed}.log')
    os.makedirs(work_root, exist_ok=True)
    with open(log, 'w') as f:
        res = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if res.returncode:
        raise SystemExit(f'{name} seed {seed} failed; see {log}')
    print(f'[p2net seeds] {name} seed {seed}: done in '
          f'{time.time() - t0:.0f}s', flush=True)
    return work


def mean_std(values: List[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{statistics.mean(values):.1f} ± {std:.1f}'


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--models', nargs='+', choices=list(CONFIGS),
                        default=list(CONFIGS))
    parser.add_argument('--work-dir', default='work_dirs/p2net_seeds')
    parser.add_argument('--json', help='write the figures to this file')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='passed on to tools/train.py')
    args = parser.parse_args(argv)
    res: Dict[str, Dict[int, Dict[str, float]]] = {}
    for seed in args.seeds:
        for name in args.models:
            work = run(name, seed, args.work_dir, args.cfg_options)
            res.setdefault(name, {})[seed] = last_val(work)
    seeds = args.seeds
    head = '| model | ' + ' | '.join(f'seed {s} mAP / R1' for s in seeds)
    print(head + ' | mAP | Rank-1 |')
    print('|---' * (len(seeds) + 3) + '|')
    for name in args.models:
        cells = [f'{res[name][s][KEYS[0]]:.1f} / {res[name][s][KEYS[1]]:.1f}'
                 for s in seeds]
        print(f'| {name} | ' + ' | '.join(cells) + ' | ' +
              mean_std([res[name][s][KEYS[0]] for s in seeds]) + ' | ' +
              mean_std([res[name][s][KEYS[1]] for s in seeds]) + ' |')
    summary = dict(results=res)
    if 'baseline' in res:
        for name in args.models:
            if name == 'baseline':
                continue
            gains = {k: [res[name][s][k] - res['baseline'][s][k]
                         for s in seeds] for k in KEYS}
            ahead = all(g > 0 for g in gains[KEYS[0]])
            not_lower = all(g >= 0 for g in gains[KEYS[1]])
            print(f'{name} - baseline: mAP {mean_std(gains[KEYS[0]])} '
                  f'(ahead on every seed: {ahead}), Rank-1 '
                  f'{mean_std(gains[KEYS[1]])} (not lower on every seed: '
                  f'{not_lower})')
            summary[f'{name}_gain'] = gains
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)


if __name__ == '__main__':
    main()
