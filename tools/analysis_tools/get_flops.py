#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Parameters and MACs of the model any config deploys.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W]
        [--batch-size N] [--cfg-options ...] [--by-module DEPTH]
        [--json OUT.json]

Works for mmpretrain, mmdet and mmseg configs. A distiller deploys its
student, which is what is counted; its teacher is reported apart, on the
same input. Three figures, side by side:

- ``MACs (mmengine)``: mmengine's ``FlopAnalyzer`` (fvcore's jit-trace
  counter: one multiply-add = one "flop"; convolutions, matrix products,
  norms, pooling and interpolation), with EVLab's handles for the ops it
  skips (:data:`EXTRA_HANDLES`: ``scaled_dot_product_attention``,
  ``baddbmm``, ``upsample_bicubic2d``, ``mean``, mmcv's RoIAlign). Ops it
  still does not count are listed under the table, element-wise ones
  (additions, activations, softmax, max pooling) apart.
- ``MACs (zoo)``: EVLab's model-zoo convention (``docs/model_zoo.md``,
  ``projects.common.complexity.count_macs``): convolutions and matrix
  products only, attention included, from torch's ``FlopCounterMode``.
- ``analytic``: where a project defines a closed form
  (a backbone with an ``analytic_macs((H, W))`` method, e.g. TNT), that
  formula next to the counted backbone MACs in the zoo convention.

The input is one image of the config's test pipeline size (its crop or
resize, else 224x224) unless ``--shape`` is given; the model runs its
``mode='tensor'`` path (no NMS, no post-processing). A two-stage detector's
RoI head runs on 1000 fixed proposals. Weights are random: counts depend
on shapes only.
"""
import argparse
import os.path as osp
import sys
from collections import Counter
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.analysis import (  # noqa: E402
    TensorForward,
    add_input_args,
    build,
    deployed_model_cfg,
    example_input,
    input_shape,
    shape_arg,
    write_json,
)
from projects.common.complexity import count_macs, count_params  # noqa
from projects.common.runtime import cli, load_config  # noqa: E402


def _shape(val: Any) -> List[int]:
    from mmengine.analysis.jit_handles import get_shape
    return get_shape(val)


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::scaled_dot_product_attention(q, k, v, ...)``: q (..., L, E),
    k (..., S, E), v (..., S, Ev) -> L*S*E for q k^T plus L*S*Ev for the
    weighted sum of v, per batch and head (softmax and scale not counted,
    as mmengine does not count them elsewhere)."""
    q, k, v = (_shape(inputs[i]) for i in range(3))
    *batch, length, e = q
    s, ev = k[-2], v[-1]
    return _prod(batch) * length * s * (e + ev)


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::baddbmm(input, b1, b2)``: b1 (B, N, K) @ b2 (B, K, M) ->
    B*N*K*M (the scaled addition of ``input`` is not counted, as for
    ``addmm``)."""
    b1, b2 = _shape(inputs[1]), _shape(inputs[2])
    return b1[0] * b1[1] * b1[2] * b2[2]


def bicubic_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::upsample_bicubic2d``: 16 taps per output element (mmengine
    counts bilinear as 4)."""
    return 16 * _prod(_shape(outputs[0]))


def mean_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::mean``: one addition per input element (a global average
    pool written as ``x.mean((2, 3))``, as GhostNet's SE does; mmengine
    counts ``adaptive_avg_pool2d`` the same way)."""
    return _prod(_shape(inputs[0]))


def roi_align_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """mmcv's ``RoIAlignFunction`` (a Python op in the trace): one
    bilinear sample (4 MACs) per output bin and channel, the lower bound
    (with ``sampling_ratio=0`` the number of samples per bin depends on the
    box sizes)."""
    return 4 * _prod(_shape(outputs[0]))


EXTRA_HANDLES = {
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
    'aten::baddbmm': baddbmm_flop_jit,
    'aten::upsample_bicubic2d': bicubic_flop_jit,
    'aten::mean': mean_flop_jit,
    'prim::PythonOp.RoIAlignFunction': roi_align_flop_jit,
}
#: ops that neither mmengine nor the zoo convention count (element-wise
#: arithmetic, activations, softmax, dropout, max pooling, padding);
#: listed apart from ops that would need a handle
ELEMENTWISE = {
    'add', 'add_', 'sub', 'sub_', 'mul', 'mul_', 'div', 'div_', 'neg',
    'relu', 'relu_', 'relu6', 'gelu', 'silu', 'silu_', 'sigmoid',
    'hardswish', 'hardswish_', 'hardsigmoid', 'hardtanh', 'tanh', 'exp',
    'sqrt', 'rsqrt', 'pow', 'log', 'log2', 'abs', 'clamp', 'clamp_',
    'minimum', 'maximum', 'softmax', 'log_softmax', 'dropout',
    'feature_dropout', 'max_pool2d', 'pad', 'constant_pad_nd', 'sum',
    'clone', 'rand', 'erf', 'floor_divide', 'remainder', 'lift_fresh',
}


def is_elementwise(op: str) -> bool:
    return op.startswith('aten::') and op[len('aten::'):] in ELEMENTWISE


def mmengine_count(module: nn.Module, x: torch.Tensor,
                   depth: int = 0) -> Dict[str, Any]:
    """mmengine's ``FlopAnalyzer`` with :data:`EXTRA_HANDLES`: total, per
    operator, per module (to ``depth`` levels below the model) and the
    operators it did not count."""
    from mmengine.analysis import FlopAnalyzer

    analyzer = FlopAnalyzer(module, (x, ))
    for name, handle in EXTRA_HANDLES.items():
        analyzer.set_op_handle(name, handle)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        total = analyzer.total()
        by_module = {
            name: n for name, n in analyzer.by_module().items()
            if name and name.count('.') < depth + 1 and n
        } if depth else {}
        return dict(total=total,
                    by_operator=dict(analyzer.by_operator()),
                    by_module=by_module,
                    unsupported=dict(Counter(analyzer.unsupported_ops())))


def analytic_backbone(model: nn.Module, x: torch.Tensor,
                      shape) -> Optional[Dict[str, int]]:
    """The closed form of ``model.backbone.analytic_macs(shape)`` beside
    the backbone's counted MACs (zoo convention), where one is defined."""
    backbone = getattr(model, 'backbone', None)
    if backbone is None or not hasattr(backbone, 'analytic_macs'):
        return None
    formula = int(backbone.analytic_macs(tuple(shape))) * x.shape[0]
    counted = count_macs(lambda: backbone(x))
    return dict(formula=formula, counted=counted)


def analyse(cfg, shape, batch_size: int = 1, depth: int = 0) -> dict:
    """Counts of the deployed model (and the teacher, for a distiller)."""
    model_cfg, scope, teacher = deployed_model_cfg(cfg)
    x = example_input((batch_size, 3, *shape))
    parts = [('model', model_cfg, scope)]
    if teacher is not None:
        parts = [('student', model_cfg, scope),
                 ('teacher', teacher[0], teacher[1])]
    result = dict(config=cfg.filename, input=list(x.shape), parts={})
    for name, part_cfg, part_scope in parts:
        torch.manual_seed(0)
        model = build(part_cfg, part_scope, 'cpu')
        fwd = TensorForward(model).eval()
        with torch.no_grad():
            zoo = count_macs(lambda fwd=fwd: fwd(x))
        row = dict(type=part_cfg.get('type'), scope=part_scope,
                   params=count_params(model), macs_zoo=zoo,
                   **mmengine_count(fwd, x, depth))
        row['macs_mmengine'] = row.pop('total')
        with torch.no_grad():
            row['analytic'] = analytic_backbone(model, x, shape)
        result['parts'][name] = row
    return result


def _g(n: int) -> str:
    return f'{n / 1e9:.3f} G'


def report(result: dict) -> str:
    lines = [f'config: {result["config"]}',
             f'input:  {tuple(result["input"])} (N, C, H, W)', '',
             '| part | model | params | MACs (mmengine) | MACs (zoo) |',
             '|---|---|---|---|---|']
    for name, row in result['parts'].items():
        label = name if name != 'teacher' else 'teacher (not deployed)'
        lines.append(f'| {label} | {row["type"]} ({row["scope"]}) | '
                     f'{row["params"] / 1e6:.3f} M | '
                     f'{_g(row["macs_mmengine"])} | {_g(row["macs_zoo"])} |')
    for name, row in result['parts'].items():
        if row['analytic']:
            a = row['analytic']
            lines.append(f'\n{name} backbone, analytic formula: '
                         f'{_g(a["formula"])} MACs; counted (zoo '
                         f'convention): {_g(a["counted"])}')
        if row['by_module']:
            lines.append(f'\n{name}, MACs (mmengine) by module:')
            for mod, n in row['by_module'].items():
                lines.append(f'  {mod:40s} {_g(n)}')
        other = {op: n for op, n in row['unsupported'].items()
                 if not is_elementwise(op)}
        if other:
            ops = ', '.join(f'{op} x{n}' for op, n in sorted(other.items()))
            lines.append(f'\n{name}: ops not counted (no handle): {ops}')
        skipped = sorted(op for op in row['unsupported']
                         if is_elementwise(op))
        if skipped:
            lines.append(f'{name}: element-wise ops not counted (by '
                         f'convention): {", ".join(skipped)}')
    lines.append('\nmmengine: its FlopAnalyzer plus EVLab handles '
                 f'({", ".join(EXTRA_HANDLES)}); norms, pooling and '
                 'interpolation included. zoo: convolutions and matrix '
                 'products only (docs/model_zoo.md).')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--by-module', type=int, default=0, metavar='DEPTH',
                        help='also list MACs per module to this depth')
    add_input_args(parser)
    args = parser.parse_args(argv)
    args.shape = shape_arg(parser, args)
    return args


@cli
def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.config, args.cfg_options)
    result = analyse(cfg, args.shape or input_shape(cfg), args.batch_size,
                     args.by_module)
    print(report(result))
    write_json(result, args.json)


if __name__ == '__main__':
    main()
