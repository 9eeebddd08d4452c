# Copyright (c) EVLab contributors.
"""The op vocabulary of EVLab's mobile search spaces and its cost formulas.

The names:

- ``ir_k{k}_e{e}[_d{d}][_se]``: an inverted residual (MobileNetV2/MnasNet
  style: 1x1 expansion to ``e`` times the input width, ``k x k`` depthwise
  with dilation ``d`` (default 1), 1x1 projection), with an optional SE
  (squeeze-excitation after the depthwise conv). Hit-Detector's backbone
  spells the dilation ``_r{d}``; it is read as ``_d{d}`` and the parsed
  name is always written with ``_d``.
- ``sd_k{k}_d{d}``: a separable conv (``k x k`` depthwise with dilation
  ``d``, then a 1x1 conv), Hit-Detector's neck.
- ``conv_1x1``: a 1x1 conv with a bias, then BN.
- ``skip``: the block is left out (only where it has an identity
  shortcut).

HourNAS uses ``ir_k{3,5}_e{1,3,6}_se``; Hit-Detector all but ``_se`` and
``skip``. Both parse them here and share the formulas.

The formulas count the multiply-accumulates of every convolution and
linear layer, the convention of the efficient-CNN papers' FLOPs columns
(BN, activations, the SE gate's multiply and the residual add are not
counted); :func:`projects.common.complexity.count_conv_linear_macs` counts
the same on a built module, which the tests compare.
"""
import re
from dataclasses import dataclass
from typing import Optional

_IR = re.compile(r'^ir_k(\d+)_e(\d+)(?:_[dr](\d+))?(_se)?$')
_SD = re.compile(r'^sd_k(\d+)_d(\d+)$')


@dataclass(frozen=True)
class OpSpec:
    """A parsed op name.

    Attributes:
        name (str): The name it was parsed from.
        kind (str): ``'ir'``, ``'sd'``, ``'conv_1x1'`` or ``'skip'``.
        kernel (int): Depthwise kernel size (``ir`` and ``sd``; 1 for
            ``conv_1x1``).
        expand (int): Expansion ratio ``e`` (``ir`` only).
        se (bool): Whether the op has squeeze-excitation.
        dilation (int): Dilation of the depthwise conv. Defaults to 1.
    """
    name: str
    kind: str
    kernel: int = 0
    expand: int = 0
    se: bool = False
    dilation: int = 1

    @property
    def padding(self) -> int:
        """``(k - 1) d / 2``: the output is ``ceil(H / stride)``."""
        return (self.kernel - 1) * self.dilation // 2


def parse_op(name: str, default_se: bool = False) -> OpSpec:
    """Parse an op name: ``'ir_k5_e6'``, ``'ir_k3_e1_se'``,
    ``'ir_k3_e3_d2'`` (or ``'ir_k3_e3_r2'``), ``'sd_k5_d3'``,
    ``'conv_1x1'`` or ``'skip'``. The parsed ``name`` is the canonical
    spelling (``_d`` for the dilation, no ``_d1``).

    Args:
        name (str): The op name.
        default_se (bool): Whether an ``ir`` name without the ``_se``
            suffix has SE anyway (HourNAS's space puts SE in every op and
            its genotypes omit the suffix). Defaults to False.

    Raises:
        ValueError: The name is none of the above, or has an even kernel,
            a zero expansion or a zero dilation.
    """
    if name in ('skip', 'conv_1x1'):
        return OpSpec(name, name, 1 if name == 'conv_1x1' else 0)
    m_ir, m_sd = _IR.match(name), _SD.match(name)
    if m_ir is None and m_sd is None:
        raise ValueError(
            f'unknown op name {name!r}: expected ir_k<kernel>_e<expand> '
            f"(optionally with _d<dilation> and _se), sd_k<kernel>_"
            f"d<dilation>, 'conv_1x1' or 'skip', e.g. 'ir_k3_e6'")
    if m_sd is not None:
        kernel, dilation, expand, se = int(m_sd.group(1)), \
            int(m_sd.group(2)), 1, False
    else:
        kernel, expand = int(m_ir.group(1)), int(m_ir.group(2))
        dilation = int(m_ir.group(3) or 1)
        se = bool(m_ir.group(4)) or default_se
    if kernel % 2 == 0 or expand < 1 or dilation < 1:
        raise ValueError(f'op {name!r}: the kernel must be odd, the '
                         f'expansion and the dilation at least 1')
    if m_sd is not None:
        return OpSpec(f'sd_k{kernel}_d{dilation}', 'sd', kernel, 1, False,
                      dilation)
    canon = f'ir_k{kernel}_e{expand}' + \
        (f'_d{dilation}' if dilation > 1 else '') + \
        ('_se' if m_ir.group(4) else '')
    return OpSpec(canon, 'ir', kernel, expand, se, dilation)


def _out_size(size: int, stride: int) -> int:
    """``ceil(size / stride)``: the output of a conv padded by
    ``(k - 1) d / 2``."""
    return (size - 1) // stride + 1


def se_channels(c_in: int, mid: int, se_base: str = 'in',
                ratio: float = 0.25) -> int:
    """Squeeze width of an SE module: ``max(1, int(base * ratio))`` with
    ``base`` the block's input width (``se_base='in'``, EfficientNet's
    convention, which gives HourNAS-F's 5.27 M parameters) or its expanded
    width (``'mid'``, the MindSpore port's ``se_reduce_mid=True``)."""
    if se_base not in ('in', 'mid'):
        raise ValueError(f"se_base must be 'in' or 'mid', got {se_base!r}")
    return max(1, int((c_in if se_base == 'in' else mid) * ratio))


def _mid(op: OpSpec, c_in: int, expand_when_e1: bool) -> Optional[int]:
    """Expanded width, or None when the op has no expansion conv."""
    if op.expand == 1 and not expand_when_e1:
        return None
    return c_in * op.expand


def ir_macs(op: OpSpec, c_in: int, c_out: int, h_in: int, stride: int,
            se_base: str = 'in', expand_when_e1: bool = True,
            w_in: Optional[int] = None) -> int:
    """Multiply-accumulates of one op on a ``h_in x w_in`` input.

    ``H_in^2 c_in m + H_out^2 m k^2 + 2 m r + H_out^2 m c_out`` with
    ``m = c_in e`` and ``r`` the SE width (hournas spec 2.2); the first term
    is absent without an expansion conv, the third without SE. ``skip``
    costs nothing.
    """
    if op.kind != 'ir':
        return op_macs(op, c_in, c_out, h_in, stride, w_in=w_in)
    w_in = h_in if w_in is None else w_in
    h_out, w_out = _out_size(h_in, stride), _out_size(w_in, stride)
    mid = _mid(op, c_in, expand_when_e1)
    width = c_in if mid is None else mid
    macs = 0 if mid is None else h_in * w_in * c_in * mid
    macs += h_out * w_out * width * op.kernel ** 2
    if op.se:
        macs += 2 * width * se_channels(c_in, width, se_base)
    return macs + h_out * w_out * width * c_out


def ir_params(op: OpSpec, c_in: int, c_out: int, se_base: str = 'in',
              expand_when_e1: bool = True) -> int:
    """Parameters of one op: bias-free convs with BN (2 per channel), SE
    convs with biases."""
    if op.kind != 'ir':
        return op_params(op, c_in, c_out)
    mid = _mid(op, c_in, expand_when_e1)
    width = c_in if mid is None else mid
    params = 0 if mid is None else c_in * mid + 2 * mid
    params += width * op.kernel ** 2 + 2 * width
    if op.se:
        r = se_channels(c_in, width, se_base)
        params += width * r + r + r * width + width
    return params + width * c_out + 2 * c_out


def op_macs(op: OpSpec, c_in: int, c_out: int, h_in: int, stride: int = 1,
            w_in: Optional[int] = None, **ir_kwargs) -> int:
    """Multiply-accumulates of any op on a ``h_in x w_in`` input, with
    ``H' = ceil(H / s)``:

    - ``ir``: :func:`ir_macs`;
    - ``sd``: ``H' W' (k^2 c_in + c_in c_out)``;
    - ``conv_1x1``: ``H' W' c_in c_out``;
    - ``skip``: 0.
    """
    if op.kind == 'ir':
        return ir_macs(op, c_in, c_out, h_in, stride, w_in=w_in,
                       **ir_kwargs)
    w_in = h_in if w_in is None else w_in
    area = _out_size(h_in, stride) * _out_size(w_in, stride)
    if op.kind == 'sd':
        return area * (op.kernel ** 2 * c_in + c_in * c_out)
    if op.kind == 'conv_1x1':
        return area * c_in * c_out
    return 0


def op_params(op: OpSpec, c_in: int, c_out: int, **ir_kwargs) -> int:
    """Parameters of any op (BN affine parameters counted, running
    statistics not): ``sd`` is ``k^2 c_in + 2 c_in + c_in c_out + 2 c_out``,
    ``conv_1x1`` ``c_in c_out + c_out + 2 c_out`` (with its bias)."""
    if op.kind == 'ir':
        return ir_params(op, c_in, c_out, **ir_kwargs)
    if op.kind == 'sd':
        return op.kernel ** 2 * c_in + 2 * c_in + c_in * c_out + 2 * c_out
    if op.kind == 'conv_1x1':
        return c_in * c_out + 3 * c_out
    return 0
