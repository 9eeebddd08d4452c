# Copyright (c) EVLab contributors.
"""DeFeat (CVPR 2021): detector distillation through decoupled features,
for mmdet 3.x. Importing this package registers its modules."""
from .distiller import DeFeatDistiller
from .hooks import DeFeatLossDecayHook
from .losses import DecoupledDenseKLLoss, DecoupledFeatLoss, DecoupledRoIKLLoss
from .masks import assign_levels, gt_level_masks

__all__ = [
    'DeFeatDistiller', 'DeFeatLossDecayHook', 'DecoupledDenseKLLoss',
    'DecoupledFeatLoss', 'DecoupledRoIKLLoss', 'assign_levels',
    'gt_level_masks'
]
