# Copyright (c) EVLab contributors.
"""Choice blocks: one place in a network where a search picks an op.

mmrazor's design (mutable choice blocks that a mutator drives), written
here for torch alone:

- :class:`OneShotChoice` holds its candidates with separate weights and
  runs one of them (single-path one-shot training, SPOS; HourNAS);
- :class:`SlicedChoice` runs one candidate too, but all candidates are
  slices of one module's weights (weight entanglement: Single-Path NAS,
  OFA, AutoFormer), so the paths train one shared representation;
- :class:`DifferentiableChoice` runs all candidates and mixes them with the
  softmax of its architecture parameters (DARTS; Hit-Detector's stage B),
  or with the parameters themselves as linear gates (Hit-Detector's
  group-sparse screening, stage A).

Both can be *fixed* to one op, which removes them from the search space: a
fixed block always runs that op. A candidate named ``'skip'`` is the
identity (the block is left out).
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn


class ChoiceBlock(nn.Module):
    """Base class: named candidates, the op chosen now, a fixed op.

    Args:
        candidates (dict[str, nn.Module]): Op name -> module, in the
            space's order.
        alias (str, optional): The block's name in genotypes (e.g. the
            position ``'3'``). Defaults to the module's path in the model,
            which the mutator fills in.
    """

    def __init__(self, candidates: Dict[str, nn.Module],
                 alias: Optional[str] = None) -> None:
        super().__init__()
        if not candidates:
            raise ValueError('a choice block needs at least one candidate')
        # ModuleDict keys cannot contain '.'; op names do not
        self.candidates = nn.ModuleDict(candidates)
        self.alias = alias
        self.fixed: Optional[str] = None
        self._chosen: Optional[str] = None

    @property
    def choices(self) -> List[str]:
        """Candidate names, in order."""
        return list(self.candidates.keys())

    def candidate_module(self, name: str) -> nn.Module:
        """A module that runs op ``name`` alone (what a cost table counts
        and a subnet inherits)."""
        self._check(name)
        return self.candidates[name]

    def candidate_modules(self) -> Dict[str, nn.Module]:
        """Op name -> :meth:`candidate_module`."""
        return {name: self.candidate_module(name) for name in self.choices}

    def _check(self, name: str) -> None:
        if name not in self.choices:
            raise ValueError(
                f'choice block {self.alias!r} has no op {name!r}; its '
                f'candidates are {self.choices}')

    @property
    def chosen(self) -> Optional[str]:
        """The op the next forward runs (the fixed op if fixed)."""
        return self.fixed if self.fixed is not None else self._chosen

    def choose(self, name: str) -> None:
        """Run ``name`` from now on (ignored in effect when fixed to
        another op: a fixed block always runs its op)."""
        self._check(name)
        if self.fixed is not None and name != self.fixed:
            raise ValueError(f'choice block {self.alias!r} is fixed to '
                             f'{self.fixed!r}; cannot choose {name!r}')
        self._chosen = name

    def fix(self, name: str) -> None:
        """Fix the block to ``name``: it leaves the search space."""
        self._check(name)
        self.fixed = self._chosen = name


class OneShotChoice(ChoiceBlock):
    """Runs the chosen candidate only (single-path one-shot).

    Before any op is chosen the block runs nothing and raises: a supernet
    forward without a path is a bug of the caller (a sampler hook that did
    not run), not something to paper over with a default.
    """

    def forward(self, *args, **kwargs):
        name = self.chosen
        if name is None:
            raise RuntimeError(
                f'choice block {self.alias!r}: no op chosen; set a path '
                f'with the mutator (or a path sampler hook) first')
        return self._run(name, *args, **kwargs)

    def _run(self, name: str, *args, **kwargs):
        return self.candidates[name](*args, **kwargs)


class SlicedChoice(OneShotChoice):
    """Single-path one-shot over candidates that share their weights.

    ``shared`` holds the weights of the largest candidate; every candidate
    runs on slices of them (a smaller kernel is the centre of the largest,
    a smaller width its first channels). The paths sampled in training
    then update one representation instead of each op its own, which is
    what lets a small supernet train in few epochs (``projects/hournas``
    measures it). The block is driven exactly like
    :class:`OneShotChoice`.

    Args:
        shared (nn.Module): Provides ``forward(x, name)``, op ``name`` on
            its slices, and ``export(name)``, a standalone module of op
            ``name`` holding copies of those slices (what the cost table
            counts and a subnet inherits).
        choices (Sequence[str]): The op names, in the space's order.
        alias (str, optional): See :class:`ChoiceBlock`.
    """

    def __init__(self, shared: nn.Module, choices: Sequence[str],
                 alias: Optional[str] = None) -> None:
        nn.Module.__init__(self)
        if not choices:
            raise ValueError('a choice block needs at least one candidate')
        for attr in ('export', 'forward'):
            if not callable(getattr(shared, attr, None)):
                raise TypeError(f'SlicedChoice: {type(shared).__name__} '
                                f'has no {attr}()')
        self.shared = shared
        self._names = list(choices)
        self.alias = alias
        self.fixed: Optional[str] = None
        self._chosen: Optional[str] = None

    @property
    def choices(self) -> List[str]:
        return list(self._names)

    def candidate_module(self, name: str) -> nn.Module:
        self._check(name)
        return self.shared.export(name)

    def _run(self, name: str, *args, **kwargs):
        return self.shared(*args, name=name, **kwargs)


class DifferentiableChoice(ChoiceBlock):
    """Mixes all candidates with ``softmax(arch_param / temperature)``
    (``mode='softmax'``, DARTS) or with ``arch_param`` itself as linear
    gates (``mode='linear'``, initialised to ``1 / N``: a group-sparsity
    penalty can drive a gate to exactly 0, which a softmax cannot).

    The architecture parameters live in ``arch_param`` (one per
    candidate), so an optimiser can tell them from the weights by name
    (``paramwise_cfg=dict(custom_keys={'arch_param': ...})``). A linear
    gate at exactly 0 skips its op. Once fixed, the block runs its op
    alone.

    Args:
        candidates (dict[str, nn.Module]): Op name -> module.
        alias (str, optional): Name in genotypes. Defaults to None.
        temperature (float): Softmax temperature. Defaults to 1.0.
        mode (str): ``'softmax'`` or ``'linear'``. Defaults to
            ``'softmax'``.
    """

    def __init__(self, candidates: Dict[str, nn.Module],
                 alias: Optional[str] = None,
                 temperature: float = 1.0, mode: str = 'softmax') -> None:
        super().__init__(candidates, alias)
        if mode not in ('softmax', 'linear'):
            raise ValueError(f"mode must be 'softmax' or 'linear', got "
                             f'{mode!r}')
        self.temperature, self.mode = temperature, mode
        n = len(candidates)
        init = 0.0 if mode == 'softmax' else 1.0 / n
        self.arch_param = nn.Parameter(torch.full((n, ), init))

    def weights(self) -> torch.Tensor:
        """Mixing weights, one per candidate (they sum to 1 with the
        softmax)."""
        if self.mode == 'linear':
            return self.arch_param
        return torch.softmax(self.arch_param / self.temperature, dim=0)

    def forward(self, *args, **kwargs):
        if self.fixed is not None:
            return self.candidates[self.fixed](*args, **kwargs)
        w = self.weights()
        off = (w.detach() == 0).tolist() if self.mode == 'linear' else \
            [False] * len(w)
        out = None
        for i, op in enumerate(self.candidates.values()):
            if off[i]:
                continue  # a pruned gate: the op costs nothing
            y = w[i] * op(*args, **kwargs)
            out = y if out is None else out + y
        if out is None:  # every gate at 0: the block outputs zeros
            first = next(iter(self.candidates.values()))
            with torch.no_grad():
                out = first(*args, **kwargs) * 0.0
        return out

    def argmax(self) -> str:
        """The candidate with the largest weight (ties: the first)."""
        return self.choices[int(torch.argmax(self.arch_param.detach()))]
