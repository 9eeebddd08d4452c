#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Do fewer MACs buy speed once deployed? CPU latency at batch 1 of
GhostNet-1.0x against mmpretrain's MobileNetV3-Large and of TNT-S against
DeiT-S, in eager PyTorch and in onnxruntime, side by side in one process.

    python tools/analysis_tools/deployment_benchmark.py --threads 2 \\
        --out docs/figures/deployment_latency.json

Each model is built from its config (random weights: the time of these
dense models does not depend on them), exported to ONNX with
``tools/deployment/pytorch2onnx.py`` (opset 17, checked against PyTorch)
and run by onnxruntime's CPU provider (all graph optimisations). All eight
(model, backend) pairs are timed interleaved within each repeat
(``projects.common.complexity.latency_samples``), so a drift of the
machine hits them alike; torch and onnxruntime get the same intra-op
thread count, and neither leaves threads spinning between calls
(``OMP_WAIT_POLICY=PASSIVE``, onnxruntime without spinning), which would
steal the cores from the other. MACs are the zoo convention
(``get_flops.py``'s "zoo" column). Run it on a quiet machine;
``docs/deployment.md`` holds the table this prints.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile

# OpenMP threads that sleep when idle (read when torch loads OpenMP):
# spinning torch threads would steal the cores from onnxruntime's calls
# that run between torch's in the interleaved timing, and vice versa
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import torch  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
for path in (ROOT, osp.join(ROOT, 'tools', 'analysis_tools'),
             osp.join(ROOT, 'tools', 'deployment')):
    if path not in sys.path:
        sys.path.insert(0, path)

import pytorch2onnx  # noqa: E402
from benchmark import runners  # noqa: E402

from projects.common.analysis import (  # noqa: E402
    TensorForward,
    build_deployed,
    example_input,
)
from projects.common.complexity import (  # noqa: E402
    count_macs,
    count_params,
    latency_samples,
    summarize,
)
from projects.common.runtime import load_config  # noqa: E402

MODELS = {
    'GhostNet-1.0x': 'configs/ghostnet/ghostnet-1.0x_8xb128_in1k.py',
    'MobileNetV3-L': 'mmpretrain::mobilenet_v3/'
                     'mobilenet-v3-large_8xb128_in1k.py',
    'TNT-S': 'configs/tnt/tnt-s-p16_8xb128_in1k.py',
    'DeiT-S': 'mmpretrain::deit/deit-small_4xb256_in1k.py',
}
BACKENDS = ('pytorch', 'onnxruntime')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--out', help='write the figures here (JSON)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = (224, 224)
    x = example_input((1, 3, *shape))
    info, fns = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in MODELS.items():
            path = config if '::' in config else osp.join(ROOT, config)
            torch.manual_seed(0)
            model = build_deployed(load_config(path))
            fwd = TensorForward(model).eval()
            with torch.no_grad():
                macs = count_macs(lambda fwd=fwd: fwd(x))
            onnx_file = osp.join(tmp, f'{name}.onnx')
            pytorch2onnx.export(model, (1, 3, *shape), onnx_file,
                                what=name)
            diff = pytorch2onnx.verify(model, onnx_file, (1, 3, *shape))
            info[name] = dict(config=config, params=count_params(model),
                              macs=macs, onnx_max_abs_diff=diff)
            print(f'{name}: {macs / 1e6:.0f} M MACs, exported, onnxruntime '
                  f'vs PyTorch max |diff| {diff:.1e}', flush=True)
            for backend in BACKENDS:
                fns[(name, backend)] = runners(
                    model, backend, [1], shape, 'cpu', args.threads,
                    onnx_file if backend == 'onnxruntime' else None)[1]
        samples = latency_samples(fns, args.repeats, args.warmup)
    stats = {key: summarize(ts) for key, ts in samples.items()}
    print(f'\nCPU latency at batch 1, 224x224, {args.threads} threads, '
          f'median (p25-p75) of {args.repeats} interleaved runs; torch '
          f'{torch.__version__}, onnxruntime '
          f'{__import__("onnxruntime").__version__}\n')
    print('| model | params | MACs | PyTorch eager (ms) | onnxruntime (ms) '
          '| eager / ort |')
    print('|---|---|---|---|---|---|')
    rows = []
    for name in MODELS:
        pt, ort = stats[(name, 'pytorch')], stats[(name, 'onnxruntime')]
        rows.append(dict(model=name, **info[name], pytorch=pt,
                         onnxruntime=ort))
        print(f'| {name} | {info[name]["params"] / 1e6:.2f} M | '
              f'{info[name]["macs"] / 1e6:.0f} M | {pt["median"] * 1e3:.1f} '
              f'({pt["p25"] * 1e3:.1f}-{pt["p75"] * 1e3:.1f}) | '
              f'{ort["median"] * 1e3:.1f} ({ort["p25"] * 1e3:.1f}-'
              f'{ort["p75"] * 1e3:.1f}) | '
              f'{pt["median"] / ort["median"]:.2f} |')
    for a, b in (('GhostNet-1.0x', 'MobileNetV3-L'), ('TNT-S', 'DeiT-S')):
        ra = {r['model']: r for r in rows}
        for backend in BACKENDS:
            t = ra[a][backend]['median'] / ra[b][backend]['median']
            print(f'{a} / {b}, {backend}: latency x{t:.2f} for '
                  f'x{ra[a]["macs"] / ra[b]["macs"]:.2f} the MACs')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(threads=args.threads, repeats=args.repeats,
                           torch=torch.__version__, rows=rows), f, indent=1)
        print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()
