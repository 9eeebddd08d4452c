# Copyright (c) EVLab contributors.
"""Counting parameters and multiply-accumulates, and timing models side by
side, for the papers' complexity tables and the benchmarks."""
import statistics
import time
from typing import Callable, Dict, Sequence

import torch
import torch.nn as nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_conv_linear_macs(model: nn.Module,
                           inputs: Sequence[torch.Tensor]) -> int:
    """Multiply-accumulates of every ``Conv2d`` and ``Linear`` call.

    This is the convention of the efficient-CNN papers' FLOPs columns (the
    SE convs and the classifier included; BN, activations, pooling and
    additions excluded). ``model`` is run once in eval mode on ``inputs``.
    """
    total = [0]

    def conv_hook(m: nn.Conv2d, inp, out) -> None:
        k = m.kernel_size[0] * m.kernel_size[1]
        total[0] += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m: nn.Linear, inp, out) -> None:
        total[0] += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total[0]


def compare_latency(fns: Dict[str, Callable[[], object]], repeats: int = 20,
                    warmup: int = 3) -> Dict[str, float]:
    """Median seconds per call of each function, measured interleaved.

    The functions run in turn within each repeat, so drifts of the machine
    (frequency, other load) hit all of them alike.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, list] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}
