#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""ISSA: peak memory, MACs and CPU time of interlaced sparse attention
against dense self-attention, and of our ISSAHead against mmseg's ISAHead
and NLHead, on square feature maps, side by side in one process.

    python tools/analysis_tools/issa_benchmark.py --threads 1 \
        --repeats 3 --warmup 1 --plot projects/issa/memory_vs_size.png

Everything runs in eval mode under ``no_grad``, fp32, batch 1. Memory is
the peak of tensor memory allocated during one forward on top of the
inputs and weights (torch's allocator events, see
``projects.common.complexity.peak_memory``); MACs count every convolution
and matrix product; times are the median of interleaved runs.
"""
import argparse
import os.path as osp
import sys
from typing import Callable, Dict, List

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

import projects.issa  # noqa: E402,F401
from projects.common.complexity import (  # noqa: E402
    compare_latency,
    count_macs,
    peak_memory,
)

CORES = ('dense', 'isa')
HEADS = ('ISSAHead', 'ISAHead', 'NLHead')
MIB = 2**20


def build(args) -> Dict[str, torch.nn.Module]:
    init_default_scope('mmseg')
    bn, relu = dict(type='BN'), dict(type='ReLU')
    c, ck = args.channels, args.key_channels
    torch.manual_seed(0)
    models = dict(
        dense=MODELS.build(dict(type='DenseSelfAttention', channels=c,
                                key_channels=ck, norm_cfg=bn,
                                act_cfg=relu)),
        isa=MODELS.build(dict(type='InterlacedSparseSelfAttention',
                              channels=c, key_channels=ck,
                              down_factor=args.down_factor, norm_cfg=bn,
                              act_cfg=relu)))
    head = dict(in_channels=args.in_channels, channels=c, num_classes=19,
                dropout_ratio=0.1, norm_cfg=bn)
    models['ISAHead'] = MODELS.build(dict(
        type='ISAHead', isa_channels=ck, down_factor=args.down_factor,
        **head))
    models['ISSAHead'] = MODELS.build(dict(
        type='ISSAHead', isa_channels=ck, down_factor=args.down_factor,
        **head))
    # the same weights: the two heads compute the same function
    models['ISSAHead'].load_state_dict(models['ISAHead'].state_dict())
    # mmcv NonLocal2d, embedded Gaussian, reduction 2 (mmseg's NLHead)
    models['NLHead'] = MODELS.build(dict(
        type='NLHead', reduction=2, use_scale=True,
        mode='embedded_gaussian', **head))
    return {k: m.eval() for k, m in models.items()}


def calls(models, size: int, args) -> Dict[str, Callable[[], object]]:
    g = torch.Generator().manual_seed(size)
    core_x = torch.randn(1, args.channels, size, size, generator=g)
    head_x = [torch.randn(1, args.in_channels, size, size, generator=g)]
    fns = {k: (lambda m=models[k]: m(core_x)) for k in CORES}
    fns.update({k: (lambda m=models[k]: m(head_x)) for k in HEADS})
    return fns


def run(args) -> List[dict]:
    torch.set_num_threads(args.threads)
    models = build(args)
    rows = []
    for size in args.sizes:
        fns = calls(models, size, args)
        with torch.no_grad():
            torch.testing.assert_close(fns['ISSAHead'](), fns['ISAHead'](),
                                       atol=1e-4, rtol=1e-4)
            row = dict(size=size)
            for name, fn in fns.items():
                # one forward for both: the MAC counter allocates nothing
                macs = []
                mem = peak_memory(
                    lambda fn=fn, macs=macs: macs.append(count_macs(fn)))
                row[name] = dict(macs=macs[0], mem=mem)
            times = compare_latency(fns, repeats=args.repeats,
                                    warmup=args.warmup)
        for name, t in times.items():
            row[name]['time'] = t
        rows.append(row)
        print(f'  {size}x{size} done', file=sys.stderr, flush=True)
    return rows


def report(rows: List[dict], args) -> None:
    print(f'\nAttention core, C={args.channels}, C_k={args.key_channels}, '
          f'P={tuple(args.down_factor)}; {args.threads} threads, median of '
          f'{args.repeats} interleaved runs (torch {torch.__version__})\n')
    print('| map | dense MiB | ISA MiB | mem ISA/dense | dense GMAC | '
          'ISA GMAC | MAC ISA/dense | dense ms | ISA ms | time ISA/dense |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        d, i = r['dense'], r['isa']
        print(f"| {r['size']}x{r['size']} | {d['mem'] / MIB:.1f} | "
              f"{i['mem'] / MIB:.1f} | {i['mem'] / d['mem']:.3f} | "
              f"{d['macs'] / 1e9:.2f} | {i['macs'] / 1e9:.2f} | "
              f"{i['macs'] / d['macs']:.3f} | {d['time'] * 1e3:.1f} | "
              f"{i['time'] * 1e3:.1f} | {i['time'] / d['time']:.3f} |")
    print(f'\nDecode heads, in_channels={args.in_channels}, channels='
          f'{args.channels} (ISSAHead and ISAHead with the same weights)\n')
    print('| map | ISSAHead ms | ISAHead ms | ours/ISAHead | NLHead ms | '
          'MiB ours / ISAHead / NLHead | GMAC ours / ISAHead / NLHead |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        o, m, n = r['ISSAHead'], r['ISAHead'], r['NLHead']
        print(f"| {r['size']}x{r['size']} | {o['time'] * 1e3:.1f} | "
              f"{m['time'] * 1e3:.1f} | {o['time'] / m['time']:.3f} | "
              f"{n['time'] * 1e3:.1f} | {o['mem'] / MIB:.1f} / "
              f"{m['mem'] / MIB:.1f} / {n['mem'] / MIB:.1f} | "
              f"{o['macs'] / 1e9:.2f} / {m['macs'] / 1e9:.2f} / "
              f"{n['macs'] / 1e9:.2f} |")
    r = rows[-1]
    checks = [
        ('ISA peak memory / dense', r['isa']['mem'] / r['dense']['mem'],
         '<', 0.10),
        ('ISA MACs / dense', r['isa']['macs'] / r['dense']['macs'], '<',
         0.25),
        ('ISSAHead time / ISAHead', r['ISSAHead']['time'] /
         r['ISAHead']['time'], '<=', 1.05),
    ]
    print(f"\nTargets at {r['size']}x{r['size']}:")
    for name, value, op, bound in checks:
        ok = value < bound if op == '<' else value <= bound
        print(f"  {name} = {value:.3f} ({op} {bound}): "
              f"{'met' if ok else 'NOT met'}")


def plot(rows: List[dict], path: str, args) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    sizes = [r['size'] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, label, style in [
            ('dense', 'dense self-attention', 'o-'),
            ('isa', 'ISA (ours)', 's-'),
            ('NLHead', 'mmseg NLHead', 'v--'),
            ('ISAHead', 'mmseg ISAHead', 'x--'),
            ('ISSAHead', 'ISSAHead (ours)', '+:')]:
        ax.plot(sizes, [r[name]['mem'] / MIB for r in rows], style,
                label=label)
    ax.set_yscale('log')
    ax.set_xticks(sizes)
    ax.set_xticklabels([f'{s}x{s}' for s in sizes])
    ax.set_xlabel('feature map')
    ax.set_ylabel('peak memory of one forward (MiB)')
    ax.set_title(f'C={args.channels}, C_k={args.key_channels}, P='
                 f'{tuple(args.down_factor)}, fp32, batch 1, CPU')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f'\nplot: {path}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+',
                        default=[32, 64, 128])
    parser.add_argument('--channels', type=int, default=512)
    parser.add_argument('--key-channels', type=int, default=256)
    # 512-channel head inputs (2048 for ResNet-50's C5 as in the configs:
    # the heads' 3x3 input convs then dominate their time even more)
    parser.add_argument('--in-channels', type=int, default=512)
    parser.add_argument('--down-factor', type=int, nargs=2, default=[8, 8])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--plot', default=None,
                        help='PNG of peak memory against map size')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: one 32x32 map, one timed run')
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.warmup = [32], 1, 0
    rows = run(args)
    report(rows, args)
    if args.plot:
        plot(rows, args.plot, args)


if __name__ == '__main__':
    main()
