# Copyright (c) EVLab contributors.
"""The Dual Part-aligned Block of P2Net (Guo et al., ICCV 2019).

Paper: https://arxiv.org/abs/1910.10111 ; official code:
https://github.com/ggjy/P2Net.pytorch (read, not copied).

For a feature map X (C x N, N = H*W) the block adds two part-aligned
representations (spec 2.2)::

    latent: A = softmax_j((W_t x_i + b_t)^T (W_p x_j + b_p) / sqrt(c1))
            Z_lat(i) = BN_rho(W_rho sum_j A_ij (W_g x_j + b_g) + b_rho)
    human:  m_k = mean_{j: l_j = k} x_j      (l: the part map, K labels)
            Z_hum(i) = BN_h(W_h m_{l_i} + b_h)
    Y = X + Z_lat + Z_hum

Both BatchNorms start with gamma = beta = 0, so a new block is exactly the
identity, in train and eval mode.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch import Tensor

BG_MODES = ('own', 'global')


def resize_part_map(part_map: Tensor, size) -> Tensor:
    """Nearest-resize integer part maps to a feature size.

    ``F.interpolate(mode='nearest')``: source index = floor(dst * in / out),
    as the official code. The pad label 255 becomes background (0).

    Args:
        part_map (Tensor): (B, H, W) integer labels.
        size (tuple[int, int]): The target (h, w).

    Returns:
        Tensor: (B, h, w) int64 labels.
    """
    part_map = part_map.long().masked_fill(part_map == 255, 0)
    if tuple(part_map.shape[-2:]) == tuple(size):
        return part_map
    # (B, H, W) -> (B, 1, H, W): interpolate works on channels
    out = F.interpolate(part_map[:, None].float(), size=size, mode='nearest')
    return out[:, 0].long()


def masked_part_mean(x: Tensor, labels: Tensor, num_parts: int,
                     bg_mode: str = 'own') -> Tensor:
    """Per image and part k, the mean of the pixels labelled k.

    Equal (up to rounding) to the official dense formula, a row-normalised
    N x N label-equality matrix times X, at O(K N C) instead of O(N^2 C).

    Args:
        x (Tensor): (B, C, N) features.
        labels (Tensor): (B, N) labels in ``[0, num_parts)``.
        num_parts (int): K.
        bg_mode (str): ``'own'``: background (0) pixels average over the
            background pixels (the released module); ``'global'``: over all
            pixels (an unused official variant). Defaults to ``'own'``.

    Returns:
        Tensor: (B, K, C) part means; a part absent from an image gets 0
        (no pixel reads it back).
    """
    if bg_mode not in BG_MODES:
        raise ValueError(f'bg_mode must be one of {BG_MODES}, got '
                         f'{bg_mode!r}')
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_parts):
        raise ValueError(
            f'part labels must lie in [0, {num_parts}), got '
            f'[{int(labels.min())}, {int(labels.max())}]: check the part '
            f'maps (and num_parts)')
    onehot = F.one_hot(labels, num_parts).to(x.dtype)  # (B, N, K)
    counts = onehot.sum(1)  # (B, K)
    sums = torch.bmm(onehot.transpose(1, 2), x.transpose(1, 2))  # (B, K, C)
    means = sums / counts.clamp(min=1)[..., None]
    if bg_mode == 'global':
        means = torch.cat([x.mean(2, keepdim=False)[:, None], means[:, 1:]],
                          dim=1)
    return means


@MODELS.register_module()
class DualPartAlignedBlock(nn.Module):
    """Dual Part-aligned Block: latent-part (self-attention) and human-part
    (parsing-mask pooling) representations added to the input.

    Args:
        in_channels (int): C, the channels at the block's site (1024 after
            ResNet-50's layer3).
        c1 (int, optional): Query/key channels; scale ``c1 ** -0.5``.
            Defaults to ``in_channels // 2``.
        c2 (int, optional): Value channels. Defaults to ``in_channels // 2``.
        num_parts (int): K, the labels of the part maps (0 = background).
            Defaults to 5.
        bg_mode (str): How background pixels pool, ``'own'`` or
            ``'global'`` (see :func:`masked_part_mean`). Defaults to
            ``'own'``.
        use_latent (bool): The latent-part branch. Defaults to True.
        use_human (bool): The human-part branch; needs part maps. Defaults
            to True.
    """

    def __init__(self,
                 in_channels: int,
                 c1: Optional[int] = None,
                 c2: Optional[int] = None,
                 num_parts: int = 5,
                 bg_mode: str = 'own',
                 use_latent: bool = True,
                 use_human: bool = True):
        super().__init__()
        if bg_mode not in BG_MODES:
            raise ValueError(f'bg_mode must be one of {BG_MODES}, got '
                             f'{bg_mode!r}')
        if not (use_latent or use_human):
            raise ValueError('a DualPartAlignedBlock needs use_latent or '
                             'use_human; for the baseline use no block '
                             '(dpb_stages=())')
        self.in_channels = in_channels
        self.c1 = c1 or in_channels // 2
        self.c2 = c2 or in_channels // 2
        self.num_parts = num_parts
        self.bg_mode = bg_mode
        self.use_latent = use_latent
        self.use_human = use_human
        if use_latent:
            self.theta = nn.Conv2d(in_channels, self.c1, 1)
            self.phi = nn.Conv2d(in_channels, self.c1, 1)
            self.g = nn.Conv2d(in_channels, self.c2, 1)
            self.rho = nn.Conv2d(self.c2, in_channels, 1)
            self.bn_latent = nn.BatchNorm2d(in_channels)
        if use_human:
            self.human = nn.Conv2d(in_channels, in_channels, 1)
            self.bn_human = nn.BatchNorm2d(in_channels)
        self.init_weights()

    def init_weights(self) -> None:
        """Kaiming-normal (fan_in, a=0) 1x1 convs with PyTorch's default
        biases, and both BNs at gamma = beta = 0: the identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0, mode='fan_in')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    def latent(self, x: Tensor) -> Tensor:
        """Z_lat before its BN: W_rho (softmax(Q^T K / sqrt(c1)) V) + b."""
        b, _, h, w = x.shape
        q = self.theta(x).flatten(2)  # (B, c1, N)
        k = self.phi(x).flatten(2)  # (B, c1, N)
        v = self.g(x).flatten(2)  # (B, c2, N)
        attn = torch.bmm(q.transpose(1, 2), k) / math.sqrt(self.c1)
        attn = attn.softmax(dim=-1)  # (B, N, N), rows sum to 1
        out = torch.bmm(v, attn.transpose(1, 2))  # (B, c2, N)
        return self.rho(out.view(b, self.c2, h, w))

    def human_part(self, x: Tensor, part_map: Tensor) -> Tensor:
        """Z_hum before its BN: W_h m_{l_i} + b_h for every pixel i.

        W_h is linear, so it is applied to the K part means and the result
        scattered back to the pixels: the same values as W_h on each pixel's
        pooled feature, at K instead of N convolutions.
        """
        b, c, h, w = x.shape
        labels = resize_part_map(part_map.to(x.device), (h, w)).flatten(1)
        means = masked_part_mean(x.flatten(2), labels, self.num_parts,
                                 self.bg_mode)  # (B, K, C)
        # (B, K, C) -> (B, C, K, 1): a 1x1 conv over the K means
        proj = self.human(means.transpose(1, 2)[..., None])[..., 0]
        # gather each pixel's part: (B, C, K) -> (B, C, N)
        idx = labels[:, None].expand(b, c, h * w)
        return torch.gather(proj, 2, idx).view(b, c, h, w)

    def forward(self, x: Tensor, part_map: Optional[Tensor] = None
                ) -> Tensor:
        """Y = X + Z_lat + Z_hum.

        Args:
            x (Tensor): (B, C, H, W) features.
            part_map (Tensor, optional): (B, H0, W0) integer part labels at
                any resolution (the network input's); needed when
                ``use_human``.
        """
        out = x
        if self.use_latent:
            out = out + self.bn_latent(self.latent(x))
        if self.use_human:
            if part_map is None:
                raise ValueError(
                    'the human-part branch needs part maps: add '
                    'LoadPartMap to the pipeline and set the dataset\'s '
                    'parsing_root, or use use_human=False')
            out = out + self.bn_human(self.human_part(x, part_map))
        return out
