# Copyright (c) EVLab contributors.
"""Patch Slimming (CVPR 2022) on mmpretrain 1.x: static top-down patch
pruning of vision transformers. Importing this package registers its
modules."""
from .distiller import PatchSlimDistillClassifier
from .flops import block_macs, model_macs, vit_macs
from .io import load_keep_indices, save_keep_indices
from .search import PatchSlimSearchLoop
from .vit import PatchSlimViT, check_keep_mask, keep_lists_to_mask

__all__ = [
    'PatchSlimDistillClassifier', 'PatchSlimSearchLoop', 'PatchSlimViT',
    'block_macs', 'check_keep_mask', 'keep_lists_to_mask',
    'load_keep_indices', 'model_macs', 'save_keep_indices', 'vit_macs'
]
