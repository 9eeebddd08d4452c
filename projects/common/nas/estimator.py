# Copyright (c) EVLab contributors.
"""Per-choice cost table: the MACs and parameters of every candidate op of
every choice block, and of the part of the network that no choice touches.

A network's cost is then ``fixed + sum of its ops' costs``, which a search
evaluates in microseconds for every candidate it considers. An op that has
an ``analytic_macs(input_shape)`` method is costed by its formula (a
budget should not depend on a counter's conventions); any other op is
counted once by running it alone on its input shape. The tests check that
the two agree per op.

MACs follow :func:`projects.common.complexity.count_conv_linear_macs`:
every convolution and linear layer, nothing else.
"""
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..complexity import count_conv_linear_macs, count_params
from .mutator import Mutator


@dataclass
class CostTable:
    """Costs of a search space.

    Attributes:
        fixed_macs (int): MACs outside all choice blocks.
        fixed_params (int): Parameters outside all choice blocks.
        ops (dict): ``alias -> op -> {'macs': int, 'params': int}``.
        input_shapes (dict): ``alias -> input shape`` the ops were costed
            at.
    """
    fixed_macs: int
    fixed_params: int
    ops: Dict[str, Dict[str, Dict[str, int]]]
    input_shapes: Dict[str, Tuple[int, ...]] = field(default_factory=dict)

    def check(self, genotype: Mapping[str, str]) -> None:
        """Raise a ValueError naming a block or op the table lacks, or a
        block the genotype misses."""
        for k, op in genotype.items():
            if k not in self.ops:
                raise ValueError(f'cost table has no choice block {k!r}; '
                                 f'it has {list(self.ops)}')
            if op not in self.ops[k]:
                raise ValueError(f'cost table: block {k!r} has no op '
                                 f'{op!r}; it has {list(self.ops[k])}')
        missing = [k for k in self.ops if k not in genotype]
        if missing:
            raise ValueError(f'genotype misses choice blocks {missing}')

    def macs(self, genotype: Mapping[str, str]) -> int:
        """MACs of the network ``genotype`` describes."""
        self.check(genotype)
        return self.fixed_macs + sum(self.ops[k][op]['macs']
                                     for k, op in genotype.items())

    def params(self, genotype: Mapping[str, str]) -> int:
        """Parameters of the network ``genotype`` describes."""
        self.check(genotype)
        return self.fixed_params + sum(self.ops[k][op]['params']
                                       for k, op in genotype.items())

    def extreme_macs(self, space: Mapping[str, Sequence[str]],
                     largest: bool = False) -> int:
        """MACs of the cheapest (or the most expensive) network whose
        block ``k`` takes one of ``space[k]`` (blocks not named: their
        cheapest, or most expensive, op)."""
        pick = max if largest else min
        total = self.fixed_macs
        for k, costs in self.ops.items():
            names = space.get(k, list(costs))
            total += pick(costs[op]['macs'] for op in names)
        return total

    def to_dict(self) -> dict:
        return dict(fixed_macs=self.fixed_macs,
                    fixed_params=self.fixed_params, ops=self.ops,
                    input_shapes={k: list(v) for k, v in
                                  self.input_shapes.items()})


def _op_macs(op: nn.Module, shape: Tuple[int, ...],
             like: torch.Tensor) -> int:
    analytic = getattr(op, 'analytic_macs', None)
    if analytic is not None:
        return int(analytic(shape))
    return count_conv_linear_macs(op, [like.new_zeros(shape)])


def build_cost_table(model: nn.Module, inputs: Sequence[torch.Tensor],
                     mutator: Optional[Mutator] = None) -> CostTable:
    """Cost every candidate op of every choice block of ``model``.

    ``model(*inputs)`` runs once (eval mode; one-shot blocks run their
    current op, or their first candidate if they have none) to record each
    block's input shape and to count the layers outside all choice blocks;
    the candidates of a block must all take that shape, as in a chain of
    blocks with fixed widths. ``inputs`` should be a batch of one; they are
    moved to the device and dtype of the model's parameters.

    Args:
        model (nn.Module): A model with choice blocks.
        inputs (Sequence[torch.Tensor]): Its forward's arguments.
        mutator (Mutator, optional): The model's mutator. Defaults to a
            new one.
    """
    mutator = mutator or Mutator(model)
    param = next(model.parameters(), None)
    if param is not None:
        inputs = [x.to(param.device, param.dtype) for x in inputs]
    like = inputs[0]
    before = {k: b._chosen for k, b in mutator.blocks.items()}
    shapes: Dict[str, Tuple[int, ...]] = {}

    def record(alias):
        def hook(module, args, kwargs):
            x = args[0] if args else next(iter(kwargs.values()))
            shapes.setdefault(alias, tuple(x.shape))
        return hook

    inside = {id(m) for b in mutator.blocks.values() for m in b.modules()}
    handles = [b.register_forward_pre_hook(record(k), with_kwargs=True)
               for k, b in mutator.blocks.items()]
    try:
        for b in mutator.blocks.values():
            if b.chosen is None:
                b.choose(b.choices[0])
        fixed_macs = count_conv_linear_macs(
            model, inputs, exclude=lambda m: id(m) in inside)
    finally:
        for h in handles:
            h.remove()
        for k, b in mutator.blocks.items():
            b._chosen = before[k]
    missing = [k for k in mutator.blocks if k not in shapes]
    if missing:
        raise ValueError(f'choice blocks {missing} did not run in the '
                         f'forward used to cost the space')
    ops: Dict[str, Dict[str, Dict[str, int]]] = {}
    for k, b in mutator.blocks.items():
        ops[k] = {name: dict(macs=_op_macs(op, shapes[k], like),
                             params=count_params(op))
                  for name, op in b.candidate_modules().items()}
    in_blocks = {id(p) for b in mutator.blocks.values()
                 for p in b.parameters()}
    fixed_params = sum(p.numel() for p in model.parameters()
                       if id(p) not in in_blocks)
    return CostTable(fixed_macs, fixed_params, ops, shapes)
