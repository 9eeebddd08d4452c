#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Export the model a config deploys to ONNX, and check it with
onnxruntime.

    python tools/deployment/pytorch2onnx.py CONFIG [CHECKPOINT] \\
        --out model.onnx [--shape H W] [--opset 17] [--no-verify]

Made for the classification backbones and classifiers (GhostNet, TNT,
DeiT/ViT, mmpretrain's models): the graph is the model's ``mode='tensor'``
forward, image batch (N, 3, H, W) in, logits (N, num_classes) out, with a
dynamic batch axis. A distiller exports its student; a distiller's
checkpoint is reduced to the student's weights. Without CHECKPOINT the
weights are random (enough to measure latency).

After the export the file is run by onnxruntime on a seeded input and its
outputs are compared with PyTorch's (``--no-verify`` skips it); the
largest absolute difference is printed and more than ``--atol`` (1e-4) is
an error. A model that cannot be exported gets an error naming the op that
failed.
"""
import argparse
import os
import os.path as osp
import re
import sys
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.analysis import (  # noqa: E402
    AnalysisError,
    TensorForward,
    add_input_args,
    build_deployed,
    example_input,
    input_shape,
    shape_arg,
)
from projects.common.runtime import cli, load_config  # noqa: E402

OPSET = 17
_OP_PATTERNS = (
    # TorchScript exporter: UnsupportedOperatorError / SymbolicValueError
    r"operator '?([\w:.]+)'? to ONNX",
    r"Unsupported: ONNX export of (?:operator )?([\w:.]+)",
    # a Python autograd.Function without a symbolic
    r"(\w+Function)\b",
    r"(aten::\w+)",
)


def failed_op(exc: BaseException) -> str:
    """The name of the op an export error is about, or the error's first
    line when none can be found."""
    text = f'{type(exc).__name__}: {exc}'
    for pattern in _OP_PATTERNS:
        match = re.search(pattern, text)
        if match:
            return match.group(1)
    return text.strip().splitlines()[0][:200]


def export(model: nn.Module, shape: Sequence[int], out: str,
           opset: int = OPSET, what: str = 'the model') -> None:
    """Export ``model``'s ``mode='tensor'`` forward for inputs of
    ``shape`` (N, C, H, W) to ``out``, with a dynamic batch axis.

    Raises:
        AnalysisError: the export failed; the message names the op.
    """
    module = TensorForward(model).eval()
    x = example_input(shape)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = f'{out}.tmp'
    try:
        with torch.no_grad():
            torch.onnx.export(
                module, (x, ), tmp, opset_version=opset, dynamo=False,
                input_names=['input'], output_names=['output'],
                dynamic_axes={'input': {0: 'batch'},
                              'output': {0: 'batch'}})
    except Exception as e:  # noqa: BLE001 (any exporter failure)
        if osp.exists(tmp):
            os.remove(tmp)
        raise AnalysisError(
            f'{what} cannot be exported to ONNX (opset {opset}): the op '
            f'{failed_op(e)!r} failed ({type(e).__name__}: '
            f'{str(e).strip().splitlines()[0][:300]})') from e
    os.replace(tmp, out)  # a failed export never leaves a half file


def ort_session(path: str, threads: int = 1, device: str = 'cpu'):
    """An onnxruntime session for ``path`` with ``threads`` intra-op
    threads (and one inter-op thread)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # no busy-waiting threads left behind after a run: they would steal
    # the cores from whatever runs next (torch, in a side-by-side timing)
    opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    opts.graph_optimization_level = \
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ['CPUExecutionProvider']
    if device.startswith('cuda'):
        providers.insert(0, 'CUDAExecutionProvider')
    return ort.InferenceSession(path, sess_options=opts,
                                providers=providers)


def _flat(out: Any) -> list:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flat(o)]
    raise AnalysisError(f'the model returns a {type(out).__name__}; only '
                        f'tensors, tuples and lists can be compared')


def verify(model: nn.Module, path: str, shape: Sequence[int],
           seed: int = 1) -> float:
    """Largest absolute difference between PyTorch's outputs and
    onnxruntime's for a seeded input of ``shape``."""
    x = example_input(shape, seed=seed)
    with torch.no_grad():
        ref = _flat(TensorForward(model).eval()(x))
    sess = ort_session(path)
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    if len(got) != len(ref):
        raise AnalysisError(f'{path}: onnxruntime gives {len(got)} outputs, '
                            f'PyTorch {len(ref)}')
    return max(float(np.abs(g - r.numpy()).max()) for g, r in
               zip(got, ref))


def export_config(config: str, out: str, checkpoint: Optional[str] = None,
                  shape: Optional[Tuple[int, int]] = None,
                  opset: int = OPSET, cfg_options: Optional[Dict] = None,
                  check: bool = True, atol: float = 1e-4) -> Dict[str, Any]:
    """Export the deployed model of ``config`` to ``out``; with ``check``,
    compare onnxruntime with PyTorch (error above ``atol``)."""
    cfg = load_config(config, cfg_options)
    hw = tuple(shape) if shape else input_shape(cfg)
    torch.manual_seed(0)
    model = build_deployed(cfg, 'cpu', checkpoint)
    full = (1, 3, *hw)
    export(model, full, out, opset, what=f'the model of {config!r}')
    result = dict(config=config, out=out, input=list(full), opset=opset)
    if check:
        # batch 2 as well: the batch axis is dynamic
        diff = max(verify(model, out, full),
                   verify(model, out, (2, 3, *hw), seed=2))
        result['max_abs_diff'] = diff
        if diff > atol:
            raise AnalysisError(
                f'{out}: onnxruntime differs from PyTorch by {diff:.3g} '
                f'(more than --atol {atol:g}) for {config!r}')
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument('--opset', type=int, default=OPSET)
    parser.add_argument('--atol', type=float, default=1e-4)
    parser.add_argument('--no-verify', action='store_true')
    add_input_args(parser, json_out=False)
    args = parser.parse_args(argv)
    args.shape = shape_arg(parser, args)
    return args


@cli
def main(argv=None) -> None:
    args = parse_args(argv)
    result = export_config(args.config, args.out, args.checkpoint, args.shape,
                           args.opset, args.cfg_options,
                           check=not args.no_verify, atol=args.atol)
    print(f'wrote {result["out"]} (input {tuple(result["input"])}, '
          f'dynamic batch, opset {result["opset"]})')
    if 'max_abs_diff' in result:
        print(f'onnxruntime vs PyTorch: max |diff| = '
              f'{result["max_abs_diff"]:.2e} (batch 1 and 2)')


if __name__ == '__main__':
    main()
