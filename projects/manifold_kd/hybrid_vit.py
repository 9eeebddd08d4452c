# Copyright (c) EVLab contributors.
"""Hybrid vision transformer: a ViT whose patch embedding is a CNN.

The hybrid of the ViT paper (Dosovitskiy et al., ICLR 2021, Sec. 3.1,
"Hybrid Architecture"; timm's ``vit_*_r26_s32``, ``vit_base_r50_s16``):
the tokens are the 1x1-projected cells of a CNN feature map instead of
linearly embedded pixel patches; class token, position embeddings and the
encoder are mmpretrain's :class:`VisionTransformer`, unchanged.

EVLab uses it for the toy manifold-KD teacher: on the toy classification
set (2,600 shape images) plain ViTs from scratch stay near chance for tens
of epochs on a CPU budget (50 epochs: 15% top-1, 10 classes), and so does
this hybrid with a CNN trained from scratch; with the CNN initialised
from the trained toy ResNet-18 (the ViT paper's hybrids start from a
trained ResNet too) it reaches 65% in 8 epochs. The manifold loss reads
the encoder's block outputs exactly as it reads DeiT's.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS
from torch import Tensor


class CNNPatchEmbed(BaseModule):
    """CNN -> 1x1 conv -> tokens: (B, 3, H, W) -> (B, h*w, embed_dims).

    Args:
        backbone (dict): Config of an mmpretrain CNN (e.g. ``ResNet`` with
            ``num_stages=3``); its last output is used.
        embed_dims (int): Token width.
        in_channels (int): Image channels.
        img_size (tuple): Training input size, to check the stride.
        patch_size (int): Stride the CNN must have (one token per
            ``patch_size`` x ``patch_size`` pixels).
        init_cfg (dict, optional): Initialisation. Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 embed_dims: int,
                 in_channels: int,
                 img_size: Tuple[int, int],
                 patch_size: int,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        was_training = self.backbone.training
        self.backbone.eval()  # no BN statistics from the probe
        with torch.no_grad():
            probe = self._last(self.backbone(
                torch.zeros(1, in_channels, *img_size)))
        self.backbone.train(was_training)
        h, w = probe.shape[2:]
        expected = (img_size[0] // patch_size, img_size[1] // patch_size)
        if (h, w) != expected:
            raise ValueError(
                f'the CNN embedding {backbone.get("type")} maps a '
                f'{tuple(img_size)} input to a {h}x{w} grid, but '
                f'patch_size={patch_size} needs {expected[0]}x{expected[1]}: '
                f'set patch_size to the CNN\'s total stride')
        self.feat_channels = probe.shape[1]
        self.projection = nn.Conv2d(self.feat_channels, embed_dims, 1)
        self.init_out_size = expected

    @staticmethod
    def _last(out) -> Tensor:
        return out[-1] if isinstance(out, (tuple, list)) else out

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        x = self.projection(self._last(self.backbone(x)))
        return x.flatten(2).transpose(1, 2), tuple(x.shape[2:])


@MODELS.register_module()
class HybridVisionTransformer(VisionTransformer):
    """mmpretrain's :class:`VisionTransformer` with a CNN patch embedding.

    Every argument of ``VisionTransformer`` is accepted (``arch``,
    ``img_size``, ``with_cls_token``, ``out_type``, ``out_indices``, ...);
    ``patch_size`` must equal the CNN's total stride (checked at build
    time), which fixes the token grid and the position embeddings.

    Args:
        cnn (dict): Config of the CNN embedding, e.g. ``dict(type='ResNet',
            depth=18, num_stages=3, out_indices=(2, ), ...)`` (stride 16).
        **kwargs: Passed to ``VisionTransformer``.

    Example:
        >>> backbone = dict(
        ...     type='HybridVisionTransformer',
        ...     cnn=dict(type='ResNet', depth=18, num_stages=3,
        ...              out_indices=(2, ), strides=(1, 2, 2),
        ...              dilations=(1, 1, 1), base_channels=16,
        ...              stem_channels=16),
        ...     arch=dict(embed_dims=64, num_layers=4, num_heads=2,
        ...               feedforward_channels=128),
        ...     img_size=64, patch_size=16)
    """

    def __init__(self, cnn: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        patch_size = kwargs.get('patch_size', 16)
        self.patch_embed = CNNPatchEmbed(
            cnn,
            embed_dims=self.embed_dims,
            in_channels=kwargs.get('in_channels', 3),
            img_size=self.patch_embed.init_input_size,
            patch_size=patch_size)
        if self.patch_embed.init_out_size != self.patch_resolution:
            raise ValueError(f'CNN grid {self.patch_embed.init_out_size} '
                             f'!= position grid {self.patch_resolution}')
