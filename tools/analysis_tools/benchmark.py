#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Inference latency and throughput of the model any config deploys.

    python tools/analysis_tools/benchmark.py CONFIG [CHECKPOINT]
        [--device cpu|cuda] [--threads 2] [--batch-size 32]
        [--repeats 30] [--warmup 5] [--shape H W]
        [--backend pytorch|onnxruntime] [--json OUT.json]

Batch 1 and ``--batch-size`` are measured in one process, interleaved
(each repeat runs both in turn, so a drift of the machine hits both):
median latency, quartiles and spread, and images/s at the median.
``--threads`` fixes torch's (and onnxruntime's) intra-op threads. The
model runs its ``mode='tensor'`` forward (no post-processing) under
``no_grad`` in eval mode; on CUDA each call is synchronised.

``--backend onnxruntime`` exports the model to ONNX first
(``tools/deployment/pytorch2onnx.py``; ``--onnx FILE`` to use an existing
export) and times ``InferenceSession.run`` on the same inputs.

Timings need a quiet machine: nothing else running, helpers' jobs
included. Without CHECKPOINT the weights are random, which does not change
the time of a dense model.
"""
import argparse
import os.path as osp
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools', 'deployment'))

from projects.common.analysis import (  # noqa: E402
    TensorForward,
    add_input_args,
    build_deployed,
    example_input,
    input_shape,
    shape_arg,
    write_json,
)
from projects.common.complexity import (  # noqa: E402
    latency_samples,
    summarize,
)
from projects.common.runtime import cli, load_config  # noqa: E402

BACKENDS = ('pytorch', 'onnxruntime')


def runners(model, backend: str, batches: Sequence[int], shape,
            device: str = 'cpu', threads: int = 1,
            onnx_path: Optional[str] = None,
            tmp_dir: Optional[str] = None) -> Dict[int, Callable[[], Any]]:
    """One zero-argument function per batch size that runs ``model`` on a
    seeded input of that batch with ``backend``."""
    inputs = {b: example_input((b, 3, *shape)) for b in batches}
    if backend == 'pytorch':
        module = TensorForward(model.to(device)).eval()
        inputs = {b: x.to(device) for b, x in inputs.items()}

        def make(x):
            def run():
                with torch.no_grad():
                    return module(x)
            return run
        return {b: make(x) for b, x in inputs.items()}
    import pytorch2onnx
    if onnx_path is None:
        onnx_path = osp.join(tmp_dir or tempfile.mkdtemp(), 'model.onnx')
        pytorch2onnx.export(model.cpu(), (1, 3, *shape), onnx_path)
    sess = pytorch2onnx.ort_session(onnx_path, threads, device)
    name = sess.get_inputs()[0].name
    arrays = {b: x.numpy() for b, x in inputs.items()}
    return {b: (lambda a=a: sess.run(None, {name: a}))
            for b, a in arrays.items()}


def measure(fns: Dict[Any, Callable[[], Any]], repeats: int, warmup: int,
            device: str = 'cpu') -> Dict[Any, Dict[str, float]]:
    """Latency statistics (seconds) of each function, interleaved."""
    sync = torch.cuda.synchronize if device.startswith('cuda') else None
    samples = latency_samples(fns, repeats, warmup, sync)
    return {key: summarize(ts) for key, ts in samples.items()}


def benchmark(cfg, checkpoint: Optional[str] = None,
              backend: str = 'pytorch', device: str = 'cpu',
              threads: int = 1, batch_size: int = 1, repeats: int = 30,
              warmup: int = 5, shape: Optional[Sequence[int]] = None,
              onnx_path: Optional[str] = None) -> Dict[str, Any]:
    """Latency of the deployed model of ``cfg`` at batch 1 and
    ``batch_size``."""
    torch.set_num_threads(threads)
    hw = tuple(shape) if shape else input_shape(cfg)
    torch.manual_seed(0)
    model = build_deployed(cfg, 'cpu', checkpoint)
    batches = sorted({1, batch_size})
    with tempfile.TemporaryDirectory() as tmp:
        fns = runners(model, backend, batches, hw, device, threads,
                      onnx_path, tmp)
        stats = measure(fns, repeats, warmup, device)
    rows = []
    for b in batches:
        s = stats[b]
        rows.append(dict(batch=b, **{k: v for k, v in s.items()},
                         images_per_s=b / s['median']))
    return dict(config=cfg.filename, backend=backend, device=device,
                threads=threads, input=[3, *hw], repeats=repeats,
                warmup=warmup, torch=torch.__version__, rows=rows)


def report(result: Dict[str, Any]) -> str:
    lines = [f'config:  {result["config"]}',
             f'backend: {result["backend"]} on {result["device"]}, '
             f'{result["threads"]} threads, input {tuple(result["input"])}'
             f', median of {result["repeats"]} interleaved runs after '
             f'{result["warmup"]} warm-up (torch {result["torch"]})', '',
             '| batch | median (ms) | p25-p75 (ms) | std (ms) | images/s |',
             '|---|---|---|---|---|']
    for r in result['rows']:
        lines.append(f'| {r["batch"]} | {r["median"] * 1e3:.2f} | '
                     f'{r["p25"] * 1e3:.2f}-{r["p75"] * 1e3:.2f} | '
                     f'{r["std"] * 1e3:.2f} | {r["images_per_s"]:.1f} |')
    return '\n'.join(lines)


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--backend', choices=BACKENDS, default='pytorch')
    parser.add_argument('--onnx', help='an exported model for '
                        '--backend onnxruntime (default: export one)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--batch-size', type=int, default=1,
                        help='measured beside batch 1')
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    add_input_args(parser)
    args = parser.parse_args(argv)
    args.shape = shape_arg(parser, args)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.repeats < 2:
        parser.error('--repeats must be at least 2 (a spread needs two)')
    return args


@cli
def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    result = benchmark(cfg, args.checkpoint, args.backend, args.device,
                       args.threads, args.batch_size, args.repeats,
                       args.warmup, args.shape, args.onnx)
    print(report(result))
    write_json(result, args.json)


if __name__ == '__main__':
    main()
