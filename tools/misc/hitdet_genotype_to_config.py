#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Write a Hit-Detector genotype (``genotype.json`` of the search, or one
by hand: ``{"genotype": {"backbone": [21 ops], "neck": [8], "head":
[4]}}``) into a fixed-architecture config, as a standalone config that
``tools/train.py`` trains. With ``--sub-spaces`` the genotype is checked
against the screened sub-spaces first.

    python tools/misc/hitdet_genotype_to_config.py \\
        work_dirs/hitdet_search_coco/genotype.json \\
        --template configs/hit_detector/hitdet_faster-rcnn_1x_coco.py \\
        --out work_dirs/hitdet_retrain.py \\
        --sub-spaces work_dirs/hitdet_screen_coco/sub_spaces.json
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.errors import EVLabError  # noqa: E402
from projects.common.nas.export import load_genotype  # noqa: E402
from projects.common.runtime import cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('genotype', help='genotype JSON')
    parser.add_argument('--template', required=True,
                        help='fixed Hit-Detector config')
    parser.add_argument('--out', required=True, help='config to write')
    parser.add_argument('--sub-spaces', help='sub_spaces.json to check '
                        'the genotype against')
    args = parser.parse_args()
    from projects.hit_detector.models import HIT_HEAD, check_genotype
    from projects.hit_detector.ops import NECK_OPS
    from projects.hit_detector.search import (
        check_genotype_in_sub_spaces,
        genotype_to_config,
    )
    genotype = load_genotype(args.genotype)['genotype']
    if not isinstance(genotype, dict) or not set(genotype) <= {
            'backbone', 'neck', 'head'}:
        raise EVLabError(f'{args.genotype}: the genotype must map backbone '
                         f'/ neck / head to op lists')
    lengths = dict(backbone=21, neck=8, head=len(HIT_HEAD))
    try:
        for name, ops in genotype.items():
            genotype[name] = check_genotype(
                ops, lengths[name], name,
                NECK_OPS if name == 'neck' else None)
        if args.sub_spaces:
            check_genotype_in_sub_spaces(genotype, args.sub_spaces)
    except ValueError as e:
        raise EVLabError(f'{args.genotype}: {e}') from None
    genotype_to_config(genotype, args.template, args.out)
    print(f'{args.out}: {args.template} with the genotype of '
          f'{args.genotype}')


if __name__ == '__main__':
    cli(main)()
