# Copyright (c) EVLab contributors.
"""Single-path supernet training: a hook that sets a path before every
training iteration (SPOS)."""
import json
import os.path as osp
import random
from typing import Dict, Mapping, Optional, Sequence, Union

import torch
from mmengine.dist import (
    all_gather_object,
    broadcast_object_list,
    get_world_size,
)
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from .estimator import CostTable, build_cost_table
from .mutator import Genotype, Mutator

Probs = Dict[str, Dict[str, float]]


def load_probs(probs: Union[None, str, Mapping]) -> Optional[Probs]:
    """Sampling probabilities from a dict or a JSON file with a ``probs``
    key (``space.json`` of a space shrinker)."""
    if probs is None or isinstance(probs, Mapping):
        return None if probs is None else {
            str(k): dict(v) for k, v in probs.items()}
    if not osp.isfile(probs):
        raise FileNotFoundError(f'sampling probabilities file {probs!r} '
                                f'does not exist')
    with open(probs) as f:
        data = json.load(f)
    if 'probs' not in data:
        raise ValueError(f'{probs!r} has no "probs" key')
    return {str(k): dict(v) for k, v in data['probs'].items()}


@HOOKS.register_module()
class SinglePathSamplerHook(Hook):
    """Draw one op per free choice block before each training iteration.

    The draw is seeded by ``(seed, iteration)``, so every rank of a
    distributed run trains the same path (DDP then reduces the gradients of
    the same parameters; set ``find_unused_parameters=True``), and a
    resumed run draws the paths the uninterrupted one would have.

    Args:
        probs (dict | str, optional): ``alias -> op -> probability``, or a
            JSON file holding it under ``probs``; blocks not named are
            uniform. Defaults to None (uniform).
        max_macs (int, optional): Redraw a path whose MACs exceed this,
            up to ``max_resample`` times. Defaults to None.
        input_shape (Sequence[int]): Input of the MACs estimate. Defaults
            to ``(1, 3, 224, 224)``.
        max_resample (int): Redraws per iteration. Defaults to 10.
        seed (int, optional): Defaults to the run's seed.
    """

    priority = 'HIGH'

    def __init__(self, probs: Union[None, str, Mapping] = None,
                 max_macs: Optional[int] = None,
                 input_shape: Sequence[int] = (1, 3, 224, 224),
                 max_resample: int = 10,
                 seed: Optional[int] = None) -> None:
        self.probs_cfg = probs
        self.probs: Optional[Probs] = None
        self.max_macs = max_macs
        self.input_shape = tuple(input_shape)
        self.max_resample = max_resample
        self.seed = seed
        self.table: Optional[CostTable] = None
        self.mutator: Optional[Mutator] = None
        self.over_budget = 0
        self._checked = False

    def _model(self, runner):
        return getattr(runner.model, 'module', runner.model)

    def before_train(self, runner) -> None:
        model = self._model(runner)
        self.mutator = Mutator(model)
        if self.seed is None:
            # rank 0's: with randomness.diff_rank_seed the ranks' differ
            seed = [runner.seed]
            broadcast_object_list(seed)
            self.seed = seed[0]
        self.probs = load_probs(self.probs_cfg)
        if self.max_macs is not None:
            self.table = build_cost_table(
                model, [torch.zeros(self.input_shape)], self.mutator)
            smallest = self.table.extreme_macs(self._allowed())
            if smallest > self.max_macs:
                raise ValueError(
                    f'SinglePathSamplerHook: max_macs={self.max_macs:,} is '
                    f'below the smallest network of the space '
                    f'({smallest:,} MACs)')
        free = len(self.mutator.search_space())
        print_log(f'single-path sampling over {free} choice blocks'
                  + ('' if self.probs is None else ' (given probabilities)')
                  + ('' if self.max_macs is None else
                     f', paths above {self.max_macs:,} MACs redrawn'),
                  logger='current')

    def _allowed(self) -> Dict[str, list]:
        space = dict(self.mutator.full_space())
        for k, dist in (self.probs or {}).items():
            if k in space and self.mutator.blocks[k].fixed is None:
                space[k] = [op for op in space[k] if dist.get(op, 0) > 0]
        return space

    def sample(self, iteration: int) -> Genotype:
        """The path of training iteration ``iteration``."""
        rng = random.Random(f'{self.seed}:{iteration}')
        genotype = self.mutator.sample(rng, self.probs)
        if self.table is None:
            return genotype
        for _ in range(self.max_resample):
            if self.table.macs(genotype) <= self.max_macs:
                return genotype
            genotype = self.mutator.sample(rng, self.probs)
        if self.table.macs(genotype) > self.max_macs:
            self.over_budget += 1
        return genotype

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        genotype = self.sample(runner.iter)
        if self._checked or get_world_size() == 1:
            return
        paths = all_gather_object(genotype)
        if any(p != paths[0] for p in paths):
            raise RuntimeError(
                f'SinglePathSamplerHook: the ranks drew different paths at '
                f'iteration {runner.iter}: {paths}')
        print_log(f'the same path on all {len(paths)} ranks',
                  logger='current')
        self._checked = True

    def after_train(self, runner) -> None:
        if self.over_budget:
            print_log(f'{self.over_budget} iterations trained a path over '
                      f'the budget after {self.max_resample} redraws',
                      logger='current')
