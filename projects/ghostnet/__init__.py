# Copyright (c) EVLab contributors.
"""GhostNet (CVPR 2020) for mmpretrain; usable from mmdet / mmseg configs
as ``type='mmpretrain.GhostNet'``."""
from .ghostnet import (
    GhostBottleneck,
    GhostModule,
    GhostNet,
    convert_official,
    make_divisible,
)

__all__ = [
    'GhostBottleneck', 'GhostModule', 'GhostNet', 'convert_official',
    'make_divisible'
]
