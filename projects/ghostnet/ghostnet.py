# Copyright (c) EVLab contributors.
"""GhostNet: More Features from Cheap Operations (CVPR 2020).

Paper: https://arxiv.org/abs/1911.11907
Official code: https://github.com/huawei-noah/Efficient-AI-Backbones
(``ghostnet_pytorch``); timm's ``ghostnet_050/100/130`` follow it.

Module names equal the official release (and timm's v1), so that their
backbone keys load unchanged; :func:`convert_official` maps the classifier
head onto mmpretrain's ``StackedLinearClsHead``.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

ConfigType = dict

#: (kernel, expansion, out, SE ratio, stride) per bottleneck, grouped as the
#: official ``blocks.0`` .. ``blocks.8``; ``blocks.9`` is the 1x1 conv to
#: 960 channels (paper Table 1).
ARCH_SETTINGS = [
    [[3, 16, 16, 0, 1]],
    [[3, 48, 24, 0, 2]],
    [[3, 72, 24, 0, 1]],
    [[5, 72, 40, 0.25, 2]],
    [[5, 120, 40, 0.25, 1]],
    [[3, 240, 80, 0, 2]],
    [[3, 200, 80, 0, 1], [3, 184, 80, 0, 1], [3, 184, 80, 0, 1],
     [3, 480, 112, 0.25, 1], [3, 672, 112, 0.25, 1]],
    [[5, 672, 160, 0.25, 2]],
    [[5, 960, 160, 0, 1], [5, 960, 160, 0.25, 1], [5, 960, 160, 0, 1],
     [5, 960, 160, 0.25, 1]],
]


def make_divisible(value: float, divisor: int = 4,
                   min_value: Optional[int] = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never below 90% of it.

    The rounding of the official code (and timm's ``make_divisible``).
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _bn(norm_cfg: ConfigType, channels: int) -> nn.Module:
    return build_norm_layer(norm_cfg, channels)[1]


@MODELS.register_module()
class GhostModule(BaseModule):
    """Ghost module (paper Sec. 3.1, Fig. 2b).

    A primary convolution makes ``ceil(n / ratio)`` intrinsic maps; a cheap
    depthwise ``dw_size`` convolution makes ``ratio - 1`` ghost maps from
    each; the concatenation is cut to ``out_channels``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels ``n``.
        kernel_size (int): Kernel of the primary conv. Defaults to 1.
        ratio (int): ``s``, outputs per intrinsic map. Defaults to 2.
        dw_size (int): ``d``, kernel of the cheap depthwise conv.
            Defaults to 3.
        stride (int): Stride of the primary conv. Defaults to 1.
        act (bool): ReLU after both convs. Defaults to True.
        norm_cfg (dict, optional): Norm layer. Defaults to ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 ratio: int = 2,
                 dw_size: int = 3,
                 stride: int = 1,
                 act: bool = True,
                 norm_cfg: Optional[ConfigType] = None,
                 init_cfg: Optional[ConfigType] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='BN')
        self.out_channels = out_channels
        init_channels = math.ceil(out_channels / ratio)
        new_channels = init_channels * (ratio - 1)
        self.primary_conv = nn.Sequential(
            nn.Conv2d(in_channels, init_channels, kernel_size, stride,
                      kernel_size // 2, bias=False),
            _bn(norm_cfg, init_channels),
            nn.ReLU(inplace=True) if act else nn.Identity())
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_channels, new_channels, dw_size, 1, dw_size // 2,
                      groups=init_channels, bias=False),
            _bn(norm_cfg, new_channels),
            nn.ReLU(inplace=True) if act else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        # keep the cut: m * s may exceed n for ratios other than 2
        return torch.cat([x1, x2], dim=1)[:, :self.out_channels]


class SqueezeExcite(nn.Module):
    """SE with channels rounded to a multiple of 4 and a hard-sigmoid gate
    ``relu6(x + 3) / 6`` (official code; mmpretrain's SELayer rounds to 8).
    """

    def __init__(self, channels: int, se_ratio: float = 0.25) -> None:
        super().__init__()
        reduced = make_divisible(channels * se_ratio, 4)
        self.conv_reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        se = x.mean((2, 3), keepdim=True)
        se = self.conv_expand(self.act1(self.conv_reduce(se)))
        return x * (F.relu6(se + 3.) / 6.)


@MODELS.register_module()
class GhostBottleneck(BaseModule):
    """Ghost bottleneck (paper Fig. 3): Ghost expansion, a depthwise
    stride-2 conv when downsampling, optional SE, linear Ghost projection,
    plus a shortcut; no activation after the sum.

    Args:
        in_channels (int): Input channels.
        mid_channels (int): Expansion width.
        out_channels (int): Output channels.
        dw_kernel_size (int): Kernel of the depthwise convs of the stride-2
            path and the shortcut. Defaults to 3.
        stride (int): 1 or 2. Defaults to 1.
        se_ratio (float): SE reduction; 0 disables SE. Defaults to 0.
        ratio (int): Ghost ratio ``s``. Defaults to 2.
        dw_size (int): Kernel ``d`` of the Ghost cheap op. Defaults to 3.
        norm_cfg (dict, optional): Norm layer. Defaults to ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 mid_channels: int,
                 out_channels: int,
                 dw_kernel_size: int = 3,
                 stride: int = 1,
                 se_ratio: float = 0.,
                 ratio: int = 2,
                 dw_size: int = 3,
                 norm_cfg: Optional[ConfigType] = None,
                 init_cfg: Optional[ConfigType] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='BN')
        ghost = dict(ratio=ratio, dw_size=dw_size, norm_cfg=norm_cfg)
        self.ghost1 = GhostModule(in_channels, mid_channels, act=True,
                                  **ghost)
        if stride > 1:
            self.conv_dw = nn.Conv2d(
                mid_channels, mid_channels, dw_kernel_size, stride,
                (dw_kernel_size - 1) // 2, groups=mid_channels, bias=False)
            self.bn_dw = _bn(norm_cfg, mid_channels)
        else:
            self.conv_dw = None
            self.bn_dw = None
        self.se = SqueezeExcite(mid_channels, se_ratio) \
            if se_ratio and se_ratio > 0 else None
        self.ghost2 = GhostModule(mid_channels, out_channels, act=False,
                                  **ghost)
        if in_channels == out_channels and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, dw_kernel_size, stride,
                          (dw_kernel_size - 1) // 2, groups=in_channels,
                          bias=False),
                _bn(norm_cfg, in_channels),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                _bn(norm_cfg, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ghost1(x)
        if self.conv_dw is not None:
            y = self.bn_dw(self.conv_dw(y))
        if self.se is not None:
            y = self.se(y)
        y = self.ghost2(y)
        return y + self.shortcut(x)


class ConvBnAct(nn.Module):
    """1x1 conv + BN + ReLU, named as the official ``blocks.9.0``."""

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: ConfigType) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn1 = _bn(norm_cfg, out_channels)
        self.act1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv(x)))


@MODELS.register_module()
class GhostNet(BaseBackbone):
    """GhostNet backbone (paper Table 1).

    The stem is ``conv_stem`` / ``bn1`` / ``act1``; the ten groups
    ``blocks.0`` .. ``blocks.9`` are the official ones (``blocks.9`` is the
    1x1 conv to ``960 * widen_factor`` channels). Output strides of the
    groups: 2, 4, 4, 8, 8, 16, 16, 32, 32, 32.

    Args:
        widen_factor (float): Width multiplier ``alpha`` (0.5, 1.0, 1.3 or
            any other value); every channel count is
            ``make_divisible(c * alpha, 4)``. Defaults to 1.0.
        out_indices (Sequence[int]): Groups whose outputs are returned;
            ``(2, 4, 6, 9)`` gives strides 4/8/16/32 for dense prediction.
            Defaults to ``(9, )``.
        frozen_stages (int): Freeze the stem and groups ``0`` ..
            ``frozen_stages - 1`` (parameters and BN statistics); -1 freezes
            nothing. Defaults to -1.
        norm_eval (bool): Keep BN layers in eval mode while training.
            Defaults to False.
        ratio (int): Ghost ratio ``s``. Defaults to 2.
        dw_size (int): Kernel ``d`` of the Ghost cheap op. Defaults to 3.
        in_channels (int): Image channels. Defaults to 3.
        norm_cfg (dict, optional): Norm layer. Defaults to ``dict(type='BN')``.
        init_cfg (dict | list, optional): Initialisation. Defaults to
            Kaiming-normal (fan_out) convs and constant-1 BN.
    """

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (9, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 ratio: int = 2,
                 dw_size: int = 3,
                 in_channels: int = 3,
                 norm_cfg: Optional[ConfigType] = None,
                 init_cfg=None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', mode='fan_out', layer='Conv2d'),
                dict(type='Constant', val=1, layer=['_BatchNorm'])
            ]
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='BN')
        num_groups = len(ARCH_SETTINGS) + 1
        out_indices = tuple(out_indices)
        for i in out_indices:
            if not -num_groups <= i < num_groups:
                raise ValueError(f'out_indices entries must be in '
                                 f'[-{num_groups}, {num_groups}), got {i}')
        self.out_indices = tuple(i % num_groups for i in out_indices)
        if not -1 <= frozen_stages <= num_groups:
            raise ValueError(f'frozen_stages must be in [-1, {num_groups}],'
                             f' got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.widen_factor = widen_factor

        stem = make_divisible(16 * widen_factor, 4)
        self.conv_stem = nn.Conv2d(in_channels, stem, 3, 2, 1, bias=False)
        self.bn1 = _bn(norm_cfg, stem)
        self.act1 = nn.ReLU(inplace=True)
        prev = stem
        groups = []
        self.out_channels: Dict[int, int] = {}
        for g, cfg in enumerate(ARCH_SETTINGS):
            layers = []
            for k, exp, c, se, s in cfg:
                out = make_divisible(c * widen_factor, 4)
                mid = make_divisible(exp * widen_factor, 4)
                layers.append(
                    GhostBottleneck(prev, mid, out, k, s, se_ratio=se,
                                    ratio=ratio, dw_size=dw_size,
                                    norm_cfg=norm_cfg))
                prev = out
            groups.append(nn.Sequential(*layers))
            self.out_channels[g] = prev
        last = make_divisible(ARCH_SETTINGS[-1][-1][1] * widen_factor, 4)
        groups.append(nn.Sequential(ConvBnAct(prev, last, norm_cfg)))
        self.out_channels[len(ARCH_SETTINGS)] = last
        self.blocks = nn.Sequential(*groups)
        self._freeze_stages()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.act1(self.bn1(self.conv_stem(x)))
        outs = []
        for i, group in enumerate(self.blocks):
            x = group(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.conv_stem, self.bn1] + [
            self.blocks[i] for i in range(self.frozen_stages)
        ]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'GhostNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


def convert_official(state_dict: Dict[str, torch.Tensor]
                     ) -> Dict[str, torch.Tensor]:
    """Official / timm GhostNet v1 keys -> an mmpretrain ImageClassifier
    with ``GhostNet`` backbone and ``StackedLinearClsHead(mid=[1280])``.

    ``conv_head`` (a 1x1 conv on the pooled vector) becomes the head's
    first Linear and ``classifier`` its last; everything else goes under
    ``backbone.`` with the same name.
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        if key.startswith('conv_head.'):
            if key.endswith('weight'):
                value = value.flatten(1)  # (1280, C, 1, 1) -> (1280, C)
            out['head.layers.0.fc.' + key.split('.', 1)[1]] = value
        elif key.startswith('classifier.'):
            out['head.layers.1.fc.' + key.split('.', 1)[1]] = value
        else:
            out['backbone.' + key] = value
    return out
