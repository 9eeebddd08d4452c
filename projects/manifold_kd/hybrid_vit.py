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
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS

from ..common.cnn_embed import CNNPatchEmbed


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
