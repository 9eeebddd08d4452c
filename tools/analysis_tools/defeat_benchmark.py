#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""DeFeat: time and peak memory of one distillation training step next to
the student's own training step and the teacher's forward, in one process.

    python tools/analysis_tools/defeat_benchmark.py   # toy RetinaNet
    python tools/analysis_tools/defeat_benchmark.py \\
        --config configs/defeat/toy_faster_rcnn_defeat.py
    python tools/analysis_tools/defeat_benchmark.py \\
        --config configs/defeat/retinanet_r50.py --size 512 512 --batch 2

A training step is forward + backward + SGD update. The teacher forward is
its whole detector forward under ``no_grad`` (``tensor`` mode). The target
is ``DeFeat step <= student step + teacher forward + 10%``. Weights are
random (no checkpoint is loaded); the boxes are random but fixed.
"""
import argparse
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from projects.common.complexity import compare_latency, peak_memory  # noqa
from projects.common.distill import build_model  # noqa: E402


def make_batch(preprocessor, batch: int, size, boxes: int, seed: int = 0):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    h, w = size
    samples, images = [], []
    for _ in range(batch):
        xy = torch.rand(boxes, 2, generator=g) * torch.tensor([w, h]) * 0.7
        wh = (torch.rand(boxes, 2, generator=g) * 0.6 + 0.05) * torch.tensor(
            [w, h])
        b = torch.cat([xy, (xy + wh).minimum(torch.tensor([w - 1., h - 1.]))],
                      dim=1)
        ds = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                         pad_shape=(h, w),
                                         scale_factor=(1., 1.)))
        ds.gt_instances = InstanceData(
            bboxes=b, labels=torch.randint(0, 3, (boxes, ), generator=g))
        samples.append(ds)
        images.append(torch.randint(0, 256, (3, h, w), generator=g,
                                    dtype=torch.uint8))
    return preprocessor(dict(inputs=images, data_samples=samples), True)


def train_step(model, optim, data):
    def step():
        losses = model(**data, mode='loss')
        total = sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
                    for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        total.backward()
        optim.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config',
                        default='configs/defeat/toy_retinanet_defeat.py')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, nargs=2, default=[160, 160],
                        metavar=('H', 'W'))
    parser.add_argument('--boxes', type=int, default=4)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    import projects.defeat  # noqa: F401  (registers)
    cfg = Config.fromfile(osp.join(ROOT, args.config)
                          if not osp.isabs(args.config) else args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = cfg.model.copy()
    model_cfg.update(teacher_ckpt=None, allow_random_teacher=True)
    distiller = build_model(model_cfg)
    distiller.train()
    student = build_model(cfg.model.student)
    student.load_state_dict(distiller.student.state_dict())
    student.train()
    teacher = distiller.teacher
    data = make_batch(distiller.data_preprocessor, args.batch, args.size,
                      args.boxes)

    def sgd(model):
        return torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad], lr=1e-4,
            momentum=0.9)

    def teacher_forward():
        with torch.no_grad():
            teacher(data['inputs'], data['data_samples'], mode='tensor')

    fns = {
        'defeat step': train_step(distiller, sgd(distiller), data),
        'student step': train_step(student, sgd(student), data),
        'teacher forward': teacher_forward,
    }
    print(f'{args.config}: batch {args.batch} x {args.size[0]}x'
          f'{args.size[1]}, {args.threads} threads, median of '
          f'{args.repeats} interleaved runs')
    times = compare_latency(fns, repeats=args.repeats, warmup=2)
    mems = {name: peak_memory(fn) for name, fn in fns.items()}
    print(f'| {"":15} | time (ms) | peak memory (MiB) |')
    print('|---|---|---|')
    for name in fns:
        print(f'| {name:15} | {times[name] * 1e3:9.1f} | '
              f'{mems[name] / 2**20:17.1f} |')
    t_ratio = times['defeat step'] / (times['student step'] +
                                      times['teacher forward'])
    m_ratio = mems['defeat step'] / (mems['student step'] +
                                     mems['teacher forward'])
    print(f'time:   defeat / (student + teacher) = {t_ratio:.3f} '
          f'(target <= 1.10: {"met" if t_ratio <= 1.10 else "NOT met"})')
    print(f'memory: defeat / (student + teacher) = {m_ratio:.3f}')
    print(f'defeat / student alone: time {times["defeat step"] / times["student step"]:.2f}x, '  # noqa: E501
          f'memory {mems["defeat step"] / mems["student step"]:.2f}x')


if __name__ == '__main__':
    main()
