# Copyright (c) EVLab contributors.
"""Fine-grained manifold distillation for vision transformers (NeurIPS
2022) on mmpretrain 1.x. Importing this package registers its modules."""
from .distiller import ManifoldKDClassifier
from .hybrid_vit import CNNPatchEmbed, HybridVisionTransformer
from .losses import (
    ManifoldRelationLoss,
    SoftTargetKDLoss,
    align_tokens,
    inter_image_map,
    intra_image_map,
    plain_relation_terms,
    random_rows_map,
    relation_mse,
)

__all__ = [
    'CNNPatchEmbed', 'HybridVisionTransformer', 'ManifoldKDClassifier',
    'ManifoldRelationLoss', 'SoftTargetKDLoss', 'align_tokens',
    'inter_image_map', 'intra_image_map', 'plain_relation_terms',
    'random_rows_map', 'relation_mse'
]
