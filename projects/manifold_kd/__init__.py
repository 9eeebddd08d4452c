# Copyright (c) EVLab contributors.
"""Fine-grained manifold distillation for vision transformers (NeurIPS
2022) on mmpretrain 1.x. Importing this package registers its modules."""
from .distiller import ManifoldKDClassifier
from .losses import (
    ManifoldRelationLoss,
    SoftTargetKDLoss,
    align_tokens,
    inter_image_map,
    intra_image_map,
    random_rows_map,
)

__all__ = [
    'ManifoldKDClassifier', 'ManifoldRelationLoss', 'SoftTargetKDLoss',
    'align_tokens', 'inter_image_map', 'intra_image_map', 'random_rows_map'
]
