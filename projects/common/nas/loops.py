# Copyright (c) EVLab contributors.
"""The evolution search as an mmengine loop: a config's ``train_cfg``
makes ``tools/train.py`` search a trained supernet instead of training.

Per candidate: set its path, recalibrate BN on fixed training batches,
score it on the held-out split. The search state (every candidate scored,
the population, the random state, the generation) is written to
``search_state.json`` after every generation; a search started again in
the same work dir continues from there and ends with the result an
uninterrupted search would have had. At the end the loop writes
``search_log.json``, ``best_genotype.json`` and, given a template, a
retrain config.
"""
import json
import os.path as osp
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.logging import print_log
from mmengine.registry import LOOPS
from torch.nn.modules.batchnorm import _BatchNorm

from ..loops import TrainedModelLoop
from .bn import recalibrate_bn
from .estimator import CostTable, build_cost_table
from .evolution import EvolutionSearcher, load_state, save_state
from .export import export_config, save_genotype, save_json
from .hooks import load_probs
from .mutator import Genotype, Mutator

STATE_FILE = 'search_state.json'


@LOOPS.register_module()
class EvolutionSearchLoop(TrainedModelLoop):
    """Evolution search of a supernet's choices under a MACs budget.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): Training batches for BN
            recalibration (``train_dataloader``).
        eval_dataloader (dict): The held-out split the candidates are
            scored on (never the val set).
        evaluator (dict | list): Its metric, e.g. ``dict(type='Accuracy')``.
        supernet_checkpoint (str, optional): The trained supernet's
            weights, or its work dir (the newest checkpoint there is
            used). Defaults to None (the model as built or as
            ``load_from`` left it).
        score_key (str): Metric to maximise. Defaults to
            ``'accuracy/top1'``.
        max_macs (int, optional): Budget; candidates above it are
            infeasible. Defaults to None.
        min_macs (int, optional): Candidates below it are infeasible.
            Defaults to None.
        macs_offset (int): Added to every candidate's MACs (cost of what
            the supernet does not contain yet). Defaults to 0.
        input_shape (Sequence[int]): Input of the MACs table. Defaults to
            ``(1, 3, 224, 224)``.
        calib_batches (int): Batches for BN recalibration. Defaults to 20.
        probs (dict | str, optional): Sampling probabilities for the
            initial population and mutations (or a ``space.json``).
            Defaults to None.
        searcher (dict, optional): :class:`EvolutionSearcher` arguments
            (population_size, num_generations, top_k, num_mutations,
            num_crossovers, mutation_prob, seed). Defaults to None.
        export (dict, optional): ``dict(template=<config>, key=<dotted
            key>)``: write ``retrain_config.py``, the template with the
            best genotype at ``key``. Defaults to None.
    """

    def __init__(self, runner, dataloader, eval_dataloader: dict,
                 evaluator: Union[dict, list],
                 supernet_checkpoint: Optional[str] = None,
                 score_key: str = 'accuracy/top1',
                 max_macs: Optional[int] = None,
                 min_macs: Optional[int] = None, macs_offset: int = 0,
                 input_shape: Sequence[int] = (1, 3, 224, 224),
                 calib_batches: int = 20,
                 probs: Union[None, str, dict] = None,
                 searcher: Optional[dict] = None,
                 export: Optional[dict] = None) -> None:
        super().__init__(runner, dataloader)
        self.eval_dataloader = runner.build_dataloader(eval_dataloader)
        self.evaluator = runner.build_evaluator(evaluator)
        self.supernet_checkpoint = supernet_checkpoint
        self.score_key = score_key
        self.max_macs, self.min_macs = max_macs, min_macs
        self.macs_offset = macs_offset
        self.input_shape = tuple(input_shape)
        self.calib_batches = calib_batches
        self.probs_cfg = probs
        self.searcher_cfg = dict(searcher or {})
        self.export = export
        self._calib: List[dict] = []
        self._bounds: tuple = (min_macs, max_macs, macs_offset, macs_offset)

    # what a subclass may refine ---------------------------------------
    def search_probs(self, mutator: Mutator) -> Optional[Dict]:
        """Sampling probabilities of the search (None: uniform)."""
        return load_probs(self.probs_cfg)

    def macs_bounds(self, table: CostTable, mutator: Mutator):
        """``(min_macs, max_macs, offset, low_offset)`` of the constraint:
        a candidate of ``F`` MACs is feasible when ``F + offset <=
        max_macs`` and ``F + low_offset >= min_macs`` (the offsets stand
        for what the supernet does not contain yet, e.g. HourNAS stage 1's
        cheapest and dearest completions)."""
        return self.min_macs, self.max_macs, self.macs_offset, \
            self.macs_offset

    def extra_results(self, genotype: Genotype) -> dict:
        """More entries for ``best_genotype.json``."""
        return {}

    # the search -------------------------------------------------------
    def _load_supernet(self) -> Optional[str]:
        """Load the supernet's weights; the checkpoint file used."""
        return self.load_trained(self.supernet_checkpoint, 'supernet')

    def _feasibility(self, table: CostTable, mutator: Mutator,
                     space: Dict[str, List[str]]
                     ) -> Callable[[Genotype], bool]:
        low, high, offset, low_offset = self.macs_bounds(table, mutator)
        fixed = mutator.fixed()
        # fixed blocks count with their op, free ones over their space
        space = {**mutator.full_space(), **space}
        smallest = table.extreme_macs(space) + offset
        largest = table.extreme_macs(space, largest=True) + low_offset
        if high is not None and smallest > high:
            raise ValueError(
                f'search budget max_macs={high:,} is below the smallest '
                f'network of the space ({smallest:,} MACs)')
        if low is not None and largest < low:
            raise ValueError(
                f'search bound min_macs={low:,} is above the largest '
                f'network of the space ({largest:,} MACs)')
        self._bounds = (low, high, offset, low_offset)

        def feasible(genotype: Genotype) -> bool:
            macs = table.macs({**fixed, **genotype})
            return (high is None or macs + offset <= high) and (
                low is None or macs + low_offset >= low)
        return feasible

    def _calibration_batches(self) -> List[dict]:
        if not self._calib:
            for batch in self.dataloader:
                self._calib.append(batch)
                if len(self._calib) >= self.calib_batches:
                    break
        return self._calib

    def _recalibrate(self) -> None:
        model = self.model
        recalibrate_bn(
            model, self._calibration_batches(),
            lambda b: model(**model.data_preprocessor(b, False),
                            mode='tensor'))
        if get_world_size() > 1:  # ranks saw other batches: pool them
            for m in model.modules():
                if isinstance(m, _BatchNorm) and m.running_mean is not None:
                    # E[x] and E[x^2] over the ranks (equal batch counts)
                    second = m.running_var + m.running_mean ** 2
                    all_reduce(m.running_mean, 'mean')
                    all_reduce(second, 'mean')
                    m.running_var.copy_(second - m.running_mean ** 2)

    def score(self, mutator: Mutator, genotype: Genotype) -> float:
        """Held-out score of ``genotype`` after BN recalibration."""
        mutator.set(genotype)
        self._recalibrate()
        self.runner.model.eval()
        with torch.no_grad():
            for batch in self.eval_dataloader:
                outputs = self.runner.model.val_step(batch)
                self.evaluator.process(data_samples=outputs,
                                       data_batch=batch)
        metrics = self.evaluator.evaluate(len(self.eval_dataloader.dataset))
        if self.score_key not in metrics:
            raise KeyError(f'search score_key {self.score_key!r} is not '
                           f'among the metrics {sorted(metrics)}')
        return float(metrics[self.score_key])

    def run(self):
        runner = self.runner
        checkpoint = self._load_supernet()
        self.evaluator.dataset_meta = getattr(
            self.eval_dataloader.dataset, 'metainfo', None)
        model = self.model
        mutator = Mutator(model)
        table = build_cost_table(model, [torch.zeros(self.input_shape)],
                                 mutator)
        probs = self.search_probs(mutator)
        space = dict(mutator.search_space())
        for k, dist in (probs or {}).items():
            if k not in mutator.blocks:
                raise ValueError(f'search probabilities name the choice '
                                 f'block {k!r}; the model has '
                                 f'{list(mutator.blocks)}')
            unknown = [op for op in dist if op not in
                       mutator.blocks[k].choices]
            if unknown:
                raise ValueError(f'search probabilities of block {k!r} name '
                                 f'ops it lacks: {unknown}')
            if k in space:
                space[k] = [op for op in space[k] if dist.get(op, 0) > 0]
        feasible = self._feasibility(table, mutator, space)
        # what the scores depend on besides the space: a state saved under
        # other conditions cannot be continued
        context = dict(
            fixed=mutator.fixed(), bounds=list(self._bounds),
            score_key=self.score_key, calib_batches=self.calib_batches,
            seed=runner.seed, heldout=len(self.eval_dataloader.dataset),
            supernet=None if checkpoint is None else
            [checkpoint, osp.getsize(checkpoint)])
        searcher = EvolutionSearcher(
            mutator.search_space(), is_feasible=feasible,
            sample_probs={k: v for k, v in (probs or {}).items()
                          if k in space} or None,
            **self.searcher_cfg)
        state_path = osp.join(runner.work_dir, STATE_FILE)
        if osp.isfile(state_path):
            try:
                state = load_state(state_path)
                saved = state.pop('loop', None)
                if saved is not None and saved != json.loads(
                        json.dumps(context)):
                    differ = sorted(k for k in context
                                    if saved.get(k) != json.loads(
                                        json.dumps(context[k])))
                    raise ValueError(
                        f'it was run with other {", ".join(differ)} '
                        f'(saved {[saved.get(k) for k in differ]})')
                searcher.load_state_dict(state)
            except ValueError as e:
                raise ValueError(
                    f'{state_path}: cannot resume this search: {e}. Use '
                    f'another --work-dir, or delete the file to start '
                    f'over') from None
            print_log(f'resuming the search from {state_path} after '
                      f'generation {searcher.generation}', logger='current')
        fixed = mutator.fixed()
        offset = self._bounds[2]
        t0, count = time.time(), [0]

        def fitness(genotype: Genotype) -> float:
            value = self.score(mutator, genotype)
            count[0] += 1
            macs = table.macs({**fixed, **genotype}) + offset
            print_log(f'generation {searcher.generation}: candidate '
                      f'{count[0]}: {self.score_key} {value:.2f}, '
                      f'{macs / 1e6:.2f} M MACs', logger='current')
            return value

        def on_generation(s: EvolutionSearcher) -> None:
            best, value = s.best
            macs = table.macs({**fixed, **best}) + offset
            print_log(f'generation {s.generation}/{s.num_generations} done '
                      f'({time.time() - t0:.0f} s): best '
                      f'{self.score_key} {value:.2f} at {macs / 1e6:.2f} M '
                      f'MACs', logger='current')
            if is_main_process():
                save_state(state_path, dict(s.state_dict(), loop=context))

        best, value = searcher.run(fitness, on_generation)
        full = {**fixed, **best}
        mutator.set(full)
        if is_main_process():
            self._write_results(searcher, table, full, value, offset)
        return runner.model

    def _write_results(self, searcher: EvolutionSearcher, table: CostTable,
                       full: Genotype, value: float, offset: int) -> None:
        work_dir = self.runner.work_dir
        fixed = {k for k in full if k not in searcher.space}
        log = []
        for entry in searcher.history:
            g = {**{k: full[k] for k in fixed}, **entry['genotype']}
            log.append(dict(entry, macs=table.macs(g) + offset,
                            params=table.params(g)))
        save_json(osp.join(work_dir, 'search_log.json'), log)
        order = sorted(full, key=lambda k: (not k.isdigit(),
                                            int(k) if k.isdigit() else 0, k))
        genotype = [full[k] for k in order] if all(
            k.isdigit() for k in order) else {k: full[k] for k in order}
        meta = dict(score=value, score_key=self.score_key,
                    macs=table.macs(full) + offset,
                    params=table.params(full),
                    budget=self._bounds[1], min_macs=self._bounds[0],
                    evaluated=len(searcher.history))
        meta.update(self.extra_results(full))
        path = osp.join(work_dir, 'best_genotype.json')
        save_genotype(path, genotype, **meta)
        print_log(f'best genotype ({self.score_key} {value:.2f}, '
                  f'{meta["macs"] / 1e6:.2f} M MACs) written to {path}',
                  logger='current')
        if self.export:
            out = osp.join(work_dir, 'retrain_config.py')
            export_config(self.export['template'], out,
                          {self.export['key']: genotype,
                           'work_dir': osp.join(work_dir, 'retrain')},
                          header=f'genotype of {path}')
            print_log(f'retrain config written to {out}: python '
                      f'tools/train.py {out}', logger='current')
