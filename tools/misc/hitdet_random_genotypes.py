#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Draw random Hit-Detector genotypes of a given cost, the baselines of
the toy evidence: every genotype's searched positions cost what a
reference genotype's do (the released architecture by default, or a
``genotype.json`` of the search), within ``--band``; each is written as
``genotype_<i>.json`` and as a config that ``tools/train.py`` trains.

    python tools/misc/hitdet_random_genotypes.py --num 5 --seed 0 \\
        --template configs/hit_detector/toy_hitdet.py \\
        --out work_dirs/hitdet_random

The cost is the searcher's analytic MACs (``position_costs``) at
``--input-size`` with the RoI blocks costed for ``--rois`` RoIs. By
default the draws range over the released op tables at every position;
``--space`` takes the space of a search config instead (its
``op_space``, ``searchable`` positions, ``cost_input_size`` and
``head_cost_rois``; the other positions keep the template's ops), and
``--target`` sets the cost in MACs of the searched positions:

    python tools/misc/hitdet_random_genotypes.py --num 5 --seed 0 \\
        --template configs/hit_detector/toy_hitdet_6e.py \\
        --space configs/hit_detector/toy_hitdet_search-4e.py \\
        --target 1.9e9 --out work_dirs/hitdet_seeds/random

How a
genotype is drawn: uniform over each component's space, then repaired
by random single-position changes that move the cost towards the
target until it lies in the band (not uniform over the band; the
changes are drawn uniformly among those that help).
"""
import argparse
import json
import os
import os.path as osp
import random
import sys
from typing import Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.errors import EVLabError  # noqa: E402
from projects.common.runtime import cli  # noqa: E402

#: the ops the released backbone uses (its 21 positions draw from these)
BACKBONE_OPS = ('ir_k3_e3', 'ir_k3_e3_d2', 'ir_k3_e6', 'ir_k5_e3',
                'ir_k5_e6', 'ir_k5_e6_d2', 'ir_k7_e6')


def searcher_for(template: str, input_size: int, rois: int,
                 space: Optional[str] = None):
    """The whole-detector supernet of ``template`` over the released
    op tables (backbone :data:`BACKBONE_OPS`, neck ``NECK_OPS``, head
    ``HEAD_OPS``), or over the space of the search config ``space``, for
    its cost table."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import projects.hit_detector  # noqa: F401
    from projects.hit_detector.ops import HEAD_OPS, NECK_OPS
    from projects.hit_detector.search import HitDetSearcher
    init_default_scope('mmdet')
    cfg = Config.fromfile(template)
    if space is None:
        return HitDetSearcher(
            cfg.model, op_space=dict(backbone=list(BACKBONE_OPS),
                                     neck=list(NECK_OPS),
                                     head=list(HEAD_OPS)),
            cost_input_size=input_size, head_cost_rois=rois)
    searcher = Config.fromfile(space).model
    if searcher.get('type') != 'HitDetSearcher':
        raise EVLabError(f'--space {space!r}: its model is not a '
                         f'HitDetSearcher (type {searcher.get("type")!r})')
    return HitDetSearcher(
        cfg.model, op_space=searcher.get('op_space'),
        searchable=searcher.get('searchable'),
        cost_input_size=searcher.get('cost_input_size', input_size),
        head_cost_rois=searcher.get('head_cost_rois', rois))


def choice_indices(searcher, genotype: dict) -> dict:
    """``alias -> index`` of ``genotype``'s ops in the cost table."""
    from projects.hit_detector.ops import NECK_OPS, parse_op_name
    out = {}
    for name, ops in genotype.items():
        offset = 1 if name == 'backbone' else 0  # layer 0 is the stem
        for i, op in enumerate(ops):
            alias = f'{name}.{i + offset}'
            if alias not in searcher.costs:  # a position not searched
                continue
            choices = searcher.mutator.blocks[alias].choices
            if name == 'neck' and isinstance(op, int):
                op = NECK_OPS[op]
            spec = parse_op_name(op)
            names = [c for c in choices if parse_op_name(c) == spec]
            if not names:
                raise ValueError(f'{alias}: {op!r} is not among {choices}')
            out[alias] = choices.index(names[0])
    return out


def cost_of(searcher, idx: dict) -> float:
    return float(sum(searcher.costs[a][i] for a, i in idx.items()))


def draw(searcher, target: float, band: float, rng: random.Random,
         max_moves: int = 10_000) -> dict:
    """One genotype (``alias -> index``) whose cost is within
    ``target * (1 +- band)``."""
    costs = searcher.costs
    idx = {a: rng.randrange(len(c)) for a, c in costs.items()}
    lo, hi = target * (1 - band), target * (1 + band)
    total = cost_of(searcher, idx)
    for _ in range(max_moves):
        if lo <= total <= hi:
            return idx
        moves = [(a, j) for a, c in costs.items() for j in range(len(c))
                 if abs(total - c[idx[a]] + c[j] - target) <
                 abs(total - target)]
        a, j = rng.choice(moves)
        total += float(costs[a][j] - costs[a][idx[a]])
        idx[a] = j
    raise RuntimeError(f'no genotype within {band:.0%} of {target:,.0f}')


def to_genotype(searcher, idx: dict) -> dict:
    """The whole genotype: ``idx``'s ops at the searched positions, the
    template's elsewhere."""
    return searcher.genotype({a: searcher.mutator.blocks[a].choices[i]
                              for a, i in idx.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--template', required=True,
                        help='fixed Hit-Detector config (toy_hitdet.py)')
    parser.add_argument('--out', required=True, help='folder to write')
    parser.add_argument('--reference', help='genotype.json whose cost '
                        'the draws match (default: the template\'s '
                        'genotype)')
    parser.add_argument('--space', help='search config whose space the '
                        'draws range over (default: the released op '
                        'tables at every position)')
    parser.add_argument('--target', type=float, help='cost (MACs of the '
                        'searched positions) the draws match, instead of '
                        'a reference genotype\'s')
    parser.add_argument('--num', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--band', type=float, default=0.03,
                        help='relative half-width of the cost band')
    parser.add_argument('--input-size', type=int, default=128)
    parser.add_argument('--rois', type=int, default=100)
    args = parser.parse_args()
    from mmengine.config import Config

    from projects.common.nas.export import load_genotype
    from projects.hit_detector.search import genotype_to_config
    searcher = searcher_for(args.template, args.input_size, args.rois,
                            args.space)
    if args.target is not None and args.reference:
        raise EVLabError('give --target or --reference, not both')
    if args.target is not None:
        if not searcher.cost_min <= args.target <= searcher.cost_ref:
            raise EVLabError(
                f'--target {args.target:,.0f} lies outside the space: its '
                f'networks cost {searcher.cost_min:,.0f} to '
                f'{searcher.cost_ref:,.0f} MACs at the searched positions')
        ref = None
    elif args.reference:
        ref = load_genotype(args.reference)['genotype']
    else:
        from projects.hit_detector.models import (
            HIT_BACKBONE,
            HIT_HEAD,
            HIT_NECK,
        )
        model = Config.fromfile(args.template).model
        ref = dict(
            backbone=list(model.backbone.get('genotype', HIT_BACKBONE)),
            neck=list(model.neck.get('genotype', HIT_NECK)),
            head=list(model.roi_head.bbox_head.get('blocks', HIT_HEAD)))
    rows = []
    if ref is None:
        target = args.target
    else:
        ref_idx = choice_indices(searcher, ref)
        target = cost_of(searcher, ref_idx)
        rows.append(dict(name='reference', macs=target,
                         genotype=to_genotype(searcher, ref_idx)))
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    for i in range(args.num):
        idx = draw(searcher, target, args.band, rng)
        genotype = to_genotype(searcher, idx)
        path = osp.join(args.out, f'genotype_{i}.json')
        with open(path, 'w') as f:
            json.dump(dict(genotype=genotype, macs=cost_of(searcher, idx)),
                      f, indent=1)
        genotype_to_config(genotype, args.template,
                           osp.join(args.out, f'random_{i}.py'))
        rows.append(dict(name=f'random_{i}', macs=cost_of(searcher, idx),
                         genotype=genotype))
    with open(osp.join(args.out, 'genotypes.json'), 'w') as f:
        json.dump(dict(target=target, reference=args.reference,
                       band=args.band,
                       input_size=args.input_size, rois=args.rois,
                       rows=rows), f, indent=1)
    for row in rows:
        print(f"{row['name']:>10}: {row['macs'] / 1e6:8.1f} M MACs "
              f'searched positions ({row["macs"] / target - 1:+.1%})')


if __name__ == '__main__':
    cli(main)()
