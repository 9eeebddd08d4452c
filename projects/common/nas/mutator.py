# Copyright (c) EVLab contributors.
"""The mutator: lists, samples, sets, fixes and exports the choices of any
model that contains :class:`~.mutables.ChoiceBlock` modules (mmrazor's
mutator, as a plain class over ``named_modules``).

A *genotype* is a dict ``alias -> op name``; the aliases are the blocks'
``alias`` attributes (HourNAS: the position, ``'0'`` ... ``'21'``) or
their module paths. A genotype names every block, fixed ones included, so
that it describes the network alone.
"""
import random
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional

import torch.nn as nn

from .mutables import ChoiceBlock, DifferentiableChoice

Genotype = Dict[str, str]


class Mutator:
    """Drives the choice blocks of ``model``.

    Args:
        model (nn.Module): A model with choice blocks anywhere inside
            (a wrapper such as DDP is looked through).

    Raises:
        ValueError: The model has no choice block, or two blocks share an
            alias.
    """

    def __init__(self, model: nn.Module) -> None:
        model = getattr(model, 'module', model)
        self.blocks: OrderedDict[str, ChoiceBlock] = OrderedDict()
        for path, m in model.named_modules():
            if isinstance(m, ChoiceBlock):
                if m.alias is None:
                    m.alias = path
                if m.alias in self.blocks:
                    raise ValueError(f'two choice blocks share the alias '
                                     f'{m.alias!r}')
                self.blocks[m.alias] = m
        if not self.blocks:
            raise ValueError(f'{type(model).__name__} has no choice block '
                             f'to search')

    # the space -------------------------------------------------------
    def search_space(self) -> 'OrderedDict[str, List[str]]':
        """Alias -> candidate names, for the blocks that are not fixed."""
        return OrderedDict((k, b.choices) for k, b in self.blocks.items()
                           if b.fixed is None)

    def full_space(self) -> 'OrderedDict[str, List[str]]':
        """Alias -> candidate names of every block (fixed: its op only)."""
        return OrderedDict(
            (k, [b.fixed] if b.fixed is not None else b.choices)
            for k, b in self.blocks.items())

    def fixed(self) -> Genotype:
        """Alias -> op of the fixed blocks."""
        return {k: b.fixed for k, b in self.blocks.items()
                if b.fixed is not None}

    # checking --------------------------------------------------------
    def validate(self, genotype: Mapping[str, str],
                 partial: bool = False) -> None:
        """Raise a ValueError that names what is wrong with ``genotype``:
        an unknown alias, a missing one (unless ``partial``), an op the
        block lacks, or an op other than a fixed block's."""
        unknown = [k for k in genotype if k not in self.blocks]
        if unknown:
            raise ValueError(
                f'genotype names choice blocks the model lacks: {unknown}; '
                f'the model has {list(self.blocks)}')
        if not partial:
            missing = [k for k in self.blocks if k not in genotype]
            if missing:
                raise ValueError(
                    f'genotype has {len(genotype)} entries, the space '
                    f'{len(self.blocks)}: missing {missing}')
        for k, op in genotype.items():
            block = self.blocks[k]
            if op not in block.choices:
                raise ValueError(
                    f'genotype: block {k!r} has no op {op!r}; its '
                    f'candidates are {block.choices}')
            if block.fixed is not None and op != block.fixed:
                raise ValueError(f'genotype: block {k!r} is fixed to '
                                 f'{block.fixed!r}, got {op!r}')

    # setting ---------------------------------------------------------
    def set(self, genotype: Mapping[str, str], partial: bool = False
            ) -> None:
        """Make the model run ``genotype`` (fixed blocks may be omitted
        or given their own op)."""
        genotype = {**self.fixed(), **genotype}
        self.validate(genotype, partial)
        for k, op in genotype.items():
            self.blocks[k].choose(op)

    def fix(self, genotype: Mapping[str, str]) -> None:
        """Fix the named blocks to their ops: they leave the space."""
        self.validate(genotype, partial=True)
        for k, op in genotype.items():
            self.blocks[k].fix(op)

    def sample(self, rng: random.Random,
               probs: Optional[Mapping[str, Mapping[str, float]]] = None
               ) -> Genotype:
        """Draw one op per free block (uniform, or from ``probs[alias]``
        where given; ops missing from ``probs[alias]`` have probability 0),
        set it and return the full genotype."""
        genotype = dict(self.fixed())
        for k, choices in self.search_space().items():
            dist = (probs or {}).get(k)
            if dist is None:
                genotype[k] = choices[rng.randrange(len(choices))]
                continue
            weights = [float(dist.get(op, 0.0)) for op in choices]
            if sum(weights) <= 0:
                raise ValueError(f'sampling probabilities of block {k!r} '
                                 f'give no candidate a positive weight')
            genotype[k] = rng.choices(choices, weights=weights)[0]
        self.set(genotype)
        return genotype

    def current(self) -> Genotype:
        """The genotype the model runs now (raises if a block has no op
        yet)."""
        out = {}
        for k, b in self.blocks.items():
            if b.chosen is None:
                raise ValueError(f'choice block {k!r} has no op chosen')
            out[k] = b.chosen
        return out

    def export(self) -> Genotype:
        """The architecture to deploy: the chosen op of one-shot blocks,
        the largest-weight op of differentiable ones."""
        out = {}
        for k, b in self.blocks.items():
            if isinstance(b, DifferentiableChoice) and b.fixed is None:
                out[k] = b.argmax()
            elif b.chosen is None:
                raise ValueError(f'choice block {k!r} has no op chosen')
            else:
                out[k] = b.chosen
        return out

    def arch_parameters(self) -> List[nn.Parameter]:
        """The architecture parameters of the differentiable blocks."""
        return [b.arch_param for b in self.blocks.values()
                if isinstance(b, DifferentiableChoice)]
