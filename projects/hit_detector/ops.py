# Copyright (c) EVLab contributors.
"""Hit-Detector's operators (spec 2.1), as in the released code.

Every op maps ``(C_in, H, W)`` to ``(C_out, ceil(H / s), ceil(W / s))``.
The convolutions are bias-free with a norm layer from ``norm_cfg``
(SyncBN in the COCO config, built through mmcv so a non-distributed run
reverts it to BN), padded by ``(k - 1) d / 2`` and initialised
Kaiming-normal (fan_out, ReLU) with zero biases:

- ``ir_k{k}_e{e}[_d{d}]`` (:class:`InvertedResidual`): 1x1 to ``e C_in``
  + BN + ReLU, ``k x k`` depthwise (dilation ``d``, stride ``s``) + BN +
  ReLU, 1x1 to ``C_out`` + BN; the identity is added iff ``C_in == C_out``
  and ``s == 1``; no SE. The released backbone spells the dilation
  ``_r{d}``: :func:`parse_op_name` reads both.
- ``sd_k{k}_d{d}`` (:class:`SepConv`): ``k x k`` depthwise + BN + ReLU,
  1x1 to ``C_out`` + BN, the same shortcut rule.
- ``conv_1x1`` (:class:`Conv1x1BN`): a 1x1 conv with a bias, then BN, no
  activation.

The module and parameter names follow the released code (``conv1.conv``,
``conv1.bn``, ...), so its checkpoints map key for key
(``tools/model_converters/hitdet_to_ours.py``). The names, MACs and
parameter formulas are the NAS core's (:mod:`projects.common.nas.ops`).
"""
from typing import Optional

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from torch import Tensor

from ..common.nas.ops import OpSpec, op_macs, op_params, parse_op

__all__ = [
    'ConvBNAct', 'InvertedResidual', 'SepConv', 'Conv1x1BN', 'parse_op_name',
    'build_op', 'op_macs', 'op_params', 'NECK_OPS', 'HEAD_OPS'
]

#: the neck's op table: the released genes index it (spec 2.2)
NECK_OPS = ('conv_1x1', 'ir_k3_e6_d3', 'ir_k5_e6', 'ir_k5_e6_d3', 'sd_k3_d1',
            'sd_k3_d3', 'sd_k5_d2', 'sd_k5_d3')
#: the RoI head's op table in the released code
HEAD_OPS = ('ir_k3_e3', 'ir_k3_e6', 'ir_k3_e6_d2', 'ir_k5_e3', 'ir_k5_e6',
            'ir_k7_e6')


def parse_op_name(name: str) -> OpSpec:
    """Parse a Hit-Detector op name (``_r{d}`` or ``_d{d}`` for the
    dilation; the result's ``name`` is spelled with ``_d``).

    Raises:
        ValueError: An unknown name, ``skip`` (the depth is fixed) or an
            op with SE (Hit-Detector's ops have none).
    """
    spec = parse_op(name)
    if spec.kind == 'skip' or spec.se:
        raise ValueError(f'op {name!r} is not a Hit-Detector op: '
                         f'ir_k<k>_e<e>[_d<d>], sd_k<k>_d<d> or conv_1x1 '
                         f'(no skip, no SE)')
    return spec


class ConvBNAct(nn.Module):
    """conv -> norm -> ReLU (or no activation): the released
    ``ConvBNReLU`` (attributes ``conv`` and ``bn``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1,
                 stride: int = 1, dilation: int = 1, groups: int = 1,
                 bias: bool = False, act: bool = True,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride,
                              padding=(kernel - 1) * dilation // 2,
                              dilation=dilation, groups=groups, bias=bias)
        nn.init.kaiming_normal_(self.conv.weight, mode='fan_out',
                                nonlinearity='relu')
        if bias:
            nn.init.zeros_(self.conv.bias)
        self.bn = build_norm_layer(norm_cfg or dict(type='BN'), c_out)[1]
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class _Op(nn.Module):
    """Shared by the searchable ops: the spec, widths, stride and the
    identity shortcut rule; ``analytic_macs`` for the NAS core's cost
    table."""

    def __init__(self, spec: OpSpec, c_in: int, c_out: int,
                 stride: int) -> None:
        super().__init__()
        self.spec, self.c_in, self.c_out, self.stride = spec, c_in, c_out, \
            stride
        self.use_shortcut = c_in == c_out and stride == 1

    def analytic_macs(self, input_shape) -> int:
        """MACs on an input of shape ``(N, C, H, W)``."""
        n, _, h, w = input_shape
        return n * op_macs(self.spec, self.c_in, self.c_out, h, self.stride,
                           w_in=w)

    def analytic_params(self) -> int:
        return op_params(self.spec, self.c_in, self.c_out)

    def extra_repr(self) -> str:
        return (f'{self.spec.name}, {self.c_in} -> {self.c_out}, '
                f'stride={self.stride}')


class InvertedResidual(_Op):
    """``ir_k{k}_e{e}[_d{d}]`` (see the module docstring)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1,
                 kernel: int = 3, expand: int = 6, dilation: int = 1,
                 norm_cfg: Optional[dict] = None) -> None:
        spec = parse_op_name(f'ir_k{kernel}_e{expand}_d{dilation}')
        super().__init__(spec, c_in, c_out, stride)
        mid = c_in * expand
        self.conv1 = ConvBNAct(c_in, mid, 1, norm_cfg=norm_cfg)
        self.conv2 = ConvBNAct(mid, mid, kernel, stride, dilation,
                               groups=mid, norm_cfg=norm_cfg)
        self.conv3 = ConvBNAct(mid, c_out, 1, act=False, norm_cfg=norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        return out + x if self.use_shortcut else out


class SepConv(_Op):
    """``sd_k{k}_d{d}`` (see the module docstring)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1,
                 kernel: int = 3, dilation: int = 1,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__(parse_op_name(f'sd_k{kernel}_d{dilation}'), c_in,
                         c_out, stride)
        self.conv1 = ConvBNAct(c_in, c_in, kernel, stride, dilation,
                               groups=c_in, norm_cfg=norm_cfg)
        self.conv2 = ConvBNAct(c_in, c_out, 1, act=False, norm_cfg=norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.use_shortcut else out


class Conv1x1BN(_Op):
    """``conv_1x1``: a 1x1 conv with a bias, then BN (no shortcut, no
    activation), as the released ``ConvBlock`` (``conv.conv``,
    ``conv.bn``)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__(parse_op_name('conv_1x1'), c_in, c_out, stride)
        self.use_shortcut = False
        self.conv = ConvBNAct(c_in, c_out, 1, stride, bias=True, act=False,
                              norm_cfg=norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def build_op(name: str, c_in: int, c_out: int, stride: int = 1,
             norm_cfg: Optional[dict] = None) -> _Op:
    """Build the op ``name`` (any spelling :func:`parse_op_name` reads)."""
    spec = parse_op_name(name)
    if spec.kind == 'ir':
        return InvertedResidual(c_in, c_out, stride, spec.kernel,
                                spec.expand, spec.dilation, norm_cfg)
    if spec.kind == 'sd':
        return SepConv(c_in, c_out, stride, spec.kernel, spec.dilation,
                       norm_cfg)
    return Conv1x1BN(c_in, c_out, stride, norm_cfg)
