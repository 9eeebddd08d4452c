# Copyright (c) EVLab contributors.
"""TNT: Transformer in Transformer (NeurIPS 2021) for mmpretrain, official
and legacy structures; usable from mmdet / mmseg configs as
``type='mmpretrain.TransformerInTransformer'``."""
from .tnt import (
    ARCH_SETTINGS,
    TNTBlock,
    TransformerInTransformer,
    convert_mmpretrain,
    convert_official,
    convert_timm,
)

__all__ = [
    'ARCH_SETTINGS', 'TNTBlock', 'TransformerInTransformer',
    'convert_mmpretrain', 'convert_official', 'convert_timm'
]
