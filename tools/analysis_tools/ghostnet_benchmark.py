#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""GhostNet: params, MACs and CPU inference latency of ours next to timm's
(same weights) and mmpretrain's MobileNetV3-Large, in one process.

    python tools/analysis_tools/ghostnet_benchmark.py --threads 2
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

import projects.ghostnet  # noqa: E402,F401
from projects.common.complexity import (  # noqa: E402
    compare_latency,
    count_conv_linear_macs,
    count_params,
)
from projects.ghostnet import convert_official, make_divisible  # noqa: E402

TIMM = {0.5: 'ghostnet_050', 1.0: 'ghostnet_100', 1.3: 'ghostnet_130'}


def ours(width: float):
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='GhostNet', widen_factor=width),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='StackedLinearClsHead', num_classes=1000,
                  in_channels=make_divisible(960 * width, 4),
                  mid_channels=[1280], dropout_rate=0.2, norm_cfg=None,
                  act_cfg=dict(type='ReLU')))).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    init_default_scope('mmpretrain')
    x224 = torch.zeros(1, 3, 224, 224)

    print('| model | params | MACs (conv+linear) |')
    print('|---|---|---|')
    for width in TIMM:
        model = ours(width)
        print(f'| GhostNet {width}x (ours) | {count_params(model) / 1e6:.3f}M'
              f' | {count_conv_linear_macs(model, [x224]) / 1e6:.1f}M |')

    ref = timm.create_model('ghostnet_100', pretrained=False).eval()
    model = ours(1.0)
    model.load_state_dict(convert_official(ref.state_dict()))
    mbv3 = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='MobileNetV3', arch='large'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='StackedLinearClsHead', num_classes=1000,
                  in_channels=960, mid_channels=[1280], dropout_rate=0.2,
                  act_cfg=dict(type='HSwish')))).eval()
    print(f'\nCPU latency, {args.threads} threads, 224x224, median of '
          f'{args.repeats} interleaved runs (torch {torch.__version__})\n')
    print('| batch | ours 1.0x (ms) | timm 1.0x (ms) | mmpretrain '
          'MobileNetV3-L (ms) | ours / timm |')
    print('|---|---|---|---|---|')
    for batch in args.batches:
        x = torch.randn(batch, 3, 224, 224)
        with torch.no_grad():
            t = compare_latency({
                'ours': lambda x=x: model(x, mode='tensor'),
                'timm': lambda x=x: ref(x),
                'mbv3': lambda x=x: mbv3(x, mode='tensor'),
            }, repeats=args.repeats)
        print(f'| {batch} | {t["ours"] * 1e3:.1f} | {t["timm"] * 1e3:.1f} | '
              f'{t["mbv3"] * 1e3:.1f} | {t["ours"] / t["timm"]:.3f} |')


if __name__ == '__main__':
    main()
