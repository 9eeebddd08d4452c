#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Curves and training time from mmengine's JSON logs, with mmdet's
interface.

    python tools/analysis_tools/analyze_logs.py plot_curve LOG [LOG ...] \\
        --keys bbox_mAP loss [--legend A B] [--title T] --out curves.png
    python tools/analysis_tools/analyze_logs.py cal_train_time LOG [LOG ...]

A LOG is a run's ``vis_data/scalars.json`` (or the ``<timestamp>.json``
beside it), a run folder ``<work_dir>/<timestamp>``, or a ``work_dir``
(its newest run). A key matches a logged scalar by its full name
(``coco/bbox_mAP``) or by the part after the last ``/`` (``bbox_mAP``,
``top1``, ``mIoU``). Validation metrics are drawn against the step they
were logged at (the epoch, or the iteration of an iteration-based
schedule); training scalars (``loss``, ``lr``, ``time``...) against the
iteration. Each key gets its own panel and every run is a line in each, so
several runs compare on one figure.
"""
import argparse
import glob
import json
import os.path as osp
import statistics
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.errors import EVLabError  # noqa: E402
from projects.common.runtime import cli  # noqa: E402

#: keys written on training lines by mmengine's LoggerHook
TRAIN_MARKERS = ('lr', 'loss', 'iter')


def find_log(path: str) -> str:
    """The scalars file a LOG argument names (see the module docstring)."""
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise EVLabError(f'log {path!r} does not exist')
    for pattern in ('vis_data/scalars.json', '*/vis_data/scalars.json'):
        found = sorted(glob.glob(osp.join(path, pattern)),
                       key=osp.getmtime)
        if found:
            return found[-1]
    raise EVLabError(f'{path!r} holds no mmengine JSON log '
                     f'(<timestamp>/vis_data/scalars.json)')


def load_log(path: str) -> Tuple[List[dict], List[dict]]:
    """(training lines, validation lines) of an mmengine JSON log."""
    path = find_log(path)
    train, val = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise EVLabError(f'{path}, line {n}: not JSON ({e.msg})'
                                 ) from None
            is_train = any(k in row for k in TRAIN_MARKERS)
            (train if is_train else val).append(row)
    if not train and not val:
        raise EVLabError(f'{path} is empty')
    return train, val


def run_name(path: str) -> str:
    """A short legend for a log: its work_dir's name."""
    path = osp.abspath(find_log(path))
    parts = path.split(osp.sep)
    if len(parts) >= 4 and parts[-2] == 'vis_data':
        return parts[-4]  # <work_dir>/<timestamp>/vis_data/scalars.json
    return osp.splitext(osp.basename(path))[0]


def _match(key: str, row: dict) -> Optional[str]:
    if key in row:
        return key
    for name in row:
        if name.split('/')[-1] == key:
            return name
    return None


def series(log: Tuple[List[dict], List[dict]], key: str
           ) -> Tuple[List[float], List[float], str]:
    """(x, y, x label) of ``key`` in a loaded log; validation rows first."""
    train, val = log
    for rows, xlabel in ((val, 'epoch'), (train, 'iter')):
        xs, ys = [], []
        for row in rows:
            name = _match(key, row)
            if name is None or name in ('step', 'epoch', 'iter'):
                continue
            xs.append(row['step'] if 'step' in row else len(xs) + 1)
            ys.append(row[name])
        if xs:
            if rows is val and not any('epoch' in r for r in train):
                xlabel = 'iter'  # iteration-based schedule
            return xs, ys, xlabel
    names = sorted({k.split('/')[-1] for rows in log for r in rows
                    for k in r if k not in ('step', 'epoch', 'iter')})
    raise KeyError(key, names)


def plot_curve(logs: Sequence[str], keys: Sequence[str], out: str,
               legend: Optional[Sequence[str]] = None,
               title: Optional[str] = None, start_epoch: int = 1,
               style: str = 'whitegrid') -> str:
    """One figure, a panel per key, a line per log; saved to ``out``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if legend is not None and len(legend) != len(logs):
        raise EVLabError(f'--legend has {len(legend)} names for '
                         f'{len(logs)} logs')
    names = list(legend or [run_name(p) for p in logs])
    loaded = [load_log(p) for p in logs]
    if style and style.startswith('white'):
        plt.style.use('seaborn-v0_8-whitegrid'
                      if 'seaborn-v0_8-whitegrid' in plt.style.available
                      else 'default')
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 3.8),
                             dpi=120, squeeze=False)
    for ax, key in zip(axes[0], keys):
        for path, name, log in zip(logs, names, loaded):
            try:
                xs, ys, xlabel = series(log, key)
            except KeyError as e:
                raise EVLabError(
                    f'{find_log(path)} has no scalar {key!r}; it logs: '
                    f'{", ".join(e.args[1])}') from None
            pts = [(x, y) for x, y in zip(xs, ys)
                   if xlabel != 'epoch' or x >= start_epoch]
            marker = 'o' if xlabel == 'epoch' or len(pts) < 30 else None
            ax.plot([p[0] for p in pts], [p[1] for p in pts],
                    marker=marker, linewidth=1.2, label=name)
            ax.set_xlabel(xlabel)
        ax.set_title(key)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def cal_train_time(logs: Sequence[str], include_outliers: bool = False
                   ) -> List[Dict[str, float]]:
    """Seconds per iteration of each log: per epoch (the first log line of
    an epoch dropped unless ``include_outliers``, when an epoch has more
    than one), slowest, fastest, spread over epochs, mean."""
    results = []
    for path in logs:
        train, _ = load_log(path)
        per_epoch: Dict[int, List[float]] = defaultdict(list)
        for row in train:
            if 'time' in row:
                per_epoch[row.get('epoch', 1)].append(row['time'])
        if not per_epoch:
            raise EVLabError(f'{find_log(path)} logs no training time')
        means = {}
        for epoch, times in sorted(per_epoch.items()):
            if not include_outliers and len(times) > 1:
                times = times[1:]
            means[epoch] = statistics.fmean(times)
        slow = max(means, key=means.get)
        fast = min(means, key=means.get)
        results.append(dict(
            log=find_log(path), slowest_epoch=slow,
            slowest=means[slow], fastest_epoch=fast, fastest=means[fast],
            std=statistics.pstdev(means.values()),
            mean=statistics.fmean(means.values())))
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='draw curves of some keys')
    plot.add_argument('json_logs', nargs='+')
    plot.add_argument('--keys', nargs='+', default=['bbox_mAP'])
    plot.add_argument('--start-epoch', type=int, default=1)
    plot.add_argument('--eval-interval', type=int, default=1,
                      help='accepted for mmdet compatibility: the logged '
                      'step says when each validation ran')
    plot.add_argument('--title')
    plot.add_argument('--legend', nargs='+')
    plot.add_argument('--backend', help='ignored: pictures are written '
                      'with Agg')
    plot.add_argument('--style', default='whitegrid')
    plot.add_argument('--out', required=True, help='the picture (PNG...)')
    time_ = sub.add_parser('cal_train_time', help='seconds per iteration')
    time_.add_argument('json_logs', nargs='+')
    time_.add_argument('--include-outliers', action='store_true')
    return parser.parse_args(argv)


@cli
def main(argv=None) -> None:
    args = parse_args(argv)
    if args.task == 'plot_curve':
        out = plot_curve(args.json_logs, args.keys, args.out, args.legend,
                         args.title, args.start_epoch, args.style)
        print(f'save curve to: {out}')
        return
    for r in cal_train_time(args.json_logs, args.include_outliers):
        print(f'-----Analyze train time of {r["log"]}-----')
        print(f'slowest epoch {r["slowest_epoch"]}, average time is '
              f'{r["slowest"]:.4f} s/iter')
        print(f'fastest epoch {r["fastest_epoch"]}, average time is '
              f'{r["fastest"]:.4f} s/iter')
        print(f'time std over epochs is {r["std"]:.4f}')
        print(f'average iter time: {r["mean"]:.4f} s/iter\n')


if __name__ == '__main__':
    main()
