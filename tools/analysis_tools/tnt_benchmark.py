#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""TNT-S: CPU training-step time (forward + backward) and peak memory of
ours next to timm's TNT and mmpretrain's TNT, in one process.

    python tools/analysis_tools/tnt_benchmark.py --threads 2 --batch 8

Ours runs in both structures with the weights of the timm model of the same
structure (converted); mmpretrain's ``TNT`` is legacy-structure. Each ratio
is ours against the faster of timm and mmpretrain (target <= 1.05).
"""
import argparse
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import timm  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402

import projects.tnt  # noqa: E402,F401
from projects.common.complexity import (  # noqa: E402
    compare_latency,
    count_macs,
    count_params,
    peak_memory,
)
from projects.tnt import convert_timm  # noqa: E402


def classifier(backbone: dict) -> torch.nn.Module:
    return MODELS.build(dict(
        type='ImageClassifier', backbone=backbone,
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=384)))


def build_models() -> dict:
    init_default_scope('mmpretrain')
    timm_off = timm.create_model('tnt_s_patch16_224', pretrained=False)
    timm_leg = timm.create_model('tnt_s_legacy_patch16_224',
                                 pretrained=False)
    ours_off = classifier(dict(type='TransformerInTransformer', arch='s'))
    ours_off.load_state_dict(convert_timm(timm_off.state_dict()))
    ours_leg = classifier(dict(type='TransformerInTransformer', arch='s',
                               structure='legacy'))
    ours_leg.load_state_dict(convert_timm(timm_leg.state_dict()))
    mmp = classifier(dict(type='TNT', arch='s'))
    return {
        'ours (official)': (ours_off, True),
        'timm tnt_s_patch16_224 (official)': (timm_off, False),
        'ours (legacy)': (ours_leg, True),
        'timm tnt_s_legacy_patch16_224 (legacy)': (timm_leg, False),
        'mmpretrain TNT-S (legacy)': (mmp, True),
    }


def train_step(model: torch.nn.Module, mm: bool, x: torch.Tensor,
               y: torch.Tensor):
    def step() -> None:
        model.zero_grad(set_to_none=True)
        logits = model(x, mode='tensor') if mm else model(x)
        torch.nn.functional.cross_entropy(logits, y).backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = build_models()
    x = torch.randn(args.batch, 3, 224, 224)
    y = torch.randint(0, 1000, (args.batch, ))
    steps = {}
    for name, (model, mm) in models.items():
        model.train()
        steps[name] = train_step(model, mm, x, y)

    x1 = torch.zeros(1, 3, 224, 224)
    print('| model | params | MACs (224, attention products included) |')
    print('|---|---|---|')
    for name, (model, mm) in models.items():
        fn = (lambda m=model: m(x1, mode='tensor')) if mm else \
            (lambda m=model: m(x1))
        print(f'| {name} | {count_params(model) / 1e6:.3f}M | '
              f'{count_macs(fn) / 1e9:.3f}G |')

    times = compare_latency(steps, repeats=args.repeats, warmup=1)
    mems = {}
    for name, step in steps.items():
        step()  # parameters' gradients exist before; the profile sees
        mems[name] = peak_memory(step)  # activations and new gradients
    print(f'\nCPU training step (forward + backward), batch {args.batch}, '
          f'224x224, {args.threads} threads, median of {args.repeats} '
          f'interleaved runs (torch {torch.__version__}, timm '
          f'{timm.__version__})\n')
    print('| model | step (s) | peak memory (MiB) |')
    print('|---|---|---|')
    for name in steps:
        print(f'| {name} | {times[name]:.3f} | {mems[name] / 2**20:.0f} |')

    ref_t = min(times['timm tnt_s_patch16_224 (official)'],
                times['mmpretrain TNT-S (legacy)'])
    ref_m = min(mems['timm tnt_s_patch16_224 (official)'],
                mems['mmpretrain TNT-S (legacy)'])
    leg_t = min(times['timm tnt_s_legacy_patch16_224 (legacy)'],
                times['mmpretrain TNT-S (legacy)'])
    leg_m = min(mems['timm tnt_s_legacy_patch16_224 (legacy)'],
                mems['mmpretrain TNT-S (legacy)'])
    print('\n| ours against the faster of timm and mmpretrain | time | '
          'peak memory |')
    print('|---|---|---|')
    print(f'| official | {times["ours (official)"] / ref_t:.3f} | '
          f'{mems["ours (official)"] / ref_m:.3f} |')
    print(f'| legacy | {times["ours (legacy)"] / leg_t:.3f} | '
          f'{mems["ours (legacy)"] / leg_m:.3f} |')


if __name__ == '__main__':
    main()
