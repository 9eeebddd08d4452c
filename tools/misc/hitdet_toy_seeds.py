#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""The Hit-Detector toy evidence: the searched detector against random
detectors of the same cost, under one retrain recipe.

Per seed, through ``tools/train.py`` (finished runs are reused):

1. screening (``toy_hitdet_screen-4e.py``) -> ``sub_spaces.json``;
2. the joint search (``toy_hitdet_search-4e.py``) over those sub-spaces
   -> ``genotype.json`` and ``retrain_config.py``;
3. its random pool: ``--random`` genotypes over the search's space
   (every op at every searched position, before screening) whose
   searched positions cost what the seed's searched genotype costs,
   within 3% (``tools/misc/hitdet_random_genotypes.py --reference``,
   drawn with ``--pool-seed``);
4. the retrain of the searched genotype and of every random one with
   the same recipe (``toy_hitdet_6e.py``), once per ``--retrain-seeds``
   seed (``seed{s}/retrain_rs{r}``, ``seed{s}/random/random_{i}_rs{r}``).

Runs go side by side (``--jobs``) as soon as what they need has
finished.
Every net is scored by the mean, over its retrain seeds, of the bbox mAP
of the last validation (the toy detection val split, 100 images): one
retrain measures a net only to a few hundredths of mAP. It prints the
table (gap to the pool mean, in standard errors of that mean), writes
``--json`` and plots mAP against the searched positions' MACs and the
detector's parameters (``--plot``). Seeded runs repeat on the same
machine only, not across CPUs.

Usage::

    python tools/misc/hitdet_toy_seeds.py --seeds 0 1 2 --random 5 \\
        --retrain-seeds 0 1 --jobs 2 --json work_dirs/hitdet_seeds.json \\
        --plot projects/hit_detector/toy_map_vs_cost.png
"""
import argparse
import json
import os.path as osp
import statistics
import subprocess
import sys
from typing import Dict, List

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.runtime import cli  # noqa: E402
from projects.common.seeds import mean_std, parse_unique_seeds, run_train, wall  # noqa: E402

CFG = osp.join(ROOT, 'configs', 'hit_detector')
SCREEN = osp.join(CFG, 'toy_hitdet_screen-4e.py')
SEARCH = osp.join(CFG, 'toy_hitdet_search-4e.py')
RECIPE = osp.join(CFG, 'toy_hitdet_6e.py')
RANDOM_TOOL = osp.join(ROOT, 'tools', 'misc', 'hitdet_random_genotypes.py')
MAP = 'coco/bbox_mAP'
TAG = 'hitdet seeds'


def last_map(work: str) -> float:
    from projects.common.analysis import last_validation
    return last_validation(work, [MAP])[MAP]


def seed_dirs(seed: int, root: str) -> Dict[str, str]:
    return {k: osp.join(root, f'seed{seed}', k)
            for k in ('screen', 'search', 'random')}


def retrain_dir(seed: int, root: str, rs: int, net: str = '') -> str:
    """Where retrain seed ``rs`` retrains seed ``seed``'s searched net
    (``net`` empty) or its random net ``net``."""
    d = seed_dirs(seed, root)
    if net:
        return osp.join(d['random'], f'{net}_rs{rs}')
    return osp.join(root, f'seed{seed}', f'retrain_rs{rs}')


def search(seed: int, root: str, one_thread: bool) -> None:
    """Screen and search one seed."""
    d = seed_dirs(seed, root)
    s = f'randomness.seed={seed}'
    run_train(SCREEN, d['screen'], [s], tag=TAG, one_thread=one_thread)
    run_train(SEARCH, d['search'],
              [s, f'model.sub_spaces={d["screen"]}/sub_spaces.json'],
              tag=TAG, one_thread=one_thread)


def retrain(config: str, work: str, rs: int, one_thread: bool) -> None:
    run_train(config, work, [f'randomness.seed={rs}'], tag=TAG,
              one_thread=one_thread)


def mean_map(works: List[str]) -> dict:
    """``map``: the mean of the ``maps`` of ``works``' last validations."""
    maps = [last_map(w) for w in works]
    return dict(map=statistics.mean(maps), maps=maps)


def draw_pool(reference: str, n: int, seed: int, out: str) -> None:
    """``n`` random genotypes at ``reference``'s cost (reused if drawn
    for the same reference)."""
    path = osp.join(out, 'genotypes.json')
    if osp.isfile(path):
        with open(path) as f:
            drawn = json.load(f)
        if drawn.get('reference') != reference or \
                len(drawn['rows']) < n + 1:
            raise SystemExit(f'{path} holds another pool; remove it or '
                             f'pass another --work-root')
        return
    subprocess.run([sys.executable, RANDOM_TOOL, '--template', RECIPE,
                    '--space', SEARCH, '--reference', reference, '--num',
                    str(n), '--seed', str(seed), '--out', out], check=True)


def schedule(tasks: List[tuple], jobs: int) -> None:
    """Run ``(name, fn, args, deps)`` tasks, ``jobs`` at a time, each in
    list order as soon as the tasks named in ``deps`` have finished."""
    import threading
    done, started, errors = set(), set(), []
    cond = threading.Condition()

    def worker():
        while True:
            with cond:
                while True:
                    if errors or len(started) == len(tasks):
                        return
                    ready = [t for t in tasks if t[0] not in started and
                             set(t[3]) <= done]
                    if ready:
                        break
                    cond.wait()
                name, fn, args, _ = ready[0]
                started.add(name)
            try:
                fn(*args)
            except BaseException as e:  # noqa: B036 (reported below)
                with cond:
                    errors.append(e)
                    cond.notify_all()
                return
            with cond:
                done.add(name)
                cond.notify_all()

    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def cost_table():
    """The search space's cost table (the random tool's searcher)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('hitdet_random',
                                                  RANDOM_TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool, tool.searcher_for(RECIPE, 128, 300, SEARCH)


def params_of(config: str) -> int:
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(config).model)
    return sum(p.numel() for p in model.parameters())


def describe(tool, searcher, genotype: dict, config: str) -> dict:
    idx = tool.choice_indices(searcher, genotype)
    return dict(macs=tool.cost_of(searcher, idx), params=params_of(config),
                genotype=genotype)


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.4), sharey=True)
    for ax, key, unit, label in (
            (axes[0], 'macs', 1e9, 'MACs of the searched positions (G, '
             '128x128, RoI blocks x 300)'),
            (axes[1], 'params', 1e6, 'detector parameters (M)')):
        for i, (seed, r) in enumerate(sorted(results['searched'].items())):
            for nets, style in ((r['random'], dict(
                    fmt='o', ms=5, alpha=0.45,
                    label=f'random at seed {seed}\'s cost')), ([r], dict(
                        fmt='*', ms=16, mec='k',
                        label=f'searched, seed {seed}'))):
                # the bars: the range over the retrain seeds
                ax.errorbar(
                    [x[key] / unit for x in nets], [x['map'] for x in nets],
                    yerr=[[x['map'] - min(x.get('maps', [x['map']]))
                           for x in nets],
                          [max(x.get('maps', [x['map']])) - x['map']
                           for x in nets]],
                    color=f'C{i}', capsize=2, lw=1, **style)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('bbox mAP after retraining (toy val; mean and\n'
                       'range over the retrain seeds)')
    axes[1].legend(fontsize=8, loc='center left', bbox_to_anchor=(1.01, 0.5))
    fig.suptitle('Hit-Detector search on the toy detection set')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f'[{TAG}] plot: {path}')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--random', type=int, default=5,
                        help='random genotypes in the pool')
    parser.add_argument('--pool-seed', type=int, default=0,
                        help='seed of the pool\'s draw')
    parser.add_argument('--retrain-seeds', type=int, nargs='+',
                        default=[0, 1],
                        help='every net retrains once per seed; its score '
                        'is the mean')
    parser.add_argument('--work-root', default=osp.join(
        ROOT, 'work_dirs', 'hitdet_seeds'))
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs side by side (one thread each)')
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--plot', help='write the mAP-cost plot here')
    args = parser.parse_args(argv)
    parse_unique_seeds(parser, args, ('seeds', 'retrain_seeds'))
    root = args.work_root
    one = args.jobs > 1
    tasks, later = [], []
    for seed in args.seeds:
        d = seed_dirs(seed, root)
        reference = osp.join(d['search'], 'genotype.json')
        tasks.append((f'search{seed}', search, (seed, root, one), []))
        later.append((f'pool{seed}', draw_pool,
                      (reference, args.random, args.pool_seed, d['random']),
                      [f'search{seed}']))
        for rs in args.retrain_seeds:
            later.append((f'retrain{seed}_rs{rs}', retrain,
                          (osp.join(d['search'], 'retrain_config.py'),
                           retrain_dir(seed, root, rs), rs, one),
                          [f'search{seed}']))
            later += [(f'random{seed}_{i}_rs{rs}', retrain,
                       (osp.join(d['random'], f'random_{i}.py'),
                        retrain_dir(seed, root, rs, f'random_{i}'), rs, one),
                       [f'pool{seed}']) for i in range(args.random)]
    # the searches first (the longest chains), then what they unlock
    schedule(tasks + later, args.jobs)
    tool, searcher = cost_table()
    results = dict(pool_seed=args.pool_seed,
                   retrain_seeds=args.retrain_seeds, searched={})
    for seed in args.seeds:
        d = seed_dirs(seed, root)
        with open(osp.join(d['search'], 'genotype.json')) as f:
            genotype = json.load(f)['genotype']
        with open(osp.join(d['random'], 'genotypes.json')) as f:
            drawn = json.load(f)
        pool = []
        for row in drawn['rows'][1:args.random + 1]:  # [0]: the reference
            name = row['name']
            pool.append(dict(
                name=name,
                **mean_map([retrain_dir(seed, root, rs, name)
                            for rs in args.retrain_seeds]),
                **describe(tool, searcher, row['genotype'],
                           osp.join(d['random'], f'{name}.py'))))
        results['searched'][seed] = dict(
            **mean_map([retrain_dir(seed, root, rs)
                        for rs in args.retrain_seeds]),
            target=drawn['target'], random=pool,
            seconds={k: wall(d[k]) for k in ('screen', 'search')},
            **describe(tool, searcher, genotype,
                       osp.join(d['search'], 'retrain_config.py')))
    report(results)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    if args.plot:
        plot(results, args.plot)


def _maps(x: dict) -> str:
    return ' / '.join(f'{m:.3f}' for m in x.get('maps', [x['map']]))


def report(results: dict) -> None:
    """The table: per seed, the searched net against its pool."""
    if 'retrain_seeds' in results:
        print(f'\nevery net retrained with seed(s) '
              f'{", ".join(map(str, results["retrain_seeds"]))}; its mAP: '
              f'the mean')
    else:  # a results file of the one-retrain protocol
        print(f'\nsearched nets retrained with their search seed, random '
              f'ones with seed {results["pool_seed"]}')
    rows, within = [], []
    for seed, r in sorted(results['searched'].items()):
        maps = [x['map'] for x in r['random']]
        mean = statistics.mean(maps)
        se = statistics.stdev(maps) / len(maps) ** 0.5
        print(f'seed {seed}: searched {r["map"]:.3f} ({_maps(r)}) at '
              f'{r["macs"] / 1e9:.3f} G, {r["params"] / 1e6:.2f} M params')
        for x in r['random']:
            print(f'  {x["name"]:>9}: {x["map"]:.3f} ({_maps(x)})  '
                  f'{x["macs"] / 1e9:.3f} G ({x["macs"] / r["macs"] - 1:+.1%})'
                  f' {x["params"] / 1e6:.2f} M params')
        within += [statistics.variance(x['maps']) for x in [r, *r['random']]
                   if len(x.get('maps', ())) > 1]
        gap = r['map'] - mean
        t = r['seconds']
        rows.append(
            f'| {seed} | {r["map"]:.3f} | {mean_std(maps, 3)} | '
            f'{gap:+.3f} ({gap / se:+.1f}) | '
            f'{"yes" if r["map"] > max(maps) else "no"} | '
            f'{r["macs"] / 1e9:.3f} G | {r["params"] / 1e6:.2f} M | '
            f'{t["screen"]:.0f} + {t["search"]:.0f} |')
    print('| seed | searched mAP | its random pool | gap to the pool mean '
          '(SE) | above every random net | searched MACs | params | '
          'screen + search s |')
    print('|---|---|---|---|---|---|---|---|')
    print('\n'.join(rows))
    searched = [r['map'] for r in results['searched'].values()]
    print(f'searched over seeds: {mean_std(searched, 3)}')
    if within:
        print(f'retrain noise: a net\'s std over its retrain seeds, pooled '
              f'over {len(within)} nets: '
              f'{statistics.mean(within) ** 0.5:.3f}')


if __name__ == '__main__':
    cli(main)()
