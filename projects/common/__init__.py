# Copyright (c) EVLab contributors.
"""Code shared by several EVLab projects and by the tools."""
from .checkpoint import (
    AtomicLocalBackend,
    CheckpointError,
    install,
    safe_load,
    use_atomic_checkpoints,
)
from .errors import EVLabError
from .hooks import ProgressBarHook

__all__ = [
    'AtomicLocalBackend', 'CheckpointError', 'EVLabError',
    'ProgressBarHook', 'install', 'safe_load', 'use_atomic_checkpoints'
]
