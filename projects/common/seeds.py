# Copyright (c) EVLab contributors.
"""Helpers of the multi-seed evidence runners (``tools/misc/*_seeds.py``):
run one ``tools/train.py`` job into a work dir unless it finished, time
it, format a mean and spread, and refuse a seed listed twice."""
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
WALL_FILE = 'wall_time.json'


def run_train(config: str, work: str, options: Sequence[str] = (),
              done: Optional[str] = 'finished.json', tag: str = 'seeds',
              one_thread: bool = False) -> float:
    """Run ``tools/train.py config --work-dir work --cfg-options
    *options`` unless ``done`` (a file of ``work``) exists; its output
    goes to ``work.log``. Returns the seconds it took (0 when reused) and
    writes them to ``work/wall_time.json``; a failed run raises
    ``SystemExit`` naming its log. ``one_thread``: for runs side by side
    (OMP / MKL on one thread)."""
    if done and osp.isfile(osp.join(work, done)):
        print(f'[{tag}] reused {work}', flush=True)
        return 0.0
    os.makedirs(work, exist_ok=True)
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
           '--work-dir', work]
    if options:
        cmd += ['--cfg-options', *options]
    log = work.rstrip('/') + '.log'
    print(f'[{tag}] {osp.relpath(work)} ...', flush=True)
    t0 = time.time()
    env = dict(os.environ)
    if one_thread:
        env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    with open(log, 'w') as f:
        res = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                             env=env)
    if res.returncode:
        raise SystemExit(f'{work} failed; see {log}')
    seconds = time.time() - t0
    print(f'[{tag}] done in {seconds:.0f} s', flush=True)
    with open(osp.join(work, WALL_FILE), 'w') as f:
        json.dump(dict(seconds=seconds), f)
    return seconds


def wall(work: str) -> float:
    """The seconds :func:`run_train` recorded for ``work``."""
    with open(osp.join(work, WALL_FILE)) as f:
        return json.load(f)['seconds']


def mean_std(values: List[float], digits: int = 1) -> str:
    """``'mean ± std'`` (std 0 for one value)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{statistics.mean(values):.{digits}f} ± {std:.{digits}f}'


def check_unique_seeds(values: Optional[Sequence[int]], flag: str) -> None:
    """Raise ``ValueError`` naming ``flag`` when ``values`` lists a seed
    twice: two runs of one seed would share a work dir."""
    if values and len(set(values)) != len(values):
        raise ValueError(f'{flag} lists a seed twice: {list(values)}')


def parse_unique_seeds(parser, args, flags: Sequence[str]) -> None:
    """:func:`check_unique_seeds` on each ``args`` attribute of ``flags``
    (e.g. ``'retrain_seeds'``), as a ``parser.error``."""
    for flag in flags:
        try:
            check_unique_seeds(getattr(args, flag),
                               '--' + flag.replace('_', '-'))
        except ValueError as e:
            parser.error(str(e))
