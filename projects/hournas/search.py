# Copyright (c) EVLab contributors.
"""HourNAS's two search stages on the NAS core (spec 2.3-2.5).

Stage 1 trains the vital-only supernet with
:class:`~projects.common.nas.SinglePathSamplerHook` and searches it with
:class:`HourNASEvolutionLoop` ``stage=1``: a vital configuration is
feasible when the cheapest completion of the non-vital positions still
fits the budget (``F_fixed + F_vital + sum_i min_o f_io <= B``).

Stage 2 starts from stage 1's weights with the vital ops fixed.
:class:`HourNASPathSamplerHook` first shrinks the non-vital space to what
the remaining budget affords (:func:`.shrink.shrink_space`, written to
``space.json``), then draws paths from it, redrawing those above the
budget. :class:`HourNASEvolutionLoop` ``stage=2`` searches the shrunk
space with ``0.9 B <= F <= B`` and mutations drawn from the shrunk
distribution.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS, LOOPS

from projects.common.nas.estimator import CostTable, build_cost_table
from projects.common.nas.export import save_json
from projects.common.nas.hooks import SinglePathSamplerHook, load_probs
from projects.common.nas.loops import EvolutionSearchLoop
from projects.common.nas.mutator import Mutator

from .shrink import shrink_space

SPACE_FILE = 'space.json'
SAMPLINGS = ('shrunk', 'uniform')


def sampling_probs(probs: Dict[str, Dict[str, float]],
                   sampling: str) -> Dict[str, Dict[str, float]]:
    """The distribution stage 2 draws non-vital ops from.

    ``'shrunk'`` is the shrinker's own ``p_i`` (spec 2.4 step 2);
    ``'uniform'`` keeps the shrunk space (the ops the shrinker kept) but
    draws them uniformly, so an expensive op the shrinker made rare is
    trained and proposed as often as a cheap one (paths above the budget
    are still redrawn or rejected).
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f'sampling must be one of {SAMPLINGS}, got '
                         f'{sampling!r}')
    if sampling == 'shrunk':
        return probs
    return {k: {op: 1.0 / len(ops) for op in ops}
            for k, ops in ((k, [op for op, p in v.items() if p > 0])
                           for k, v in probs.items())}


def _non_vital(model) -> List[int]:
    backbone = getattr(model, 'backbone', model)
    return [i for i in range(len(backbone.chain)) if i not in backbone.vital]


def _vital_cost(table: CostTable, mutator: Mutator,
                non_vital: Sequence[int]) -> int:
    """``F_fixed + F_vital``: the table's fixed part plus the fixed ops of
    the vital blocks."""
    fixed = mutator.fixed()
    return table.fixed_macs + sum(
        table.ops[k][op]['macs'] for k, op in fixed.items()
        if int(k) not in non_vital)


def shrink(table: CostTable, mutator: Mutator, non_vital: Sequence[int],
           budget: int, **kwargs) -> Tuple[Dict, dict]:
    """Run the shrinker on the non-vital positions of ``mutator``'s model.

    Returns:
        tuple: ``probs`` (alias -> op -> p, dropped ops absent) and the
        JSON record for ``space.json``.
    """
    free_vital = [k for k, b in mutator.blocks.items()
                  if int(k) not in non_vital and b.fixed is None]
    if free_vital:
        raise ValueError(f'the space shrinker needs the vital blocks fixed '
                         f'(stage 1\'s result); {free_vital} are free')
    aliases = [str(i) for i in non_vital]
    base = _vital_cost(table, mutator, non_vital)
    smallest = base + sum(min(table.ops[k][op]['macs'] for op in
                              mutator.blocks[k].choices) for k in aliases)
    if smallest > budget:
        raise ValueError(
            f'budget {budget:,} MACs is below the smallest network with '
            f'these vital ops ({smallest:,} MACs)')
    rest = budget - base
    fixed = [k for k in aliases if mutator.blocks[k].fixed is not None]
    if fixed:
        raise ValueError(f'the space shrinker needs free non-vital blocks; '
                         f'{fixed} are fixed (a vital-only supernet?)')
    ops = {k: mutator.blocks[k].choices for k in aliases}
    costs = [[table.ops[k][op]['macs'] for op in ops[k]] for k in aliases]
    result = shrink_space(costs, rest, **kwargs)
    probs = {k: {op: p for op, p in zip(ops[k], result.probs[j]) if p > 0}
             for j, k in enumerate(aliases)}
    record = dict(budget=budget, remaining_budget=rest, probs=probs,
                  dropped={k: [op for op in ops[k] if op not in probs[k]]
                           for k in aliases},
                  shrinker=result.to_dict())
    return probs, record


@HOOKS.register_module()
class HourNASPathSamplerHook(SinglePathSamplerHook):
    """Stage 2's sampler: shrink the non-vital space to the budget, write
    ``space.json`` to the work dir, then draw paths from it (spec 2.4).

    Args:
        budget (int): ``B`` in MACs (at ``input_shape``).
        input_shape (Sequence[int]): Defaults to ``(1, 3, 224, 224)``.
        shrink_cfg (dict, optional): :func:`.shrink.shrink_space`'s
            arguments (tau, eta, lam, lr, steps, min_prob). Defaults to
            None (the spec's values).
        max_resample (int): Defaults to 10.
        seed (int, optional): Defaults to the run's seed.
        sampling (str): ``'shrunk'`` draws from the shrinker's ``p_i``
            (the spec's reading); ``'uniform'`` draws the kept ops
            uniformly (:func:`sampling_probs`). Defaults to ``'shrunk'``.
    """

    def __init__(self, budget: int,
                 input_shape: Sequence[int] = (1, 3, 224, 224),
                 shrink_cfg: Optional[dict] = None, max_resample: int = 10,
                 seed: Optional[int] = None,
                 sampling: str = 'shrunk') -> None:
        super().__init__(None, budget, input_shape, max_resample, seed)
        sampling_probs({}, sampling)  # check it now, not after training
        self.budget = budget
        self.shrink_cfg = dict(shrink_cfg or {})
        self.sampling = sampling

    def before_train(self, runner) -> None:
        model = self._model(runner)
        mutator = Mutator(model)
        table = build_cost_table(model, [torch.zeros(self.input_shape)],
                                 mutator)
        # every rank shrinks (deterministic, on the CPU), so an error
        # stops all of them; rank 0's result is the one used
        _, record = shrink(table, mutator, _non_vital(model), self.budget,
                           **self.shrink_cfg)
        shared = [record]
        broadcast_object_list(shared)
        record = shared[0]
        if is_main_process():
            path = osp.join(runner.work_dir, SPACE_FILE)
            save_json(path, record)
            f = record['shrinker']['feasibility']
            print_log(f'shrunk the non-vital space to the remaining '
                      f'budget {record["remaining_budget"]:,} MACs: '
                      f'P(path fits) = {f:.3f}; dropped '
                      f'{sum(map(len, record["dropped"].values()))} '
                      f'ops; written to {path}; {self.sampling} '
                      f'sampling', logger='current')
        self.probs_cfg = sampling_probs(record['probs'], self.sampling)
        super().before_train(runner)


@LOOPS.register_module()
class HourNASEvolutionLoop(EvolutionSearchLoop):
    """HourNAS's evolution search (spec 2.3 step 3, 2.4 step 3).

    Args:
        stage (int): 1 (vital-only supernet: constraint on the cheapest
            completion) or 2 (non-vital search in the shrunk space:
            ``low_ratio * B <= F <= B``).
        budget (int): ``B`` in MACs.
        low_ratio (float): Stage 2's lower bound. Defaults to 0.9.
        space_file (str, optional): Stage 2: the shrunk space (the
            ``space.json`` stage 2's supernet training wrote). Defaults to
            None (unshrunk, uniform).
        sampling (str): Stage 2: how mutations and the first population
            draw the non-vital ops of the shrunk space, ``'shrunk'`` or
            ``'uniform'`` (:func:`sampling_probs`); set it as stage 2's
            supernet training did. Defaults to ``'shrunk'``.
        **kwargs: :class:`EvolutionSearchLoop`'s arguments.
    """

    def __init__(self, runner, dataloader, stage: int, budget: int,
                 low_ratio: float = 0.9, space_file: Optional[str] = None,
                 sampling: str = 'shrunk', **kwargs) -> None:
        if stage not in (1, 2):
            raise ValueError(f'stage must be 1 or 2, got {stage!r}')
        sampling_probs({}, sampling)
        self.sampling = sampling
        super().__init__(runner, dataloader, max_macs=budget,
                         probs=space_file, **kwargs)
        self.stage, self.budget, self.low_ratio = stage, budget, low_ratio

    def macs_bounds(self, table: CostTable, mutator: Mutator):
        low = int(self.low_ratio * self.budget)
        if self.stage == 2:
            return low, self.budget, 0, 0
        # stage 1: the non-vital blocks are skipped here; a vital choice is
        # feasible when its cheapest completion fits B and its dearest one
        # reaches stage 2's lower bound
        backbone = getattr(self.model, 'backbone', self.model)
        cheapest = dearest = 0
        for i in _non_vital(self.model):
            ops = [op for op in mutator.blocks[str(i)].choices
                   if op != 'skip']
            costs = [table.ops[str(i)][op]['macs'] for op in ops]
            cheapest += 0 if getattr(backbone, 'allow_skip', False) \
                else min(costs)
            dearest += max(costs)
        return low, self.budget, cheapest, dearest

    def search_probs(self, mutator: Mutator) -> Optional[Dict]:
        if self.stage == 1 or self.probs_cfg is None:
            return None
        return sampling_probs(load_probs(self.probs_cfg), self.sampling)

    def extra_results(self, genotype) -> dict:
        vital = getattr(self.model, 'backbone', self.model).vital
        return dict(stage=self.stage,
                    vital={str(i): genotype[str(i)] for i in vital})
