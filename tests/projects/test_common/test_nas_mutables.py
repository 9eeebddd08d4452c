# Copyright (c) EVLab contributors.
"""The NAS core's choice blocks on plain torch modules (no host library):
a :class:`SlicedChoice` is driven like a :class:`OneShotChoice`."""
import random

import pytest
import torch
import torch.nn as nn

from projects.common.nas import (
    Mutator,
    OneShotChoice,
    SlicedChoice,
    build_cost_table,
)


class _SharedLinear(nn.Module):
    """Ops ``w<n>``: the first ``n`` output features of one linear."""

    def __init__(self, c_in: int, widths) -> None:
        super().__init__()
        self.widths = {f'w{n}': n for n in widths}
        self.largest = nn.Linear(c_in, max(widths), bias=False)

    def forward(self, x, name):
        return x @ self.largest.weight[:self.widths[name]].t()

    def export(self, name):
        n = self.widths[name]
        op = nn.Linear(self.largest.in_features, n, bias=False)
        op.weight.data.copy_(self.largest.weight.data[:n])
        return op


class _Pad(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def forward(self, x):
        return nn.functional.pad(x, (0, self.width - x.shape[-1]))


def _nets():
    torch.manual_seed(0)
    shared = SlicedChoice(_SharedLinear(3, (2, 4)), ['w2', 'w4'], 'a')
    separate = OneShotChoice({'w2': nn.Linear(3, 2, bias=False),
                              'w4': nn.Linear(3, 4, bias=False)}, 'a')
    return (nn.Sequential(shared, _Pad(4), nn.Linear(4, 1)),
            nn.Sequential(separate, _Pad(4), nn.Linear(4, 1)))


def test_sliced_choice_runs_the_slices_of_the_chosen_op():
    net, _ = _nets()
    block = net[0]
    mutator = Mutator(net)
    assert mutator.search_space() == {'a': ['w2', 'w4']}
    x = torch.randn(5, 3)
    w = block.shared.largest.weight
    mutator.set({'a': 'w2'})
    assert torch.equal(block(x), x @ w[:2].t())
    assert torch.equal(block(x), block.candidate_module('w2')(x))
    mutator.set({'a': 'w4'})
    assert torch.equal(block(x), x @ w.t())
    # one set of weights: the block's parameters are the largest op's
    assert [p.shape for p in block.parameters()] == [(4, 3)]
    with pytest.raises(ValueError, match="block 'a' has no op 'w3'"):
        mutator.set({'a': 'w3'})
    block._chosen = None
    with pytest.raises(RuntimeError, match='no op chosen'):
        block(x)
    with pytest.raises(TypeError, match='has no export'):
        SlicedChoice(nn.Linear(3, 4), ['w4'])


def test_sliced_and_separate_choices_cost_the_same():
    shared, separate = _nets()
    x = torch.zeros(1, 3)
    a, b = build_cost_table(shared, [x]), build_cost_table(separate, [x])
    assert a.ops == b.ops == {'a': {'w2': dict(macs=6, params=6),
                                    'w4': dict(macs=12, params=12)}}
    assert a.fixed_macs == b.fixed_macs == 4


def test_sampled_paths_train_the_shared_weights():
    net, _ = _nets()
    mutator = Mutator(net)
    rng = random.Random(0)
    w = net[0].shared.largest.weight
    before = w.detach().clone()
    for _ in range(4):
        mutator.sample(rng)
        net.zero_grad()
        net(torch.randn(8, 3)).sum().backward()
        with torch.no_grad():
            w -= 0.1 * w.grad
    assert not torch.equal(w[:2], before[:2])
