# Copyright (c) EVLab contributors.
"""Counting parameters and multiply-accumulates, measuring peak memory, and
timing models side by side, for the papers' complexity tables and the
benchmarks."""
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_conv_linear_macs(model: nn.Module,
                           inputs: Sequence[torch.Tensor],
                           exclude: Optional[Callable[[nn.Module], bool]]
                           = None) -> int:
    """Multiply-accumulates of every ``Conv2d`` and ``Linear`` call.

    This is the convention of the efficient-CNN papers' FLOPs columns (the
    SE convs and the classifier included; BN, activations, pooling and
    additions excluded). ``model`` is run once in eval mode on ``inputs``;
    layers for which ``exclude(layer)`` is true are not counted.
    """
    total = [0]

    def conv_hook(m: nn.Conv2d, inp, out) -> None:
        k = m.kernel_size[0] * m.kernel_size[1]
        total[0] += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m: nn.Linear, inp, out) -> None:
        total[0] += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if exclude is not None and exclude(m):
            continue
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


def count_macs(fn: Callable[[], object]) -> int:
    """Multiply-accumulates of every convolution and matrix product that
    ``fn()`` runs (``mm``, ``bmm``, ``addmm``, ``baddbmm``, convolutions,
    fused attention), under ``no_grad``.

    Unlike :func:`count_conv_linear_macs` this sees functional calls such
    as ``torch.bmm`` in attention. It is torch's ``FlopCounterMode`` total
    halved (that counter gives 2 FLOPs per MAC; biases, norms, softmax and
    element-wise ops are not counted).
    """
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(
            display=False, custom_mapping=_cpu_sdpa_mapping()) as counter:
        fn()
    return counter.get_total_flops() // 2


def _cpu_sdpa_mapping() -> dict:
    """FLOPs formula for the CPU kernel of ``scaled_dot_product_attention``,
    which ``FlopCounterMode`` does not know (it counts the CUDA kernels)."""
    from torch.utils.flop_counter import sdpa_flop_count
    op = getattr(torch.ops.aten,
                 '_scaled_dot_product_flash_attention_for_cpu', None)
    if op is None:
        return {}

    def formula(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    return {op: formula}


def peak_memory(fn: Callable[[], object],
                device: Union[str, torch.device] = 'cpu') -> int:
    """Peak bytes of tensor memory that ``fn()`` allocates on top of what
    was allocated before it, measured in this process.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset. CPU: the
    running sum of the allocation and free events of torch's CPU allocator,
    as recorded by ``torch.profiler`` with ``profile_memory=True`` (exact
    for tensors; scratch memory that a library such as oneDNN allocates
    outside torch is not seen).
    """
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        fn()
    events = [
        e for e in prof.profiler.kineto_results.events()
        if e.name() == '[memory]'
        and e.device_type() == torch.autograd.DeviceType.CPU
    ]
    events.sort(key=lambda e: e.start_ns())  # stable: keeps record order
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def latency_samples(fns: Dict[str, Callable[[], object]],
                    repeats: int = 20, warmup: int = 3,
                    sync: Optional[Callable[[], None]] = None
                    ) -> Dict[str, List[float]]:
    """Seconds of each call of each function, measured interleaved.

    The functions run in turn within each repeat, so drifts of the machine
    (frequency, other load) hit all of them alike. ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before each clock reading.
    """
    sync = sync or (lambda: None)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, list] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return times


def summarize(samples: Sequence[float]) -> Dict[str, float]:
    """Median, quartiles, mean and standard deviation of ``samples``."""
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else \
        [samples[0]] * 3
    return dict(median=statistics.median(samples), p25=q[0], p75=q[2],
                mean=statistics.fmean(samples),
                std=statistics.pstdev(samples), n=len(samples))


def compare_latency(fns: Dict[str, Callable[[], object]], repeats: int = 20,
                    warmup: int = 3) -> Dict[str, float]:
    """Median seconds per call of each function, measured interleaved
    (:func:`latency_samples`)."""
    times = latency_samples(fns, repeats, warmup)
    return {name: statistics.median(ts) for name, ts in times.items()}
