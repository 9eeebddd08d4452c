#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Convert a TNT checkpoint (official Efficient-AI-Backbones ``tnt_pytorch``,
timm of either structure, or mmpretrain's ``TNT``) into an EVLab /
mmpretrain checkpoint for ``TransformerInTransformer`` + ``LinearClsHead``
(configs/tnt/).

    python tools/model_converters/tnt_to_evlab.py --source official \\
        tnt_s_81.5.pth.tar checkpoints/tnt-s-p16_in1k.pth --trusted
    python tools/model_converters/tnt_to_evlab.py --source mmpretrain \\
        tnt-small-p16_3rdparty_in1k.pth checkpoints/tnt-s-p16_legacy.pth

The structure of the weights (``official`` or ``legacy``) is read from
their shapes and written to ``meta.structure``; a legacy checkpoint needs
``structure='legacy'`` in the backbone (configs/tnt/
tnt-s-p16_legacy_in1k-eval.py).
"""
import argparse
import os.path as osp
import sys
from typing import Dict

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.checkpoint import (  # noqa: E402
    load_foreign_state_dict,
    save_converted,
)
from projects.common.errors import EVLabError  # noqa: E402
from projects.common.runtime import cli  # noqa: E402
from projects.tnt.tnt import (  # noqa: E402
    convert_mmpretrain,
    convert_official,
    convert_timm,
)

CONVERTERS = {
    'official': convert_official,
    'timm': convert_timm,
    'mmpretrain': convert_mmpretrain,
}


def structure_of(state: Dict[str, torch.Tensor]) -> str:
    """``official`` when the block fusion has its LayerNorm on d
    (``norm2_proj``), else ``legacy``."""
    if not any(k.startswith('backbone.blocks.0.') for k in state):
        raise KeyError('no backbone.blocks.0.* key after conversion')
    return 'official' if 'backbone.blocks.0.norm2_proj.weight' in state \
        else 'legacy'


def convert(src: str, dst: str, source: str, trusted: bool = False,
            ema: bool = False) -> Dict[str, torch.Tensor]:
    try:
        state = CONVERTERS[source](load_foreign_state_dict(src, trusted,
                                                           ema))
        structure = structure_of(state)
    except KeyError as e:
        raise EVLabError(f'{src}: {e.args[0]}') from None
    save_converted(state, dst, converted_from=src, source=source,
                   structure=structure)
    print(f'({structure} structure)')
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='foreign checkpoint')
    parser.add_argument('dst', help='output EVLab checkpoint')
    parser.add_argument('--source', choices=sorted(CONVERTERS),
                        required=True, help='layout of the source keys')
    parser.add_argument('--ema', action='store_true',
                        help='the EMA weights (state_dict_ema, model_ema)')
    parser.add_argument('--trusted', action='store_true',
                        help='allow full unpickling of a trusted file')
    args = parser.parse_args()
    convert(args.src, args.dst, args.source, args.trusted, args.ema)


if __name__ == '__main__':
    cli(main)()
