#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""The HourNAS toy evidence: the searched net against random nets of the
same MACs, and the vital-first search's cost against a one-stage search.

Per seed, through ``tools/train.py`` (finished runs are reused):

1. the HourNAS pipeline: stage 1 supernet, search, stage 2 supernet,
   search (``configs/hournas/toy_hournas_*``), each stage's wall time;
2. the one-stage baseline (``toy_hournas_onestage-*``, with
   ``--one-stage``): one supernet over the whole space, then one search;
3. retraining from scratch, with the same recipe
   (``toy_hournas_retrain.py``): the HourNAS genotype, the one-stage
   genotype, and ``--random`` genotypes drawn uniformly among those whose
   MACs lie in HourNAS's band ``[0.9 B, B]`` (a pool per seed, or with
   ``--random-pool S`` one pool, drawn and retrained with seed S, that
   every seed is compared with).

Every net retrains with one recipe (``--retrain-epochs``, default 20)
and is scored on the toy test split (2,000 images): once, with its own
seed (a searched net's search seed, the pool's seed), or once per
``--retrain-seeds`` seed, scored by the mean. It prints the table
(top-1 of the last validation; mean and spread over seeds), writes
``--json`` and plots accuracy against MACs (``--plot``). Seeded runs
repeat on the same machine only, not across CPUs; wall times are only
meaningful on a quiet machine.

Usage::

    python tools/misc/hournas_toy_seeds.py --seeds 0 1 2 --random 10 \\
        --random-pool 0 --one-stage --jobs 2 \\
        --json work_dirs/hournas_seeds.json \\
        --plot projects/hournas/toy_acc_vs_macs.png
    # the E-like budget, every net retrained with seeds 0 and 1
    python tools/misc/hournas_toy_seeds.py --seeds 0 1 2 --random 10 \\
        --random-pool 0 --one-stage --jobs 2 --budget 2330000 \\
        --retrain-seeds 0 1 --work-dir work_dirs/hournas_seeds_e \\
        --json work_dirs/hournas_seeds_e.json \\
        --plot projects/hournas/toy_acc_vs_macs_e.png
"""
import argparse
import json
import os.path as osp
import random
import statistics
import sys
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.seeds import (  # noqa: E402
    check_unique_seeds,
    mean_std,
    parse_unique_seeds,
    run_train,
    wall,
)

CFG = osp.join(ROOT, 'configs', 'hournas')
TOP1 = 'accuracy/top1'
#: Runs side by side (--jobs).
JOBS = 1


def last_val(work_dir: str) -> float:
    """Top-1 of the last validation of a run."""
    from projects.common.analysis import last_validation
    return last_validation(work_dir, [TOP1])[TOP1]


def train(config: str, work: str, options: List[str],
          done: Optional[str] = None) -> float:
    """Run ``tools/train.py`` unless ``done`` (a file of ``work``) exists;
    the seconds it took (0 when reused)."""
    return run_train(config, work, options, done, tag='hournas seeds',
                     one_thread=JOBS > 1)


def budget_options(budget: Optional[int]) -> Dict[str, List[str]]:
    """Per toy config, the options that set the MACs budget B to
    ``budget`` (None: the configs' own, 2.85 M)."""
    if budget is None:
        return {}
    if budget <= 0:
        raise ValueError(f'--budget must be a positive number of MACs, '
                         f'got {budget}')
    search = [f'train_cfg.budget={budget}']
    return {
        'toy_hournas_stage1-search.py': search,
        'toy_hournas_stage2-supernet.py': [f'custom_hooks.0.budget={budget}'],
        'toy_hournas_stage2-search.py': search,
        'toy_hournas_onestage-supernet.py': [
            f'custom_hooks.0.max_macs={budget}'],
        'toy_hournas_onestage-search.py': search,
    }


def pipeline(seed: int, root: str, one_stage: bool,
             short: Optional[int] = None,
             budget: Optional[int] = None) -> Dict[str, dict]:
    """Run the searches of one seed; their work dirs and wall times."""
    s = f'randomness.seed={seed}'
    by_config = budget_options(budget)
    d = {k: osp.join(root, k) for k in (
        's1', 's1s', 's2', 's2s', 'os', 'oss')}
    d.update(s2short=osp.join(root, f's2_{short}ep'),
             s2shorts=osp.join(root, f's2s_{short}ep'))
    searcher = f'train_cfg.searcher.seed={seed}'
    vital = f'model.backbone.fixed_vital={d["s1s"]}/best_genotype.json'

    def stage2(sup: str, search: str, extra: List[str]) -> list:
        """Stage 2's supernet (from stage 1's weights) and search."""
        return [
            (sup, 'toy_hournas_stage2-supernet.py',
             [s, vital, f'load_from={d["s1"]}', *extra], 'finished.json'),
            (search, 'toy_hournas_stage2-search.py',
             [s, searcher, vital, f'train_cfg.space_file={d[sup]}/space.json',
              f'train_cfg.supernet_checkpoint={d[sup]}'],
             'best_genotype.json'),
        ]

    steps = [
        ('s1', 'toy_hournas_stage1-supernet.py', [s], 'finished.json'),
        ('s1s', 'toy_hournas_stage1-search.py',
         [s, searcher, f'train_cfg.supernet_checkpoint={d["s1"]}'],
         'best_genotype.json'),
        *stage2('s2', 's2s', []),
    ]
    if short:  # HourNAS again, stage 2's supernet trained `short` epochs
        steps += stage2('s2short', 's2shorts', [
            f'train_cfg.max_epochs={short}',
            f'param_scheduler.1.T_max={short}'])
    if one_stage:
        steps += [
            ('os', 'toy_hournas_onestage-supernet.py', [s], 'finished.json'),
            ('oss', 'toy_hournas_onestage-search.py',
             [s, searcher, f'train_cfg.supernet_checkpoint={d["os"]}'],
             'best_genotype.json'),
        ]
    out = {}
    for key, config, options, done in steps:
        options = [*options, *by_config.get(config, [])]
        train(osp.join(CFG, config), d[key], options, done)
        out[key] = dict(work=d[key], seconds=wall(d[key]))
    return out


def band_genotypes(n: int, seed: int, low: float, high: float) -> List[list]:
    """``n`` distinct genotypes drawn uniformly among those of the toy
    space with MACs in ``[low, high]`` (rejection sampling)."""
    import torch
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import projects.hournas  # noqa: F401
    from projects.common.nas import build_cost_table
    from projects.hournas.space import OPS
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='HourNASSupernet', arch='toy', mode='full',
                      search_vital=True, act_cfg=dict(type='ReLU')),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='DropoutLinearClsHead', num_classes=10,
                  in_channels=128)))
    table = build_cost_table(model, [torch.zeros(1, 3, 32, 32)])
    rng = random.Random(f'random-nets-{seed}')
    found: List[list] = []
    while len(found) < n:
        g = [rng.choice(OPS) for _ in table.ops]
        macs = table.macs({str(i): op for i, op in enumerate(g)})
        if low <= macs <= high and g not in found:
            found.append(g)
    return found


#: Retrain epochs, the same for every net (--retrain-epochs).
RETRAIN_EPOCHS = 20
#: The epochs of the folders without an ``_ep<E>`` suffix.
DEFAULT_RETRAIN_EPOCHS = RETRAIN_EPOCHS


def retrain_dir(work: str) -> str:
    """The folder of a retrain at :data:`RETRAIN_EPOCHS`: ``work`` at the
    default epochs, else ``work_ep<E>``, so that a run of other epochs
    never reuses a finished one."""
    if RETRAIN_EPOCHS == DEFAULT_RETRAIN_EPOCHS:
        return work
    return f'{work.rstrip("/")}_ep{RETRAIN_EPOCHS}'


def retrain(work: str, seed: int, genotype: Optional[list] = None,
            config: Optional[str] = None) -> float:
    """Train a net from scratch (the search's exported config, or the
    template with ``genotype``) with one recipe: the epochs are set here,
    whatever the config says."""
    config = config or osp.join(CFG, 'toy_hournas_retrain.py')
    e = RETRAIN_EPOCHS
    options = [f'randomness.seed={seed}', f'train_cfg.max_epochs={e}',
               f'train_cfg.val_interval={e}', f'param_scheduler.1.T_max={e}',
               f'default_hooks.checkpoint.interval={e}']
    if genotype is not None:
        options.append('model.backbone.genotype=[' + ','.join(
            f"'{op}'" for op in genotype) + ']')
    work = retrain_dir(work)
    train(config, work, options, 'finished.json')
    return last_val(work)


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9.0, 4.6))
    for i, (seed, r) in enumerate(sorted(results.items())):
        colour = f'C{i}'
        pool = r.get('random_pool')
        if pool is None or i == 0:
            ax.scatter([x['macs'] / 1e6 for x in r['random']],
                       [x['top1'] for x in r['random']], s=18,
                       color='grey' if pool is not None else colour,
                       alpha=0.6, label=f'random, seed {seed}' if pool is
                       None else f'random nets (retrain '
                       f'{_seeds(r["random"], pool)})')
        ax.scatter([r['hournas']['macs'] / 1e6], [r['hournas']['top1']],
                   marker='*', s=220, color=colour, edgecolor='k',
                   label=f'HourNAS, seed {seed}')
        if 'hournas_short' in r:
            short = r['hournas_short']
            ax.scatter([short['macs'] / 1e6], [short['top1']], marker='^',
                       s=90, color=colour, edgecolor='k',
                       label=f'HourNAS, stage 2 {short["stage2_epochs"]} '
                       f'ep, seed {seed}')
        if 'one_stage' in r:
            ax.scatter([r['one_stage']['macs'] / 1e6],
                       [r['one_stage']['top1']], marker='D', s=60,
                       color=colour, edgecolor='k',
                       label=f'one-stage, seed {seed}')
    # each net's retrains, where it has several: their range
    nets = {id(x): x for r in results.values()  # the pool: drawn once
            for x in (r['hournas'], r.get('one_stage'),
                      r.get('hournas_short'), *r['random']) if x}
    for x in nets.values():
        runs = list(x.get('retrains', {}).values())
        if len(runs) > 1:
            ax.plot([x['macs'] / 1e6] * 2, [min(runs), max(runs)],
                    color='k', alpha=0.3, lw=1, zorder=0)
    ax.set_xlabel('MACs (M, 32x32 input)')
    ax.set_ylabel('top-1 after retraining (%), toy test split\n(mean of '
                  'the retrains; bars: their range)')
    ax.set_title('HourNAS on the toy classification set')
    ax.grid(alpha=0.3)
    # outside the axes: inside, it hides points
    ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f'[hournas seeds] plot: {path}')


def main(argv=None) -> None:
    global JOBS, RETRAIN_EPOCHS
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--random', type=int, default=10,
                        help='random genotypes per seed')
    parser.add_argument('--random-pool', type=int, metavar='SEED',
                        help='draw and retrain the random nets once, with '
                        'this seed, and compare every seed with that pool '
                        '(default: a pool per seed)')
    parser.add_argument('--one-stage', action='store_true',
                        help='also run the one-stage baseline search')
    parser.add_argument('--short-stage2', type=int, metavar='EPOCHS',
                        help='also run HourNAS with stage 2\'s supernet '
                        'trained this many epochs (same stage 1)')
    parser.add_argument('--searches-only', action='store_true',
                        help='run the searches, not the retrains')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs side by side, one thread each (their '
                        'wall times are not a quiet machine\'s)')
    parser.add_argument('--retrain-epochs', type=int, default=RETRAIN_EPOCHS,
                        help='epochs of every retrain')
    parser.add_argument('--budget', type=int, metavar='MACS',
                        help='the MACs budget B of every search and of the '
                        'random nets\' band (default: the toy configs\' '
                        '2.85 M, 60%% of the largest subnet; 2,330,000 is '
                        'the E-like preset, 313/383 of it); use another '
                        '--work-dir per budget')
    parser.add_argument('--retrain-seeds', type=int, nargs='+',
                        metavar='SEED',
                        help='retrain every net once per seed and score it '
                        'by the mean (default: once, with its own seed)')
    parser.add_argument('--work-dir', default='work_dirs/hournas_seeds')
    parser.add_argument('--json', help='write the figures to this file')
    parser.add_argument('--plot', help='write the plot to this PNG')
    args = parser.parse_args(argv)
    JOBS, RETRAIN_EPOCHS = args.jobs, args.retrain_epochs
    parse_unique_seeds(parser, args, ('seeds', 'retrain_seeds'))
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(args.jobs)
    roots = {seed: osp.join(args.work_dir, f'seed{seed}')
             for seed in args.seeds}
    runs = dict(zip(args.seeds, pool.map(
        lambda seed: pipeline(seed, roots[seed], args.one_stage,
                              args.short_stage2, args.budget),
        args.seeds)))
    if args.searches_only:
        return
    jobs, results, pool_nets = [], {}, None
    for seed in args.seeds:
        root, run = roots[seed], runs[seed]
        with open(osp.join(run['s2s']['work'], 'best_genotype.json')) as f:
            best = json.load(f)
        budget = best['budget']
        if args.budget is not None and budget != args.budget:
            raise SystemExit(
                f'{run["s2s"]["work"]}: searched with B = {budget}, not '
                f'--budget {args.budget}; use another --work-dir')
        r = results[seed] = dict(
            cost={k: v['seconds'] for k, v in run.items()}, random=[])
        r['hournas'] = dict(genotype=best['genotype'], macs=best['macs'],
                            heldout=best['score'])
        jobs.append((r['hournas'], osp.join(root, 'retrain_hournas'), seed,
                     None, osp.join(run['s2s']['work'],
                                    'retrain_config.py')))
        if args.short_stage2:
            with open(osp.join(run['s2shorts']['work'],
                               'best_genotype.json')) as f:
                short = json.load(f)
            r['hournas_short'] = dict(
                genotype=short['genotype'], macs=short['macs'],
                heldout=short['score'], stage2_epochs=args.short_stage2)
            jobs.append((r['hournas_short'],
                         osp.join(root, f'retrain_hournas_'
                                  f'{args.short_stage2}ep'), seed, None,
                         osp.join(run['s2shorts']['work'],
                                  'retrain_config.py')))
        if args.one_stage:
            with open(osp.join(run['oss']['work'],
                               'best_genotype.json')) as f:
                one = json.load(f)
            r['one_stage'] = dict(genotype=one['genotype'],
                                  macs=one['macs'], heldout=one['score'])
            jobs.append((r['one_stage'], osp.join(root, 'retrain_onestage'),
                         seed, None, osp.join(run['oss']['work'],
                                              'retrain_config.py')))
        if args.random_pool is not None:  # one pool for every seed
            if pool_nets is None:
                pool_nets, p = [], args.random_pool
                jobs += _random_jobs(pool_nets, args.random, p, budget,
                                     osp.join(args.work_dir, f'seed{p}'))
            r['random'] = pool_nets
            r['random_pool'] = args.random_pool
        else:
            jobs += _random_jobs(r['random'], args.random, seed, budget,
                                 root)

    def do(job) -> tuple:
        entry, work, seed, genotype, config = job
        return entry, seed, retrain(work, seed, genotype, config)

    done = list(pool.map(do, retrain_jobs(jobs, args.retrain_seeds)))
    for entry, seed, top1 in sorted(done, key=lambda x: x[1]):
        entry.setdefault('retrains', {})[seed] = top1  # in seed order
    for job in jobs:  # each net's score: the mean over its retrains
        entry = job[0]
        entry['top1'] = statistics.mean(entry['retrains'].values())
    _report(results, args)


def retrain_jobs(jobs: list, retrain_seeds: Optional[List[int]]) -> list:
    """Every net's retrains: once with its own seed (a searched net's
    search seed, the pool's seed), or once per ``retrain_seeds`` seed,
    the retrain with its own seed in its folder, the others in
    ``<folder>_rs<seed>``."""
    if not retrain_seeds:
        return list(jobs)
    check_unique_seeds(retrain_seeds, '--retrain-seeds')
    return [(entry, work if r == seed else f'{work}_rs{r}', r, genotype,
             config)
            for entry, work, seed, genotype, config in jobs
            for r in retrain_seeds]


def _random_jobs(entries: list, n: int, seed: int, budget: int,
                 root: str) -> list:
    """Retrain jobs of ``n`` random nets of the band ``[0.9 B, B]``
    drawn and retrained with ``seed``; their entries go to ``entries``."""
    jobs = []
    for j, g in enumerate(band_genotypes(n, seed, 0.9 * budget, budget)):
        entry = dict(genotype=g, macs=_macs(g))
        entries.append(entry)
        jobs.append((entry, osp.join(root, f'retrain_random{j}'), seed, g,
                     None))
    return jobs


def _macs(genotype: list) -> int:
    import torch
    from mmpretrain.registry import MODELS

    from projects.common.complexity import count_conv_linear_macs
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='HourNASNet', arch='toy', genotype=genotype,
                      act_cfg=dict(type='ReLU')),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='DropoutLinearClsHead', num_classes=10,
                  in_channels=128)))
    return count_conv_linear_macs(model, [torch.zeros(1, 3, 32, 32)])


def _seeds(entries: list, default) -> str:
    """The retrain seeds of ``entries`` (``default`` when they have none
    recorded), for a label."""
    seeds = sorted({int(k) for x in entries for k in x.get('retrains', {})})
    if len(seeds) > 1:
        return 'seeds ' + ', '.join(map(str, seeds))
    return f'seed {seeds[0] if seeds else default}'


def _score(entry: dict) -> str:
    """A net's top-1, with its retrains when it has several."""
    runs = sorted(entry.get('retrains', {}).items(),
                  key=lambda kv: int(kv[0]))
    if len(runs) < 2:
        return f'{entry["top1"]:.1f}'
    return f'{entry["top1"]:.2f} (' + ' / '.join(
        f'seed {k}: {v:.2f}' for k, v in runs) + ')'


def _report(results: dict, args) -> None:
    seeds = sorted(results)
    print('| seed | HourNAS top-1 | random mean ± std (n) | gap (in SE of '
          'the random mean) | one-stage top-1 | HourNAS search s | '
          'one-stage search s |')
    print('|---|---|---|---|---|---|---|')
    gaps, margins = [], []
    for s in seeds:
        r = results[s]
        rand = [x['top1'] for x in r['random']]
        gap = r['hournas']['top1'] - statistics.mean(rand)
        # the spread of the random nets' mean: its standard error
        sem = statistics.stdev(rand) / len(rand) ** 0.5 if len(rand) > 1 \
            else float('inf')
        gaps.append(gap)
        margins.append(gap / sem)
        cost = r['cost']
        hn = sum(cost[k] for k in ('s1', 's1s', 's2', 's2s'))
        one = r.get('one_stage', {}).get('top1')
        os_cost = cost.get('os', 0) + cost.get('oss', 0)
        print(f'| {s} | {_score(r["hournas"])} | {mean_std(rand)} '
              f'({len(rand)}) | {gap:+.1f} ({gap / sem:+.1f} SE) | '
              f'{"-" if one is None else _score(r["one_stage"])} | '
              f'{hn:.0f} | '
              f'{os_cost:.0f} |')
    print(f'gap over the random mean: {mean_std(gaps)} over '
          f'{len(gaps)} seed(s); ahead by more than the standard error of '
          f'the random mean on every seed: {all(m > 1 for m in margins)}')
    _report_cost(results)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(results=results, gaps=gaps, margins=margins), f,
                      indent=1)
    if args.plot:
        plot(results, args.plot)


def _report_cost(results: dict) -> None:
    """Search wall time against the retrained top-1 it buys: HourNAS,
    HourNAS with a shorter stage 2, the one-stage search."""
    rows = [('hournas', ('s1', 's1s', 's2', 's2s'), 'HourNAS'),
            ('hournas_short', ('s1', 's1s', 's2short', 's2shorts'),
             'HourNAS, stage 2 for {} epochs'),
            ('one_stage', ('os', 'oss'), 'one-stage')]
    print('| seed | search | search wall s | retrained top-1 | vs '
          'one-stage time |')
    print('|---|---|---|---|---|')
    for seed in sorted(results):
        r = results[seed]
        if 'one_stage' not in r:
            return
        cost = r['cost']
        ref = sum(cost[k] for k in rows[-1][1])
        for key, steps, name in rows:
            if key not in r:
                continue
            sec = sum(cost[k] for k in steps)
            label = name.format(r[key].get('stage2_epochs'))
            print(f'| {seed} | {label} | {sec:.0f} | {r[key]["top1"]:.1f} '
                  f'| {sec / ref:.2f} |')


if __name__ == '__main__':
    main()
