# Copyright (c) EVLab contributors.
"""A CNN as the patch embedding of a vision transformer (the ViT paper's
"hybrid", Dosovitskiy et al., ICLR 2021, Sec. 3.1): the tokens are the
1x1-projected cells of a CNN feature map. Shared by ManifoldKD's toy
teacher (``HybridVisionTransformer``) and Patch Slimming's toy ViT
(``PatchSlimViT(cnn=...)``): on the toy classification set, ViTs with
linear patch embeddings stay near chance for tens of CPU epochs, hybrids
with a trained CNN learn in a few."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.registry import MODELS
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
class ConvStem(BaseModule):
    """A stack of 3x3 stride-2 conv-BN-ReLU layers (the convolutional stem
    of Xiao et al., "Early Convolutions Help Transformers See Better",
    NeurIPS 2021), for ``CNNPatchEmbed``: ``len(channels)`` layers give a
    stride of ``2 ** len(channels)`` and a receptive field of
    ``2 ** (len(channels) + 1) - 1`` pixels, so a token sees its own
    patch and a few pixels of its neighbours, where a ResNet's stages see
    most of a small image.

    Args:
        channels (tuple): Output channels of each layer.
        in_channels (int): Image channels. Defaults to 3.
        init_cfg (dict, optional): Initialisation. Defaults to None.
    """

    def __init__(self, channels: Tuple[int, ...], in_channels: int = 3,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        layers = []
        for c in channels:
            layers += [nn.Conv2d(in_channels, c, 3, 2, 1, bias=False),
                       nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            in_channels = c
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


@MODELS.register_module()
class CentreAveragePooling(nn.Module):
    """Average the central ``size`` x ``size`` cells of a feature map: a
    classifier neck that reads only the middle of the image. It trains a
    token-local embedding (e.g. :class:`ConvStem`) on ``toy_glimpse``,
    where the label belongs to the central shape, before a ViT uses it
    (configs/patch_slim/toy_glimpse_stem.py).

    Args:
        size (int | tuple): Cells pooled (rows, columns); the window is
            centred, so it must have the map's parity in each dimension.
    """

    def __init__(self, size) -> None:
        super().__init__()
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f'CentreAveragePooling size must be one or '
                             f'two positive ints, got {size}')
        self.size = size

    def forward(self, inputs):
        is_seq = isinstance(inputs, (tuple, list))
        outs = []
        for x in (inputs if is_seq else (inputs, )):
            h, w = x.shape[-2:]
            (sh, sw) = self.size
            if sh > h or sw > w or (h - sh) % 2 or (w - sw) % 2:
                raise ValueError(
                    f'CentreAveragePooling: a {sh}x{sw} window cannot be '
                    f'centred on a {h}x{w} feature map (it must fit, with '
                    f'the same parity as the map)')
            top, left = (h - sh) // 2, (w - sw) // 2
            outs.append(x[..., top:top + sh, left:left + sw].mean((-2, -1)))
        return tuple(outs)
