#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Manifold KD on a GPU: the loss (forward + backward) next to a DeiT-Ti
training step and a CaiT-S24 forward, all at batch 64, plus a parity check
of the loss on the GPU against the straightforward autograd version
(`plain_relation_terms`).

The student is timm's DeiT-Ti (the architecture of the mmpretrain recipe,
tested equal in tests/projects/test_manifold_kd/test_timm_parity.py) with
AdamW and a soft-target CE, so that the script runs on a bare GPU machine
with torch and timm only: without mmpretrain, projects/manifold_kd/
losses.py is loaded on its own with a stand-in registry.

    python tools/analysis_tools/manifold_kd_gpu_benchmark.py --repeats 40
"""
import argparse
import importlib.util
import os.path as osp
import sys
import time
import types

import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_losses():
    """projects/manifold_kd/losses.py, with or without mmpretrain."""
    if importlib.util.find_spec('mmpretrain') is None:
        registry = types.ModuleType('mmpretrain.registry')
        registry.MODELS = types.SimpleNamespace(
            register_module=lambda *a, **k: (lambda cls: cls))
        sys.modules['mmpretrain'] = types.ModuleType('mmpretrain')
        sys.modules['mmpretrain.registry'] = registry
    spec = importlib.util.spec_from_file_location(
        'manifold_kd_losses',
        osp.join(ROOT, 'projects', 'manifold_kd', 'losses.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference(losses, fs, ft, idx):
    """Weighted terms of one pair, the straightforward way (autograd)."""
    weights = losses.ManifoldRelationLoss().weights
    return [weights[k] * v for k, v in zip(
        losses.ManifoldRelationLoss.TERMS,
        losses.plain_relation_terms(fs, ft, idx))]


def parity(losses, batch, device):
    """Relative errors of 3 stacked pairs against the reference."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float64, torch.float32):
        xs = [torch.randn(batch, 197, 192, generator=g, dtype=dtype)
              for _ in range(3)]
        ts = [torch.randn(batch, 196, 384, generator=g, dtype=dtype)
              .to(device) for _ in range(3)]
        idx = [torch.randperm(batch * 196, generator=g)[:192].to(device)
               for _ in range(3)]
        ours = [x.clone().to(device).requires_grad_() for x in xs]
        refs = [x.clone().to(device).requires_grad_() for x in xs]
        out = losses.ManifoldRelationLoss()(ours, ts, rand_indices=idx)
        got = [out[f'loss_mf_{k}'] for k in ('intra', 'inter', 'rand')]
        per = [reference(losses, x[:, 1:], t, i)
               for x, t, i in zip(refs, ts, idx)]
        want = [sum(p[k] for p in per) / 3 for k in range(3)]
        sum(v * c for v, c in zip(got, (1, 3, 7))).backward()
        sum(v * c for v, c in zip(want, (1, 3, 7))).backward()
        value = max(((a - b).abs() / b.abs()).item()
                    for a, b in zip(got, want))
        grad = max(((a.grad - b.grad).norm() / b.grad.norm()).item()
                   for a, b in zip(ours, refs))
        print(f'parity, 3 stacked pairs, {dtype}: values {value:.1e}, '
              f'gradients {grad:.1e} (relative)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=40)
    parser.add_argument('--device', default='cuda')
    args = parser.parse_args()
    import timm
    losses = load_losses()
    dev, b = args.device, args.batch
    on_gpu = dev.startswith('cuda')
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    name = torch.cuda.get_device_name(dev) if on_gpu else 'CPU'
    print(f'{dev} ({name}), torch {torch.__version__}, batch {b}')
    parity(losses, b, dev)

    student = timm.create_model('deit_tiny_patch16_224').to(dev).train()
    opt = torch.optim.AdamW(student.parameters(), lr=5e-4,
                            weight_decay=0.05)
    img = torch.randn(b, 3, 224, 224, device=dev)
    target = torch.softmax(torch.randn(b, 1000, device=dev), -1)

    def student_step(amp):
        def run():
            with torch.autocast(dev.split(':')[0], dtype=torch.bfloat16,
                                enabled=amp):
                logits = student(img)
            loss = -(target * F.log_softmax(logits.float(), -1)).sum(1)
            opt.zero_grad(set_to_none=True)
            loss.mean().backward()
            opt.step()
        return run

    teacher = timm.create_model('cait_s24_224').to(dev).eval()
    teacher.requires_grad_(False)

    def teacher_forward():
        with torch.no_grad(), torch.autocast(dev.split(':')[0],
                                             dtype=torch.bfloat16):
            teacher(img)

    g = torch.Generator().manual_seed(0)
    fs = [torch.randn(b, 197, 192, generator=g).to(dev).requires_grad_()
          for _ in range(8)]
    ft = [torch.randn(b, 196, 384, generator=g).to(dev) for _ in range(8)]
    zs = torch.randn(b, 1000, device=dev, requires_grad=True)
    zt = torch.randn(b, 1000, device=dev)
    mf, kd = losses.ManifoldRelationLoss(), losses.SoftTargetKDLoss()

    def loss_step(mode):
        def run():
            for f in fs + [zs]:
                f.grad = None
            if mode == 'plain':
                total = kd(zs, zt) + sum(sum(reference(
                    losses, s[:, 1:], t, mf.sample_rows(b * 196, s.device)))
                    for s, t in zip(fs, ft)) / len(fs)
            else:
                feats = ([f.to(torch.bfloat16) for f in fs], [
                    f.to(torch.bfloat16) for f in ft
                ]) if mode == 'bf16' else (fs, ft)
                total = kd(zs, zt) + sum(mf(*feats).values())
            total.backward()
        return run

    def per_pair_step():
        stacked = losses._pairs_per_node
        losses._pairs_per_node = lambda device_type: 1
        try:
            loss_step('fp32')()
        finally:
            losses._pairs_per_node = stacked

    rows = {
        'DeiT-Ti training step, fp32': student_step(False),
        'DeiT-Ti training step, AMP bf16': student_step(True),
        'CaiT-S24 forward, AMP bf16': teacher_forward,
        'loss (8 pairs + KD), one node, fp32 features': loss_step('fp32'),
        'the same, bf16 features': loss_step('bf16'),
        'the same, one node per pair (CPU layout)': per_pair_step,
        'plain autograd': loss_step('plain'),
    }
    times = {}
    for name, fn in rows.items():
        for _ in range(3):
            fn()
        sync()
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            runs.append(time.perf_counter() - t0)
        times[name] = sorted(runs)[len(runs) // 2]
    print('\n| step | time (ms) |\n|---|---|')
    for name, t in times.items():
        print(f'| {name} | {t * 1e3:.2f} |')
    step = times['DeiT-Ti training step, AMP bf16']
    with_teacher = step + times['CaiT-S24 forward, AMP bf16']
    for name in list(rows)[3:]:
        print(f'{name}: {100 * times[name] / step:.1f}% of the AMP student '
              f'step, {100 * times[name] / with_teacher:.1f}% of student '
              f'step + teacher forward')


if __name__ == '__main__':
    main()
