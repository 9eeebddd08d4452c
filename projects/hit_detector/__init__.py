# Copyright (c) EVLab contributors.
"""Hit-Detector (CVPR 2020) on EVLab's NAS core: the released detector
(backbone in mmpretrain, neck and box head in mmdet) and its operators.
Importing it registers everything into the host libraries' registries."""
import projects.common.nas  # noqa: F401  (registers the core)

from .models import (
    HIT_BACKBONE,
    HIT_HEAD,
    HIT_NECK,
    HitBackbone,
    HitBBoxHead,
    HitPAFPN,
    check_genotype,
)
from .ops import (
    HEAD_OPS,
    NECK_OPS,
    Conv1x1BN,
    ConvBNAct,
    InvertedResidual,
    SepConv,
    build_op,
    op_macs,
    op_params,
    parse_op_name,
)
from .search import (
    WHOLE_SPACE,
    HalfSplitSampler,
    HitDetSearcher,
    HitSearchExportHook,
    HitSearchLoop,
    HitSearchOptimWrapperConstructor,
    HitSuperBackbone,
    HitSuperBBoxHead,
    HitSuperPAFPN,
    genotype_to_config,
    proximal_group_shrink,
)

__all__ = [
    'WHOLE_SPACE', 'HalfSplitSampler', 'HitDetSearcher',
    'HitSearchExportHook', 'HitSearchLoop',
    'HitSearchOptimWrapperConstructor', 'HitSuperBackbone',
    'HitSuperBBoxHead', 'HitSuperPAFPN', 'genotype_to_config',
    'proximal_group_shrink', 'HEAD_OPS', 'HIT_BACKBONE', 'HIT_HEAD',
    'HIT_NECK', 'NECK_OPS',
    'Conv1x1BN', 'ConvBNAct', 'HitBBoxHead', 'HitBackbone', 'HitPAFPN',
    'InvertedResidual', 'SepConv', 'build_op', 'check_genotype', 'op_macs',
    'op_params', 'parse_op_name'
]
