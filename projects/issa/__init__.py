# Copyright (c) EVLab contributors.
"""Interlaced Sparse Self-Attention (ISA, arXiv 1907.12273) for mmseg:
the reusable attention modules and the ``ISSAHead`` decode head, registered
in mmseg's ``MODELS``."""
from .issa import (
    DenseSelfAttention,
    InterlacedSparseSelfAttention,
    ISSABlock,
    ISSAHead,
    interlaced_attention,
    isa_cost,
)
from .partition import (
    PartitionMeta,
    long_to_map,
    long_to_short,
    partition_meta,
    short_to_long,
    short_to_map,
    to_long_groups,
    to_short_groups,
)

__all__ = [
    'DenseSelfAttention', 'ISSABlock', 'ISSAHead',
    'InterlacedSparseSelfAttention', 'PartitionMeta', 'interlaced_attention',
    'isa_cost', 'long_to_map', 'long_to_short', 'partition_meta',
    'short_to_long', 'short_to_map', 'to_long_groups', 'to_short_groups'
]
