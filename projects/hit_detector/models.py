# Copyright (c) EVLab contributors.
"""The released Hit-Detector (spec 2.2): the searched backbone (mmpretrain,
so ImageNet pre-training and detection share it), the PANet-style neck and
the RoI box head with searched blocks (mmdet).

Each takes its genotype as a list of op names (or, for the neck, the
released integer genes into :data:`~.ops.NECK_OPS`); the defaults are the
released architecture, whose parameter count the tests check against the
spec's 27,121,848.
"""
import copy
from typing import List, Optional, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.model import BaseModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ..ghostnet import make_divisible
from .ops import NECK_OPS, ConvBNAct, build_op, parse_op_name

#: the released backbone ``fbnet_hit`` (spec 3.1): layers 1-21, searched
HIT_BACKBONE = (
    'ir_k3_e3', 'ir_k3_e3', 'ir_k3_e3_d2', 'ir_k3_e3',
    'ir_k5_e6', 'ir_k5_e6', 'ir_k3_e3', 'ir_k3_e3',
    'ir_k7_e6', 'ir_k5_e6', 'ir_k5_e6_d2', 'ir_k5_e3',
    'ir_k5_e6', 'ir_k5_e6_d2', 'ir_k5_e6', 'ir_k5_e6_d2',
    'ir_k7_e6', 'ir_k5_e6', 'ir_k5_e6_d2', 'ir_k5_e6',
    'ir_k3_e3')
#: strides and widths of layers 0 (the stem) to 22 (the final 1x1 conv)
HIT_STRIDES = (2, 2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1,
               1, 1)
HIT_CHANNELS = (16, 48, 48, 48, 48, 96, 96, 96, 96, 184, 184, 184, 184, 256,
                256, 256, 256, 352, 352, 352, 352, 1024, 2048)
#: the released neck genes (indices into NECK_OPS) and the head blocks
HIT_NECK = tuple(NECK_OPS[i] for i in (7, 7, 6, 5, 5, 7, 7, 5))
HIT_HEAD = ('ir_k5_e6', 'ir_k3_e6', 'ir_k5_e6', 'ir_k5_e6')
#: the released neck's init_weights: Xavier-uniform on every conv
NECK_INIT = dict(type='Xavier', layer='Conv2d', distribution='uniform')


def check_genotype(genotype: Sequence, length: int, what: str,
                   table: Optional[Sequence[str]] = None,
                   allowed: Optional[Sequence[str]] = None) -> List[str]:
    """Validate a component's genotype and return canonical op names.

    Args:
        genotype: Op names, or (with ``table``) integer indices into it.
        length (int): The number of positions.
        what (str): The component, for the messages.
        table (list[str], optional): What integer genes index.
        allowed (list[str], optional): The component's (screened)
            sub-space; a name outside it is refused.

    Raises:
        ValueError: A wrong length, an unknown name, an index out of the
            table or a name outside ``allowed``, naming the position.
    """
    genotype = list(genotype)
    if len(genotype) != length:
        raise ValueError(f'the {what} genotype has {len(genotype)} ops; '
                         f'its {length} positions need {length}')
    allowed_c = None if allowed is None else \
        {parse_op_name(a).name for a in allowed}
    names = []
    for i, gene in enumerate(genotype):
        if isinstance(gene, int) and not isinstance(gene, bool):
            if table is None or not 0 <= gene < len(table):
                raise ValueError(
                    f'{what} position {i}: gene {gene} indexes no op'
                    + ('' if table is None else f' of {list(table)}'))
            gene = table[gene]
        try:
            name = parse_op_name(gene).name
        except (ValueError, TypeError) as e:
            raise ValueError(f'{what} position {i}: {e}') from None
        if allowed_c is not None and name not in allowed_c:
            raise ValueError(f'{what} position {i}: op {name!r} is not in '
                             f'the {what} sub-space {sorted(allowed_c)}')
        names.append(name)
    return names


class _FixedPositions:
    """Builds each searched position as one op; the supernet's
    :class:`~.search.SearchPositions` builds a choice block instead."""

    def _position(self, index: int, op: str, c_in: int, c_out: int,
                  stride: int, norm_cfg: Optional[dict]) -> nn.Module:
        return build_op(op, c_in, c_out, stride, norm_cfg)


@MMPRETRAIN_MODELS.register_module()
class HitBackbone(_FixedPositions, BaseBackbone):
    """The Hit-Detector backbone (``fbnet_hit``, spec 3.1): a 3x3 stem
    (stride 2, with a bias, BN, ReLU), 21 searched ops and a final 1x1
    conv (BN, ReLU); C2-C5 after layers 4, 8, 16 and 22.

    Args:
        genotype (list[str]): The 21 ops of layers 1-21. Defaults to the
            released ones.
        strides (list[int]): Strides of layers 0-22.
        out_channels (list[int]): Widths of layers 0-22.
        out_indices (tuple[int]): Layers whose outputs are returned.
            Defaults to (4, 8, 16, 22).
        widen_factor (float): Width multiplier, rounded to multiples of 8
            (the toy configs use 0.25). Defaults to 1.0.
        frozen_stages (int): Freeze layers 0..``frozen_stages``
            (parameters and BN statistics); -1 freezes none.
        norm_eval (bool): Keep BN layers in eval mode while training.
        norm_cfg (dict): Norm layers. Defaults to ``dict(type='BN')``.
        stem_bias (bool): Whether the stem conv has a bias. The released
            code builds it with one (``FBNet.build_backbone``), 16
            parameters the spec's count (3.2, 13,881,832) leaves out.
            Defaults to True (the released layout, 13,881,848).
        init_cfg (dict, optional): Initialisation (the convs are
            Kaiming-initialised on construction otherwise).
    """

    def __init__(self,
                 genotype: Sequence[str] = HIT_BACKBONE,
                 strides: Sequence[int] = HIT_STRIDES,
                 out_channels: Sequence[int] = HIT_CHANNELS,
                 out_indices: Sequence[int] = (4, 8, 16, 22),
                 widen_factor: float = 1.0,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 stem_bias: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        num = len(strides)
        if len(out_channels) != num:
            raise ValueError(f'strides ({num}) and out_channels '
                             f'({len(out_channels)}) must give every layer')
        self.genotype = check_genotype(genotype, num - 2, 'backbone')
        if not all(0 <= i < num for i in out_indices):
            raise ValueError(f'out_indices {tuple(out_indices)} must be '
                             f'layers 0..{num - 1}')
        if not -1 <= frozen_stages < num:
            raise ValueError(f'frozen_stages must be in [-1, {num - 1}], '
                             f'got {frozen_stages}')
        norm_cfg = norm_cfg or dict(type='BN')
        widths = [out_channels[0]] + [
            make_divisible(c * widen_factor, 8) for c in out_channels[1:]]
        if widen_factor != 1.0:
            widths[0] = make_divisible(out_channels[0] * widen_factor, 8)
        self.out_indices = tuple(out_indices)
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.widths, self.strides = widths, tuple(strides)
        self.layers = nn.ModuleList([
            ConvBNAct(3, widths[0], 3, strides[0], bias=stem_bias,
                      norm_cfg=norm_cfg)])
        for i, op in enumerate(self.genotype, start=1):
            self.layers.append(self._position(i, op, widths[i - 1],
                                              widths[i], strides[i],
                                              norm_cfg))
        self.layers.append(ConvBNAct(widths[-2], widths[-1], 1, strides[-1],
                                     norm_cfg=norm_cfg))
        self._freeze()

    @property
    def channels(self) -> List[int]:
        """Widths of the returned outputs."""
        return [self.widths[i] for i in self.out_indices]

    def _freeze(self) -> None:
        for layer in self.layers[:self.frozen_stages + 1]:
            layer.eval()
            for p in layer.parameters():
                p.requires_grad = False

    def forward(self, x: Tensor) -> tuple:
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'HitBackbone':
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


@MMDET_MODELS.register_module()
class HitPAFPN(_FixedPositions, BaseModule):
    """The Hit-Detector neck (spec 2.2, the released ``SearchPAFPN`` with
    ``HitNeck``): searched lateral cells, the FPN top-down sum, searched
    second cells, the PANet bottom-up path and a max-pooled extra level.

    1. ``L_i = cell_i(C_i)`` (C_in -> ``out_channels``), i = 0..3;
    2. ``L_{i-1} += upsample2x(L_i)`` from the top;
    3. ``O_i = cell_{4+i}(L_i)``;
    4. ``N_0 = O_0``, ``N_{i+1} = conv3x3(maxpool2(N_i) + O_{i+1})`` (plain
       3x3 convs with biases, no norm, no activation);
    5. ``N_4 = maxpool(N_3, kernel 1, stride 2)``.

    Args:
        in_channels (list[int]): Widths of C2-C5.
        out_channels (int): Width of every level. Defaults to 256.
        genotype (list): The 8 cells' ops (names, or the released integer
            genes into :data:`~.ops.NECK_OPS`). Defaults to the released
            ``[7, 7, 6, 5, 5, 7, 7, 5]``.
        num_outs (int): Levels returned (the inputs' plus max-pooled
            extra ones). Defaults to 5.
        norm_cfg (dict): Norm layers of the cells. Defaults to BN.
        init_cfg (dict): Defaults to Xavier-uniform on every conv, the
            released neck's ``init_weights``.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int = 256,
                 genotype: Sequence[Union[int, str]] = HIT_NECK,
                 num_outs: int = 5,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = NECK_INIT) -> None:
        super().__init__(init_cfg=copy.deepcopy(init_cfg))
        n = len(in_channels)
        if num_outs < n:
            raise ValueError(f'num_outs ({num_outs}) must be at least the '
                             f'number of inputs ({n})')
        self.in_channels, self.out_channels = list(in_channels), out_channels
        self.num_outs = num_outs
        self.genotype = check_genotype(genotype, 2 * n, 'neck', NECK_OPS)
        self.cells = nn.ModuleList(
            self._position(i, op, in_channels[i] if i < n else out_channels,
                           out_channels, 1, norm_cfg)
            for i, op in enumerate(self.genotype))
        self.pa_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1,
                       norm_cfg=None, act_cfg=None) for _ in range(n - 1))

    def forward(self, inputs: Sequence[Tensor]) -> tuple:
        n = len(self.in_channels)
        if len(inputs) != n:
            raise ValueError(f'HitPAFPN expects {n} inputs, got '
                             f'{len(inputs)}')
        lat = [self.cells[i](x) for i, x in enumerate(inputs)]
        for i in range(n - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(
                lat[i], size=lat[i - 1].shape[2:], mode='nearest')
        mid = [self.cells[n + i](x) for i, x in enumerate(lat)]
        outs = [mid[0]]
        for i in range(n - 1):
            outs.append(self.pa_convs[i](
                F.max_pool2d(outs[i], 2, stride=2) + mid[i + 1]))
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)


@MMDET_MODELS.register_module()
class HitBBoxHead(_FixedPositions, ConvFCBBoxHead):
    """The Hit-Detector box head: searched blocks on the 7x7 RoI features
    (stride 1, ``in_channels`` wide), then mmdet's shared-FC head (one FC
    of 512 by default) with the classifier and the class-specific
    regressor.

    Args:
        blocks (list[str]): The ops of the RoI blocks. Defaults to the
            released ``[ir_k5_e6, ir_k3_e6, ir_k5_e6, ir_k5_e6]``.
        norm_cfg (dict): Norm layers of the blocks. Defaults to BN.
        **kwargs: ``ConvFCBBoxHead``'s arguments (``num_shared_fcs=1`` and
            ``fc_out_channels=512`` unless given).
    """

    def __init__(self, blocks: Sequence[str] = HIT_HEAD,
                 norm_cfg: Optional[dict] = None, **kwargs) -> None:
        kwargs.setdefault('num_shared_fcs', 1)
        kwargs.setdefault('fc_out_channels', 512)
        for key in ('num_shared_convs', 'num_cls_convs', 'num_reg_convs',
                    'num_cls_fcs', 'num_reg_fcs'):
            kwargs.setdefault(key, 0)
        super().__init__(**kwargs)
        if self.with_avg_pool:
            raise ValueError('HitBBoxHead runs its blocks on the RoI map; '
                             'with_avg_pool must be False')
        self.block_ops = check_genotype(blocks, len(blocks), 'head')
        self.blocks = nn.Sequential(*[
            self._position(i, op, self.in_channels, self.in_channels, 1,
                           norm_cfg)
            for i, op in enumerate(self.block_ops)])

    def forward(self, x: Tensor) -> tuple:
        return super().forward(self.blocks(x))
