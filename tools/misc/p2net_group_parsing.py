#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Group a human parser's labels into P2Net's 5 part groups.

Without the official CE2P masks, run any LIP-trained human parser (20
labels) on the re-ID images, then map its label PNGs to the 5 groups that
``LoadPartMap`` reads (0 background, 1 head, 2 upper body, 3 lower body,
4 shoes), mirroring the folder tree::

    python tools/misc/p2net_group_parsing.py PARSER_OUT_DIR \\
        data/market1501/parsing [--mapping lip5 | --mapping-file map.json]

``PARSER_OUT_DIR/<subset>/<stem>.png`` becomes
``data/market1501/parsing/<subset>/<stem>.png``. The grouping of LIP's
labels is a reading (the official grouping is not published; dress and
jumpsuit go to the upper body, arms to the upper body, legs to the lower
body); a JSON file ``{"<source label>": <group>, ...}`` replaces it.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

#: LIP's 20 labels -> P2Net's 5 groups (a reading, see the module doc)
LIP_TO_5 = {
    0: 0,  # background
    1: 1, 2: 1, 4: 1, 13: 1,  # hat, hair, sunglasses, face
    3: 2, 5: 2, 6: 2, 7: 2, 10: 2, 11: 2, 14: 2, 15: 2,  # glove, upper
    # clothes, dress, coat, jumpsuits, scarf, left / right arm
    8: 3, 9: 3, 12: 3, 16: 3, 17: 3,  # socks, pants, skirt, legs
    18: 4, 19: 4,  # left / right shoe
}
MAPPINGS = {'lip5': LIP_TO_5}


def lookup_table(mapping: Dict[int, int]) -> np.ndarray:
    """A 256-entry table; labels without a group map to 255 (invalid)."""
    table = np.full(256, 255, np.uint8)
    for src, dst in mapping.items():
        if not (0 <= int(src) < 256 and 0 <= int(dst) < 255):
            raise ValueError(f'bad mapping entry {src!r}: {dst!r}')
        table[int(src)] = int(dst)
    return table


def convert(src_dir: str, dst_dir: str, mapping: Dict[int, int]) -> int:
    """Map every PNG under ``src_dir`` into ``dst_dir``; returns the count.

    Raises:
        ValueError: A PNG is not single-channel or holds a label that the
            mapping does not group (the file is named).
    """
    table = lookup_table(mapping)
    count = 0
    for root, _, files in os.walk(src_dir):
        for name in sorted(files):
            if not name.endswith('.png'):
                continue
            src = osp.join(root, name)
            labels = np.asarray(Image.open(src))
            if labels.ndim != 2:
                raise ValueError(f'{src!r} has shape {labels.shape}: a '
                                 f'parser output must be single-channel')
            out = table[labels]
            if (out == 255).any():
                bad = sorted(set(labels[out == 255].tolist()))
                raise ValueError(f'{src!r} holds labels {bad} that the '
                                 f'mapping does not group')
            dst = osp.join(dst_dir, osp.relpath(src, src_dir))
            os.makedirs(osp.dirname(dst), exist_ok=True)
            Image.fromarray(out).save(dst)
            count += 1
    if not count:
        raise ValueError(f'no .png files under {src_dir!r}')
    return count


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src_dir', help='the parser\'s label PNGs')
    parser.add_argument('dst_dir', help='the part-map folder to write')
    parser.add_argument('--mapping', choices=sorted(MAPPINGS),
                        default='lip5')
    parser.add_argument('--mapping-file',
                        help='JSON {"source label": group} instead')
    args = parser.parse_args(argv)
    mapping = MAPPINGS[args.mapping]
    if args.mapping_file:
        with open(args.mapping_file) as f:
            mapping = {int(k): int(v) for k, v in json.load(f).items()}
    try:
        n = convert(args.src_dir, args.dst_dir, mapping)
    except ValueError as e:
        sys.exit(f'error: {e}')
    print(f'wrote {n} part maps to {args.dst_dir}')


if __name__ == '__main__':
    main()
