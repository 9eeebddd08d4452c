#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""The Patch Slimming toy evidence: the searched keep lists against
random nested lists, a uniform keep ratio and ToMe at the same MACs, all
with the same KD fine-tune, and the dense model fine-tuned as long.

Per seed, through ``tools/train.py`` (finished runs are reused):

0. ``toy_glimpse_stem.py``: the token-local conv stem;
1. ``toy_vit_ps-train.py``: the dense model on it;
2. ``toy_vit_ps-search.py``: the search (budget mode);
3. the same fine-tune (``toy_vit_ps-finetune.py``, 0.5 CE + 0.5 KD from
   the dense model) of
   - the searched model (``pruned.pth``),
   - random nested lists with the searched counts per block (the token
     choice ablated),
   - a uniform ratio: every block keeps the same fraction of the tokens
     it reads (the last keeps the class token), the fraction bisected to
     the searched MACs (the schedule ablated; tokens drawn at random),
   - ToMe (``tome_r``, one count for every block) at the closest MACs,
   - the dense model itself (the reference, trained as long).

Every score is top-1 on toy_glimpse's test split (2,000 images; the
400-image val split's binomial error, about 2 points, would hide the
gaps). It prints top-1 per seed, mean and spread, the gaps to each
comparison and whether each holds on every seed by more than the spread
over seeds; writes ``--json`` and plots top-1 against MACs (``--plot``).
Seeded runs repeat on the same machine only, not across CPUs.

Usage::

    python tools/misc/patch_slim_toy_seeds.py --seeds 0 1 2 \\
        --json work_dirs/patch_slim_seeds.json \\
        --plot projects/patch_slim/toy_acc_vs_macs.png
"""
import argparse
import json
import os.path as osp
import random
import statistics
import subprocess
import sys
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

CFG = osp.join(ROOT, 'configs', 'patch_slim')
TOP1 = 'accuracy/top1'
METHODS = ('patch_slim', 'random', 'uniform', 'tome', 'dense')
_FEW = ['train_dataloader.dataset.indices=16', 'train_cfg.max_epochs=1',
        'val_dataloader.dataset.indices=8', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0']
#: Score on the 2,000-image test split, not the 400-image val split.
TEST_SPLIT = ['val_dataloader.dataset.ann_file=meta/test.txt',
              'val_dataloader.dataset.data_prefix=test']
#: ``--smoke``: every stage shrunk to seconds (tests of this script)
SMOKE = dict(
    stem=_FEW,
    dense=_FEW,
    search=['train_cfg.num_calib=8', 'train_cfg.num_error=8',
            'train_cfg.bisect_steps=2', 'train_cfg.finetune_steps=1',
            'train_cfg.finetune_batch_size=4', 'train_cfg.refine_steps=0',
            'train_dataloader.num_workers=0'],
    finetune=_FEW)


def train(config: str, work: str, options: List[str]) -> None:
    """``tools/train.py`` unless the run finished before."""
    if osp.isfile(osp.join(work, 'finished.json')) or osp.isfile(
            osp.join(work, 'keep_indices.json')):
        print(f'[patch_slim seeds] reused {work}', flush=True)
        return
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'),
           osp.join(CFG, config), '--work-dir', work]
    if options:
        cmd += ['--cfg-options', *options]
    print('[patch_slim seeds]', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def last_top1(work: str) -> float:
    from projects.common.analysis import last_validation
    return last_validation(work, [TOP1])[TOP1]


def newest(work: str) -> str:
    from projects.common.checkpoint import find_resume_checkpoint
    path = find_resume_checkpoint(work)
    if path is None:
        raise FileNotFoundError(f'no checkpoint in {work}')
    return path


def nested_random(counts: List[int], num_tokens: int, seed: int):
    rng = random.Random(f'patch-slim-random-{seed}')
    present, out = list(range(num_tokens)), []
    for n in counts:
        present = [0] + sorted(rng.sample(present[1:], n - 1))
        out.append(present)
    return out


def uniform_counts(ratio: float, num_tokens: int, layers: int):
    counts, n = [], num_tokens
    for i in range(layers):
        n = 1 if i == layers - 1 else max(1, round(n * ratio))
        counts.append(n)
    return counts


class Costs:
    """MACs of the toy model with given lists or a ToMe count."""

    def __init__(self, search_work: str):
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmpretrain.registry import MODELS

        import projects.patch_slim  # noqa: F401
        init_default_scope('mmpretrain')
        cfg = Config.fromfile(osp.join(search_work, 'toy_vit_ps-search.py'))
        self.model = MODELS.build(cfg.model)
        bb = self.model.backbone
        self.layers, self.tokens = bb.num_layers, bb.num_tokens

    def of(self, keep=None, tome_r=None) -> int:
        from projects.patch_slim import model_macs
        bb = self.model.backbone
        bb.set_keep(keep or [list(range(self.tokens))] * self.layers)
        bb.set_tome(tome_r)
        total = model_macs(bb, 10)['total']
        bb.set_tome(None)
        return total


def run_seed(seed: int, root: str, smoke: bool) -> Dict[str, dict]:
    s = [f'randomness.seed={seed}']
    extra = SMOKE if smoke else dict(stem=[], dense=[], search=[],
                                     finetune=[])
    d = {k: osp.join(root, k) for k in ('stem', 'dense', 'search', *[
        f'ft_{m}' for m in METHODS])}
    train('toy_glimpse_stem.py', d['stem'], s + extra['stem'])
    train('toy_vit_ps-train.py', d['dense'], s + TEST_SPLIT + extra['dense']
          + [f'model.backbone.cnn.init_cfg.checkpoint={newest(d["stem"])}'])
    dense_ckpt = newest(d['dense'])
    train('toy_vit_ps-search.py', d['search'],
          s + [f'train_cfg.dense_checkpoint={d["dense"]}'] +
          extra['search'])
    with open(osp.join(d['search'], 'keep_indices.json')) as f:
        found = json.load(f)
    costs = Costs(d['search'])
    lists = found['keep_indices']
    target = found['macs']
    counts = [len(k) for k in lists]
    # the comparisons at the searched MACs
    rand = nested_random(counts, costs.tokens, seed)
    lo, hi = 0.0, 1.0
    for _ in range(30):  # the uniform ratio whose MACs match
        mid = (lo + hi) / 2
        if costs.of(nested_random(uniform_counts(
                mid, costs.tokens, costs.layers), costs.tokens, seed)) \
                > target:
            hi = mid
        else:
            lo = mid
    uni = nested_random(uniform_counts(lo, costs.tokens, costs.layers),
                        costs.tokens, seed)
    tome_r = min(range(costs.tokens // 2),
                 key=lambda r: abs(costs.of(tome_r=r) - target))
    plans = {
        'patch_slim': (osp.join(d['search'], 'pruned.pth'), None, None),
        'random': (dense_ckpt, rand, None),
        'uniform': (dense_ckpt, uni, None),
        'tome': (dense_ckpt, None, tome_r),
        'dense': (dense_ckpt, None, None),
    }
    out = {}
    for method, (init, keep, r) in plans.items():
        work = d[f'ft_{method}']
        options = s + TEST_SPLIT + extra['finetune'] + [
            f'model.student.init_cfg.checkpoint={init}',
            f'model.teacher_ckpt={dense_ckpt}']
        if keep is not None:
            path = osp.join(root, f'keep_{method}.json')
            from projects.patch_slim import save_keep_indices
            save_keep_indices(path, keep)
            options.append(f'model.student.backbone.keep_indices={path}')
        if r is not None:
            options.append(f'model.student.backbone.tome_r={r}')
        train('toy_vit_ps-finetune.py', work, options)
        macs = costs.of(keep=lists if method == 'patch_slim' else keep,
                        tome_r=r)
        out[method] = dict(top1=last_top1(work), macs=macs,
                           tokens=counts if method == 'patch_slim' else (
                               [len(k) for k in keep] if keep else None),
                           tome_r=r)
    out['dense_start'] = dict(top1=last_top1(d['dense']),
                              macs=costs.of())
    return out


def mean_std(values: List[float]) -> str:
    if len(values) < 2:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def report(results: Dict[int, dict], args) -> dict:
    seeds = sorted(results)
    print('| method | MACs (M) | ' + ' | '.join(f'seed {s}' for s in seeds)
          + ' | mean ± std |')
    print('|---|---|' + '---|' * len(seeds) + '---|')
    for m in ('dense_start',) + METHODS:
        vals = [results[s][m]['top1'] for s in seeds]
        macs = statistics.mean(results[s][m]['macs'] for s in seeds) / 1e6
        print(f'| {m} | {macs:.2f} | ' + ' | '.join(
            f'{v:.2f}' for v in vals) + f' | {mean_std(vals)} |')
    verdict = {}
    for m in ('random', 'uniform', 'tome'):
        gaps = [results[s]['patch_slim']['top1'] - results[s][m]['top1']
                for s in seeds]
        spread = max(statistics.stdev([results[s][k]['top1']
                                       for s in seeds])
                     for k in ('patch_slim', m)) if len(seeds) > 1 \
            else float('inf')
        verdict[m] = dict(gaps=gaps, spread=spread,
                          holds=all(g > spread for g in gaps))
        print(f'patch_slim - {m}: {mean_std(gaps)} (per seed '
              f'{[round(g, 2) for g in gaps]}); ahead on every seed by more '
              f'than the spread over seeds ({spread:.2f}): '
              f'{verdict[m]["holds"]}')
    drop = [results[s]['dense']['top1'] - results[s]['patch_slim']['top1']
            for s in seeds]
    print(f'dense (fine-tuned as long) - patch_slim: {mean_std(drop)}')
    out = dict(results=results, verdict=verdict, drop=drop)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)
    if args.plot:
        plot(results, args.plot)
    return out


def plot(results: Dict[int, dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    styles = dict(patch_slim=('tab:red', 'o'), random=('tab:gray', 's'),
                  uniform=('tab:blue', '^'), tome=('tab:green', 'D'),
                  dense=('black', '*'), dense_start=('black', 'x'))
    for m, (color, marker) in styles.items():
        xs = [results[s][m]['macs'] / 1e6 for s in results]
        ys = [results[s][m]['top1'] for s in results]
        ax.scatter(xs, ys, c=color, marker=marker, label=m, s=40)
    ax.set_xlabel('MACs (M)')
    ax.set_ylabel('test top-1 (%), 2,000 images')
    ax.set_title('Patch Slimming on toy data: top-1 against MACs')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/patch_slim_seeds')
    parser.add_argument('--smoke', action='store_true',
                        help='every stage in seconds (a test of the script, '
                        'not evidence)')
    parser.add_argument('--json')
    parser.add_argument('--plot')
    args = parser.parse_args(argv)
    results = {s: run_seed(s, osp.join(args.work_dir, f'seed{s}'),
                           args.smoke) for s in args.seeds}
    return report(results, args)


if __name__ == '__main__':
    main()
