#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Convert an official GhostNet checkpoint (or timm's ``ghostnet_050/100/
130`` state dict, which uses the same names) into an EVLab / mmpretrain
checkpoint for ``configs/ghostnet/ghostnet-*x_8xb128_in1k.py``.

    python tools/model_converters/ghostnet_to_evlab.py \\
        state_dict_73.98.pth checkpoints/ghostnet-1.0x_in1k.pth
"""
import argparse
import os
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.ghostnet.ghostnet import convert_official  # noqa: E402


def load_state_dict(path: str, trusted: bool = False) -> dict:
    """A plain state dict from ``path`` (weights-only unless trusted)."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001
        if not trusted:
            sys.exit(f'error: {path} cannot be read with weights_only=True '
                     f'({str(e).splitlines()[0]}); if you trust the file, '
                     f'rerun with --trusted')
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
    for key in ('state_dict', 'model', 'state_dict_ema'):
        if isinstance(ckpt, dict) and key in ckpt:
            return ckpt[key]
    return ckpt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official or timm checkpoint')
    parser.add_argument('dst', help='output EVLab checkpoint')
    parser.add_argument('--trusted', action='store_true',
                        help='allow full unpickling of a trusted file')
    args = parser.parse_args()
    state = convert_official(load_state_dict(args.src, args.trusted))
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save({'state_dict': state, 'meta': {'converted_from': args.src}},
               args.dst)
    print(f'{len(state)} tensors -> {args.dst}')


if __name__ == '__main__':
    main()
