#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Manifold KD: the cost of the manifold loss (forward + backward) next to
the student's own training step, in one process, on CPU.

The student is DeiT-Tiny from configs/manifold_kd/deit-tiny_8xb64_in1k.py.
Its training step is mmengine's ``train_step`` as the Runner calls it:
the data preprocessor (normalisation, Mixup / CutMix), forward, the label
smoothing loss, backward and the recipe's AdamW update (fp32, plain
OptimWrapper: AMP needs a GPU); its forward + backward alone is a second
row. The loss runs on features of the shapes the ImageNet recipe records:
8 pairs of DeiT-Ti (B, 197, 192) and CaiT-S24 (B, 196, 384) block outputs,
K = 192, plus the soft KD term. The teacher's forward is not part of
either (it is the same for any logit distillation). The overhead ratio is
given against both student rows; the target is < 10% of the training
step.
A second table shows how the intra-image term (B x N x N) grows with the
number of patches N.

    python tools/analysis_tools/manifold_kd_benchmark.py --threads 2
"""
import argparse
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

import projects.manifold_kd  # noqa: E402,F401
from projects.common.complexity import (  # noqa: E402
    compare_latency,
    peak_memory,
)
from projects.manifold_kd import (  # noqa: E402
    ManifoldRelationLoss,
    SoftTargetKDLoss,
    align_tokens,
    plain_relation_terms,
    relation_mse,
)

CONFIG = osp.join(ROOT, 'configs', 'manifold_kd', 'deit-tiny_8xb64_in1k.py')


def student_fwd_bwd(model, x, samples):
    def step():
        model.zero_grad(set_to_none=True)
        losses = model(x, samples, mode='loss')
        sum(losses.values()).backward()
    return step


def student_train_step(model, optim_cfg, batch):
    """mmengine's train step of the recipe: preprocessor (with Mixup /
    CutMix), forward, loss, backward, AdamW update."""
    optim_cfg = dict(optim_cfg, type='OptimWrapper')  # fp32 on CPU
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    g = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[torch.randint(0, 256, (3, 224, 224), dtype=torch.uint8,
                              generator=g) for _ in range(batch)],
        data_samples=[DataSample().set_gt_label(i % 1000)
                      for i in range(batch)])

    def step():
        model.train_step(data, optim_wrapper)
    return step


def plain_terms(fs, ft, idx, weights):
    """The three weighted terms the straightforward way
    (:func:`plain_relation_terms`), for the side-by-side row; tokens
    aligned as the loss does."""
    terms = plain_relation_terms(*align_tokens(fs, ft), idx)
    return sum(weights[k] * v for k, v in zip(ManifoldRelationLoss.TERMS,
                                              terms))


def loss_step(batch, pairs=8, n_s=197, n_t=196, c_s=192, c_t=384,
              classes=1000, plain=False):
    g = torch.Generator().manual_seed(0)
    fs = [torch.randn(batch, n_s, c_s, generator=g).requires_grad_()
          for _ in range(pairs)]
    ft = [torch.randn(batch, n_t, c_t, generator=g) for _ in range(pairs)]
    zs = torch.randn(batch, classes, generator=g).requires_grad_()
    zt = torch.randn(batch, classes, generator=g)
    mf, kd = ManifoldRelationLoss(), SoftTargetKDLoss()

    def step():
        for f in fs + [zs]:
            f.grad = None
        if plain:  # rows drawn per pair, as ours
            total = kd(zs, zt) + sum(
                plain_terms(s, t, mf.sample_rows(batch * n_t, s.device),
                            mf.weights)
                for s, t in zip(fs, ft)) / pairs
        else:
            total = kd(zs, zt) + sum(mf(fs, ft).values())
        total.backward()
    return step


def term_step(batch, n, term, c_s=192, c_t=384):
    """One pair's intra- or inter-image term alone (forward + backward)."""
    g = torch.Generator().manual_seed(0)
    fs = torch.randn(batch, n, c_s, generator=g).requires_grad_()
    ft = torch.nn.functional.normalize(
        torch.randn(batch, n, c_t, generator=g), dim=-1)
    if term == 'inter':
        ft = ft.transpose(0, 1)

    def step():
        fs.grad = None
        f = torch.nn.functional.normalize(fs, dim=-1)
        relation_mse(f if term == 'intra' else f.transpose(0, 1),
                     ft).backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--patches', type=int, nargs='+',
                        default=[49, 196, 441, 784])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    b = args.batch
    x = torch.randn(b, 3, 224, 224)
    samples = [DataSample().set_gt_label(i % 1000) for i in range(b)]
    fns = {
        'student training step': student_train_step(
            model, cfg.optim_wrapper, b),
        'student forward + backward': student_fwd_bwd(model, x, samples),
        'manifold + KD loss': loss_step(b),
        'manifold + KD loss, plain autograd': loss_step(b, plain=True),
    }
    print(f'DeiT-Tiny, batch {b}, 224x224, CPU, {args.threads} threads, '
          f'median of {args.repeats} interleaved runs '
          f'(torch {torch.__version__})\n')
    times = compare_latency(fns, repeats=args.repeats, warmup=1)
    mems = {name: peak_memory(fn) for name, fn in fns.items()}
    print('| step | time (ms) | peak memory (MiB) |')
    print('|---|---|---|')
    for name in fns:
        print(f'| {name} | {times[name] * 1e3:.1f} | '
              f'{mems[name] / 2**20:.1f} |')
    step, fwd_bwd = times['student training step'], times[
        'student forward + backward']
    ratio = times['manifold + KD loss'] / step
    mem_ratio = mems['manifold + KD loss'] / mems['student training step']
    plain = times['manifold + KD loss, plain autograd']
    print(f'\nplain autograd loss: {100 * plain / step:.1f}% of the student '
          f'training step ({100 * plain / fwd_bwd:.1f}% of its forward + '
          f'backward)')
    print(f'loss overhead: {100 * ratio:.1f}% of the student training step '
          f'time ({100 * times["manifold + KD loss"] / fwd_bwd:.1f}% of its '
          f'forward + backward alone), {100 * mem_ratio:.1f}% of its peak '
          f'memory (target < 10% of the step: '
          f'{"met" if ratio < 0.1 else "NOT met"})\n')

    print(f'One layer pair, batch {b}, DeiT-Ti/CaiT widths: growth with the '
          f'number of patches N\n')
    print('| N | intra map entries (B*N*N) | intra (ms) | inter (ms) | '
          'intra peak memory (MiB) |')
    print('|---|---|---|---|---|')
    for n in args.patches:
        t = compare_latency({'intra': term_step(b, n, 'intra'),
                             'inter': term_step(b, n, 'inter')},
                            repeats=args.repeats, warmup=1)
        mem = peak_memory(term_step(b, n, 'intra'))
        print(f'| {n} | {b * n * n / 1e6:.1f}M | {t["intra"] * 1e3:.1f} | '
              f'{t["inter"] * 1e3:.1f} | {mem / 2**20:.1f} |')


if __name__ == '__main__':
    main()
