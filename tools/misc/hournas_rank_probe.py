# Copyright (c) EVLab contributors.
"""Does a trained supernet rank the nets it is meant to choose between?

Scores every net that ``hournas_toy_seeds.py`` retrained (the random pool
and each seed's HourNAS and one-stage picks, from its ``--json``) on a
trained supernet of each seed, the way the search scores a candidate (BN
recalibration, then top-1), on the held-out split and on the toy test
split, and prints Kendall's tau between those scores and the retrained
top-1. A search can only beat random picks where tau is clearly above 0.

Examples::

    # the one-stage supernet (all six positions)
    python tools/misc/hournas_rank_probe.py work_dirs/hournas_seeds.json \\
        --supernet os
    # HourNAS stage 1's vital-only supernet, on each net's vital ops
    python tools/misc/hournas_rank_probe.py work_dirs/hournas_seeds.json \\
        --supernet s1
    # stage 2's supernet of seed 0, on the retrained nets with seed 0's
    # vital ops (more retrain work dirs join with --retrained)
    python tools/misc/hournas_rank_probe.py work_dirs/hournas_seeds.json \\
        --supernet s2 --seeds 0 --retrained \\
        work_dirs/hournas_seeds/seed0/retrain_*

The test split is only read here, to measure the ranking with less
noise; no search ever reads it.
"""
import argparse
import copy
import glob
import json
import os.path as osp
import sys
from typing import Dict, List, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
CFG = osp.join(ROOT, 'configs', 'hournas')
# supernet work dir of each seed -> the search config that scores on it
SUPERNETS = {'os': 'toy_hournas_onestage-search.py',
             's1': 'toy_hournas_stage1-search.py',
             's2': 'toy_hournas_stage2-search.py'}
TOP1 = 'accuracy/top1'


def retrained_nets(results: dict) -> List[Tuple[List[str], float]]:
    """``(genotype, retrained top-1)`` of every distinct retrained net."""
    nets: Dict[tuple, float] = {}
    for r in results.values():
        for entry in r.get('random', []):
            nets.setdefault(tuple(entry['genotype']), entry['top1'])
        for key in ('hournas', 'one_stage'):
            if key in r and 'top1' in r[key]:
                nets.setdefault(tuple(r[key]['genotype']), r[key]['top1'])
    if len(nets) < 3:
        raise SystemExit(f'only {len(nets)} retrained nets in the results; '
                         f'run hournas_toy_seeds.py first')
    return [(list(g), t) for g, t in nets.items()]


def retrained_dir(work: str) -> Tuple[List[str], float]:
    """``(genotype, last validation top-1)`` of a finished retrain."""
    from mmengine.config import Config

    from projects.common.analysis import last_validation
    configs = glob.glob(osp.join(work, '*.py'))
    if len(configs) != 1:
        raise SystemExit(f'{work}: expected the one config mmengine dumps '
                         f'there, found {configs}')
    genotype = Config.fromfile(configs[0]).model.backbone.get('genotype')
    if genotype is None:
        raise SystemExit(f'{configs[0]} has no model.backbone.genotype')
    return list(genotype), last_validation(work, [TOP1])[TOP1]


def probe(seed: int, supernet: str, work_root: str, nets: list,
          work_dir: str, supernet_dir: str) -> List[dict]:
    from mmengine.config import Config
    from mmengine.runner import Runner

    from projects.common.nas.mutator import Mutator
    cfg = Config.fromfile(osp.join(CFG, SUPERNETS[supernet]))
    cfg.work_dir = osp.join(work_dir, f'seed{seed}')
    cfg.randomness = dict(seed=seed)
    ckpt = osp.join(work_root, f'seed{seed}', supernet_dir)
    if not osp.isdir(ckpt):
        raise SystemExit(f'no supernet at {ckpt}')
    cfg.train_cfg.supernet_checkpoint = ckpt
    if supernet == 's2':  # stage 1's vital ops, fixed
        cfg.model.backbone.fixed_vital = osp.join(
            work_root, f'seed{seed}', 's1s', 'best_genotype.json')
        cfg.train_cfg.space_file = osp.join(ckpt, 'space.json')
    cfg.log_level = 'WARNING'
    test_cfg = copy.deepcopy(Config.fromfile(
        osp.join(CFG, 'toy_hournas_retrain.py')).test_dataloader)
    runner = Runner.from_cfg(cfg)
    loop = runner.build_train_loop(cfg.train_cfg)
    loop._load_supernet()
    mutator = Mutator(loop.model)
    keys = set(mutator.search_space())  # s1: the vital positions only
    # s2: the vital ops (s1 fixes the removed non-vital blocks to skip)
    fixed = {k: op for k, op in mutator.fixed().items() if op != 'skip'}
    nets = [(g, t) for g, t in nets
            if all(g[int(k)] == op for k, op in fixed.items()
                   if k.isdigit() and int(k) < len(g))]
    if len(nets) < 3:
        raise SystemExit(f'seed {seed}: only {len(nets)} retrained nets '
                         f'have the fixed ops {fixed}; add retrains with '
                         f'--retrained')
    splits = dict(heldout=loop.eval_dataloader,
                  test=runner.build_dataloader(test_cfg))
    rows = []
    for genotype, top1 in nets:
        g = {str(i): op for i, op in enumerate(genotype) if str(i) in keys}
        row = dict(genotype=genotype, top1=top1)
        for name, loader in splits.items():
            loop.eval_dataloader = loader
            row[name] = loop.score(mutator, g)
        rows.append(row)
        print(f'[rank probe] seed {seed} {" ".join(genotype)}: retrained '
              f'{top1:.2f}, supernet held-out {row["heldout"]:.2f}, test '
              f'{row["test"]:.2f}', flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('results', help="hournas_toy_seeds.py's --json")
    parser.add_argument('--supernet', choices=sorted(SUPERNETS),
                        default='os')
    parser.add_argument('--supernet-dir',
                        help='the supernet work dir name under each seed '
                        '(default: the --supernet name, e.g. s2_uniform)')
    parser.add_argument('--retrained', nargs='+', default=[],
                        help='more finished retrain work dirs')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--work-root', default='work_dirs/hournas_seeds',
                        help="hournas_toy_seeds.py's --work-dir")
    parser.add_argument('--work-dir', default='work_dirs/hournas_rank_probe')
    parser.add_argument('--json', help='write the scores to this file')
    args = parser.parse_args(argv)
    from scipy.stats import kendalltau
    with open(args.results) as f:
        nets = retrained_nets(json.load(f)['results'])
    known = {tuple(g) for g, _ in nets}
    for work in args.retrained:
        if not osp.isfile(osp.join(work, 'finished.json')):
            continue  # unfinished (or not a run)
        genotype, top1 = retrained_dir(work)
        if tuple(genotype) not in known:
            known.add(tuple(genotype))
            nets.append((genotype, top1))
    name = args.supernet_dir or args.supernet
    out = {}
    for seed in args.seeds:
        rows = probe(seed, args.supernet, args.work_root, nets,
                     osp.join(args.work_dir, name), name)
        top1 = [r['top1'] for r in rows]
        taus = {k: float(kendalltau(top1, [r[k] for r in rows])[0])
                for k in ('heldout', 'test')}
        out[seed] = dict(nets=rows, kendall_tau=taus)
    print(f'\nKendall tau between the {name} supernet\'s score and the '
          f'retrained top-1:')
    for seed, r in out.items():
        t = r['kendall_tau']
        print(f'  seed {seed} ({len(r["nets"])} nets): held-out '
              f'{t["heldout"]:+.2f}, test {t["test"]:+.2f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(supernet=name, seeds=out), f, indent=1)


if __name__ == '__main__':
    main()
