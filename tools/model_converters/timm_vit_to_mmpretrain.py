#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Convert a timm / DeiT ViT checkpoint (e.g. the ManifoldKD DeiT-Tiny
release, ``{'model': ...}``) into an mmpretrain checkpoint for
``VisionTransformer`` + ``VisionTransformerClsHead`` (``DeiTClsHead`` for
distilled DeiT), evaluable with tools/test.py.

    python tools/model_converters/timm_vit_to_mmpretrain.py \\
        deit_tiny_manifold_76.4.pth checkpoints/deit-tiny_manifold.pth
    python tools/test.py configs/manifold_kd/deit-tiny_8xb64_in1k.py \\
        checkpoints/deit-tiny_manifold.pth
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.checkpoint import (  # noqa: E402
    load_foreign_state_dict,
    save_converted,
)
from projects.common.errors import EVLabError  # noqa: E402
from projects.common.runtime import cli  # noqa: E402
from projects.common.timm_vit import convert_timm_vit  # noqa: E402


def convert(src: str, dst: str, trusted: bool = False, ema: bool = False):
    state = load_foreign_state_dict(src, trusted, ema)
    try:
        state = convert_timm_vit(state)
    except KeyError as e:
        raise EVLabError(f'{src}: {e.args[0]}') from None
    save_converted(state, dst, converted_from=src)
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='timm / DeiT checkpoint')
    parser.add_argument('dst', help='output mmpretrain checkpoint')
    parser.add_argument('--ema', action='store_true',
                        help='the EMA weights (state_dict_ema, model_ema)')
    parser.add_argument('--trusted', action='store_true',
                        help='allow full unpickling of a trusted file (the '
                        'DeiT scripts pickle their args)')
    args = parser.parse_args()
    convert(args.src, args.dst, args.trusted, args.ema)


if __name__ == '__main__':
    cli(main)()
