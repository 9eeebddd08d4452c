# Copyright (c) EVLab contributors.
"""HourNAS (CVPR 2021) on EVLab's NAS core: the HourNAS networks, the
vital-first two-stage search (hooks and loops) and the space shrinker.
Importing it registers everything into mmpretrain's registries."""
import projects.common.nas  # noqa: F401  (registers the core)

from .model import (
    DropoutLinearClsHead,
    HNMBConv,
    HourNASNet,
    HourNASSupernet,
    subnet_state_dict,
)
from .search import HourNASEvolutionLoop, HourNASPathSamplerHook
from .space import HOURNAS_F, OPS, BlockSpec, find_vital

__all__ = [
    'BlockSpec', 'DropoutLinearClsHead', 'HNMBConv', 'HOURNAS_F',
    'HourNASEvolutionLoop', 'HourNASNet', 'HourNASPathSamplerHook',
    'HourNASSupernet', 'OPS', 'find_vital',
    'subnet_state_dict'
]
