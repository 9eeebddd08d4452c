#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""One cost axis for EVLab's attention modules: MACs and peak memory of a
self-attention layer at a few token counts N, in one process.

    python tools/analysis_tools/attention_cost.py \
        --out docs/figures/attention_cost.json \
        --plot docs/figures/attention_cost.png

Then ``python tools/docs/gen_model_zoo.py`` renders the table of
docs/vision_transformer_map.md from the JSON file.

The modules are the projects' own:

- dense multi-head self-attention as in TNT / DeiT
  (``projects.tnt.tnt.Attention``: ``qk``, ``v`` and ``proj`` linears,
  softmax over all N keys), once with the N x N attention map written out
  (``fused=False``) and once with ``scaled_dot_product_attention``
  (``fused=True``, TNT's default);
- ISA's dense block (``projects.issa.DenseSelfAttention``: 1x1 conv
  projections, one N x N affinity) and its interlaced factorisation
  (``projects.issa.InterlacedSparseSelfAttention``: a long-range step over
  groups of Q = N / P pixels, then a short-range step over blocks of P
  pixels), on an s x s map with N = s^2.

MACs are counted, not timed: every convolution and matrix product
(``projects.common.complexity.count_macs``, torch's ``FlopCounterMode``
/ 2). Peak memory is the highest tensor memory allocated during one
forward on top of the input and the weights (torch's CPU allocator events
recorded by ``torch.profiler``; ``projects.common.complexity.peak_memory``;
scratch memory a library allocates outside torch is not seen). Batch 1,
fp32, eval mode, ``no_grad``, one thread (the fused kernel's buffers
depend on the thread count). About 20 s of CPU.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Callable, Dict, List

import torch
import torch.nn as nn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

import projects.issa  # noqa: E402,F401
from projects.common.complexity import count_macs, peak_memory  # noqa: E402
from projects.tnt.tnt import Attention  # noqa: E402

SIDES = (8, 16, 32, 64)
CHANNELS = 256
HEADS = 4
KEY_CHANNELS = 128
DOWN_FACTOR = (8, 8)
LABELS = {
    'dense-explicit': 'dense MHSA, map written out (TNT/DeiT)',
    'dense-fused': 'dense MHSA, fused SDPA (TNT default)',
    'isa-dense': 'ISA dense block',
    'isa': 'ISA interlaced',
}


def build_modules() -> Dict[str, nn.Module]:
    init_default_scope('mmseg')
    torch.manual_seed(0)
    bn, relu = dict(type='BN'), dict(type='ReLU')
    mods = {
        'dense-explicit': Attention(CHANNELS, HEADS, fused=False),
        'dense-fused': Attention(CHANNELS, HEADS, fused=True),
        'isa-dense': MODELS.build(dict(
            type='DenseSelfAttention', channels=CHANNELS,
            key_channels=KEY_CHANNELS, norm_cfg=bn, act_cfg=relu)),
        'isa': MODELS.build(dict(
            type='InterlacedSparseSelfAttention', channels=CHANNELS,
            key_channels=KEY_CHANNELS, down_factor=DOWN_FACTOR, norm_cfg=bn,
            act_cfg=relu)),
    }
    return {k: m.eval() for k, m in mods.items()}


def make_call(key: str, module: nn.Module, side: int
              ) -> Callable[[], object]:
    """``module`` on N = side^2 tokens: (1, N, C) for the MHSA modules,
    (1, C, side, side) for the ISA modules."""
    g = torch.Generator().manual_seed(side)
    if key.startswith('dense'):
        x = torch.randn(1, side * side, CHANNELS, generator=g)
    else:
        x = torch.randn(1, CHANNELS, side, side, generator=g)

    def call():
        with torch.no_grad():
            return module(x)

    return call


def measure(sides=SIDES, keys=None, memory: bool = True) -> dict:
    mods = build_modules()
    keys = keys or list(mods)
    out = dict(modules=[])
    for key in keys:
        rows: List[dict] = []
        for side in sides:
            call = make_call(key, mods[key], side)
            row = dict(macs=count_macs(call))
            if memory:
                row['peak_bytes'] = peak_memory(call)
            rows.append(row)
        out['modules'].append(dict(key=key, label=LABELS[key], rows=rows))
    return out


def plot(data: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    tokens = data['tokens']
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    styles = ['o-', 's--', '^-', 'D-']
    for m, style in zip(data['modules'], styles):
        axes[0].plot(tokens, [r['macs'] / 1e9 for r in m['rows']], style,
                     label=m['label'])
        axes[1].plot(tokens, [r['peak_bytes'] / 2**20 for r in m['rows']],
                     style, label=m['label'])
    for ax, title in zip(axes, ('MACs (G)', 'peak memory (MiB)')):
        ax.set_xscale('log', base=2)
        ax.set_yscale('log')
        ax.set_xticks(tokens, [f'{n}\n({s}x{s})' for n, s in
                               zip(tokens, data['sides'])])
        ax.set_xlabel('tokens N (map)')
        ax.set_title(title)
        ax.grid(True, which='both', alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f'one self-attention layer, C = {data["channels"]}, '
                 f'batch 1, fp32, CPU forward')
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='docs/figures/attention_cost.json')
    parser.add_argument('--plot', default='docs/figures/attention_cost.png')
    parser.add_argument('--sides', type=int, nargs='+', default=SIDES)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = dict(
        command='python tools/analysis_tools/attention_cost.py',
        channels=CHANNELS,
        settings=(f'MHSA {HEADS} heads of {CHANNELS // HEADS}; ISA C_k '
                  f'{KEY_CHANNELS}, P {DOWN_FACTOR[0]}x{DOWN_FACTOR[1]}, '
                  f'BN + ReLU; batch 1, fp32, eval, no_grad, 1 thread, '
                  f'torch {torch.__version__.split("+")[0]}'),
        tokens=[s * s for s in args.sides],
        sides=list(args.sides))
    data.update(measure(args.sides))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(data, f, indent=1)
        f.write('\n')
    for m in data['modules']:
        cells = ', '.join(
            f'N={n}: {r["macs"] / 1e9:.3f} GMAC {r["peak_bytes"] / 2**20:.1f}'
            f' MiB' for n, r in zip(data['tokens'], m['rows']))
        print(f'{m["label"]}: {cells}')
    if args.plot:
        plot(data, args.plot)
        print(f'wrote {args.out}, {args.plot}')


if __name__ == '__main__':
    main()
