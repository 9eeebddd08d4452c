#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Convert an official GhostNet checkpoint (or timm's ``ghostnet_050/100/
130`` state dict, which uses the same names) into an EVLab / mmpretrain
checkpoint for ``configs/ghostnet/ghostnet-*x_8xb128_in1k.py``.

    python tools/model_converters/ghostnet_to_evlab.py \\
        state_dict_73.98.pth checkpoints/ghostnet-1.0x_in1k.pth
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
from projects.common.runtime import cli  # noqa: E402
from projects.ghostnet.ghostnet import convert_official  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official or timm checkpoint')
    parser.add_argument('dst', help='output EVLab checkpoint')
    parser.add_argument('--trusted', action='store_true',
                        help='allow full unpickling of a trusted file')
    args = parser.parse_args()
    state = convert_official(load_foreign_state_dict(
        args.src, args.trusted,
        keys=('state_dict', 'model', 'state_dict_ema')))
    save_converted(state, args.dst, converted_from=args.src)


if __name__ == '__main__':
    cli(main)()
