# Copyright (c) EVLab contributors.
"""The op vocabulary of EVLab's mobile search spaces and its cost formulas.

An op is named ``ir_k{k}_e{e}`` (inverted residual, MobileNetV2/MnasNet
style: 1x1 expansion to ``e`` times the input width, ``k x k`` depthwise,
1x1 projection), with an optional ``_se`` suffix (squeeze-excitation after
the depthwise conv), or ``skip`` (the block is left out; only allowed where
the block has an identity shortcut). HourNAS uses ``ir_k{3,5}_e{1,3,6}_se``
and Hit-Detector's backbone the same names without SE, so both parse them
here and share one MACs formula.

The formulas count the multiply-accumulates of every convolution and
linear layer, the convention of the efficient-CNN papers' FLOPs columns
(BN, activations, the SE gate's multiply and the residual add are not
counted); :func:`projects.common.complexity.count_conv_linear_macs` counts
the same on a built module, which the tests compare.
"""
import re
from dataclasses import dataclass
from typing import Optional

_IR = re.compile(r'^ir_k(\d+)_e(\d+)(_se)?$')


@dataclass(frozen=True)
class OpSpec:
    """A parsed op name.

    Attributes:
        name (str): The name it was parsed from.
        kind (str): ``'ir'`` or ``'skip'``.
        kernel (int): Depthwise kernel size (``ir`` only).
        expand (int): Expansion ratio ``e`` (``ir`` only).
        se (bool): Whether the op has squeeze-excitation.
    """
    name: str
    kind: str
    kernel: int = 0
    expand: int = 0
    se: bool = False


def parse_op(name: str, default_se: bool = False) -> OpSpec:
    """Parse an op name: ``'ir_k5_e6'``, ``'ir_k3_e1_se'`` or ``'skip'``.

    Args:
        name (str): The op name.
        default_se (bool): Whether an ``ir`` name without the ``_se``
            suffix has SE anyway (HourNAS's space puts SE in every op and
            its genotypes omit the suffix). Defaults to False.

    Raises:
        ValueError: The name is none of the above, or has an even kernel
            or a zero expansion.
    """
    if name == 'skip':
        return OpSpec(name, 'skip')
    m = _IR.match(name)
    if m is None:
        raise ValueError(
            f'unknown op name {name!r}: expected ir_k<kernel>_e<expand> '
            f"(optionally with _se) or 'skip', e.g. 'ir_k3_e6'")
    kernel, expand = int(m.group(1)), int(m.group(2))
    if kernel % 2 == 0 or expand < 1:
        raise ValueError(f'op {name!r}: the kernel must be odd and the '
                         f'expansion at least 1')
    return OpSpec(name, 'ir', kernel, expand, bool(m.group(3)) or default_se)


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
    if op.kind == 'skip':
        return 0
    w_in = h_in if w_in is None else w_in
    pad = op.kernel // 2
    h_out = (h_in + 2 * pad - op.kernel) // stride + 1
    w_out = (w_in + 2 * pad - op.kernel) // stride + 1
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
    if op.kind == 'skip':
        return 0
    mid = _mid(op, c_in, expand_when_e1)
    width = c_in if mid is None else mid
    params = 0 if mid is None else c_in * mid + 2 * mid
    params += width * op.kernel ** 2 + 2 * width
    if op.se:
        r = se_channels(c_in, width, se_base)
        params += width * r + r + r * width + width
    return params + width * c_out + 2 * c_out
