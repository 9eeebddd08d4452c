#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Measured CPU inference of pruned DeiT-Ti (Patch Slimming's gathered
path, the spec's reference schedule: -45% MACs) and of ToMe at about the
same MACs, against dense DeiT-Ti, in one process.

    python tools/analysis_tools/patch_slim_benchmark.py --threads 2 \\
        --batch-sizes 1 64 --json work_dirs/patch_slim_benchmark.json

The three models share random weights (speed does not depend on them).
Latencies are measured interleaved (each repeat runs every model in
turn, so drifts of the machine hit all alike), under
``torch.inference_mode``, after warm-up; throughput is images per second
at the median latency. Params, analytic MACs and counted MACs (torch's
FlopCounterMode, the CPU attention kernel included) are printed for each.
Target: pruned >= 1.6x dense throughput at batch 64 (ideal ~1.8x).
Run it on a quiet machine: figures taken next to other jobs are not
comparable.
"""
import argparse
import json
import os.path as osp
import random
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402

import projects.patch_slim  # noqa: E402,F401
from projects.common.complexity import (  # noqa: E402
    count_macs,
    count_params,
    latency_samples,
    summarize,
)
from projects.patch_slim import model_macs  # noqa: E402

#: tokens output by blocks 1..12 of DeiT-Ti (spec section 3): 0.686 G
REFERENCE = [197, 197, 170, 150, 130, 110, 95, 80, 65, 50, 35, 1]


def classifier(arch: str, img_size: int, **backbone) -> torch.nn.Module:
    dims = {'deit-tiny': 192, 'deit-small': 384, 'deit-base': 768}[arch]
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='PatchSlimViT', arch=arch, img_size=img_size,
                      patch_size=16, **backbone),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=1000,
                  in_channels=dims))).eval()


def nested_lists(tokens, num_tokens: int, seed: int = 0):
    """Random nested keep lists with these counts (the class token
    always kept): which tokens does not change the speed."""
    rng = random.Random(seed)
    present, out = list(range(num_tokens)), []
    for n in tokens:
        rest = present[1:]
        present = [0] + sorted(rng.sample(rest, n - 1))
        out.append(present)
    return out


def tome_matching(dense: torch.nn.Module, target: int) -> int:
    """The constant merge count whose MACs come closest to ``target``."""
    best = None
    for r in range(0, dense.backbone.num_tokens // 2):
        dense.backbone.set_tome(r)
        macs = model_macs(dense.backbone, 1000)['total']
        if best is None or abs(macs - target) < abs(best[1] - target):
            best = (r, macs)
    dense.backbone.set_tome(None)
    return best[0]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='deit-tiny')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--schedule', type=int, nargs='+',
                        help='tokens kept per block (default: the spec\'s '
                        'reference schedule for 224 px)')
    parser.add_argument('--batch-sizes', type=int, nargs='+',
                        default=[1, 64])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--json', help='write the figures to this file')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    init_default_scope('mmpretrain')

    dense = classifier(args.arch, args.img_size)
    n = dense.backbone.num_tokens
    schedule = args.schedule or REFERENCE
    if len(schedule) != dense.backbone.num_layers:
        parser.error(f'--schedule needs {dense.backbone.num_layers} counts')
    pruned = classifier(args.arch, args.img_size)
    pruned.load_state_dict(dense.state_dict())
    pruned.backbone.set_keep(nested_lists(schedule, n))
    target = model_macs(pruned.backbone, 1000)['total']
    r = tome_matching(dense, target)
    tome = classifier(args.arch, args.img_size, tome_r=r)
    tome.load_state_dict(dense.state_dict())
    models = {'dense': dense, 'Patch Slimming (gathered)': pruned,
              f'ToMe (r = {r})': tome}

    probe = torch.randn(1, 3, args.img_size, args.img_size)
    rows = {}
    for name, model in models.items():
        with torch.no_grad():
            counted = count_macs(lambda m=model: m(probe))
        rows[name] = dict(params=count_params(model),
                          macs=model_macs(model.backbone, 1000)['total'],
                          macs_counted=counted)
    print(f'{args.arch} at {args.img_size} px, {n} tokens; '
          f'{args.threads} threads, torch {torch.__version__}; '
          f'pruned schedule {schedule}')
    for bs in args.batch_sizes:
        x = torch.randn(bs, 3, args.img_size, args.img_size)

        def call(model, x=x):
            def fn():
                with torch.inference_mode():
                    model(x)
            return fn
        times = latency_samples({k: call(m) for k, m in models.items()},
                                repeats=args.repeats, warmup=args.warmup)
        for name, ts in times.items():
            s = summarize(ts)
            rows[name][f'batch{bs}'] = dict(
                latency_ms=1e3 * s['median'], p25_ms=1e3 * s['p25'],
                p75_ms=1e3 * s['p75'], images_per_s=bs / s['median'])

    print('\n| model | params | MACs (analytic) | MACs (counted) | ' +
          ' | '.join(f'batch {bs}: ms (img/s)' for bs in args.batch_sizes)
          + ' |')
    print('|---|---|---|---|' + '---|' * len(args.batch_sizes))
    for name, row in rows.items():
        cells = ' | '.join(
            f'{row[f"batch{bs}"]["latency_ms"]:.1f} '
            f'({row[f"batch{bs}"]["images_per_s"]:.1f})'
            for bs in args.batch_sizes)
        print(f'| {name} | {row["params"] / 1e6:.2f} M | '
              f'{row["macs"] / 1e9:.3f} G | {row["macs_counted"] / 1e9:.3f}'
              f' G | {cells} |')
    d = rows['dense']
    ratios = {}
    print()
    for name, row in rows.items():
        if name == 'dense':
            continue
        ratios[name] = {}
        for bs in args.batch_sizes:
            speed = row[f'batch{bs}']['images_per_s'] / \
                d[f'batch{bs}']['images_per_s']
            ratios[name][f'batch{bs}'] = speed
            print(f'{name}: {100 * (1 - row["macs"] / d["macs"]):.1f}% fewer '
                  f'MACs, batch {bs}: {speed:.2f}x dense throughput')
    at64 = ratios['Patch Slimming (gathered)'].get('batch64')
    if at64 is not None:
        print(f'target: pruned >= 1.6x dense throughput at batch 64: '
              f'{at64:.2f}x ({"met" if at64 >= 1.6 else "not met"})')
    result = dict(arch=args.arch, img_size=args.img_size,
                  threads=args.threads, schedule=schedule, tome_r=r,
                  rows=rows, ratios=ratios)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
