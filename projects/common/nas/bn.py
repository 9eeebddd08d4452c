# Copyright (c) EVLab contributors.
"""Batch-norm recalibration before a subnet is scored.

A supernet's BN statistics mix the many paths trained through it; scored
with them, a subnet looks worse than it is and the ranking of subnets
suffers (SPOS). Before scoring, the running statistics are reset and
re-estimated on training batches with the subnet's own path, as a
cumulative average (``momentum=None``), without gradients.
"""
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


def recalibrate_bn(model: nn.Module, batches: Iterable[Any],
                   forward: Callable[[Any], Any]) -> int:
    """Re-estimate every BN layer's running statistics of ``model``.

    Args:
        model (nn.Module): The model, its path set.
        batches (Iterable): Training batches (the same ones for every
            subnet of a search, so that scores are comparable).
        forward (Callable): Runs the model on one batch (e.g.
            ``lambda b: model(model.data_preprocessor(b)['inputs'])``).

    Returns:
        int: The number of batches forwarded. The model is left in eval
        mode, with the momenta it had.
    """
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    n = 0
    try:
        with torch.no_grad():
            for batch in batches:
                forward(batch)
                n += 1
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.eval()
    if n == 0:
        raise ValueError('BN recalibration got no batch')
    return n
