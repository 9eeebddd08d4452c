# Copyright (c) EVLab contributors.
"""P2Net (ICCV 2019) and person re-identification for mmpretrain: the
Market-1501 / DukeMTMC-reID datasets, part maps in the pipeline, the P x K
sampler, the Dual Part-aligned Block and the exact query/gallery
evaluation (:mod:`projects.p2net.metric`)."""
from .datasets import DukeMTMCReID, Market1501
from .dpb import DualPartAlignedBlock, masked_part_mean, resize_part_map
from .metric import (
    QueryGalleryReIDMetric,
    RankResult,
    ReIDEvalError,
    draw_ranked_list,
    evaluate_features,
    evaluate_rank,
    re_ranking,
)
from .model import BatchHardTripletLoss, P2NetClsHead, P2NetReID
from .sampler import PKSampler
from .transforms import LoadPartMap, PackP2NetInputs

__all__ = [
    'BatchHardTripletLoss', 'DualPartAlignedBlock', 'DukeMTMCReID',
    'LoadPartMap', 'Market1501', 'P2NetClsHead', 'P2NetReID', 'PKSampler',
    'PackP2NetInputs', 'QueryGalleryReIDMetric', 'RankResult',
    'ReIDEvalError', 'draw_ranked_list', 'evaluate_features',
    'evaluate_rank', 're_ranking', 'masked_part_mean', 'resize_part_map'
]
