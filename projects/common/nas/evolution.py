# Copyright (c) EVLab contributors.
"""Evolutionary search over a discrete choice space, resumable.

The search of EVLab's NAS core (HourNAS section 2.5, Hit-Detector), in the
style of SPOS (Guo et al., "Single Path One-Shot Neural Architecture Search
with Uniform Sampling", ECCV 2020) and of mmrazor's ``EvolutionSearchLoop``
(design only, no code taken):

- generation 0 draws ``population_size`` distinct feasible candidates by
  rejection sampling;
- every later generation takes the ``top_k`` best candidates evaluated so
  far as parents and makes ``num_mutations`` mutants (each choice resampled
  with probability ``mutation_prob``) and ``num_crossovers`` uniform
  crossovers, rejecting infeasible children and any child seen before;
- every distinct candidate is scored once, higher is better.

The module is host-agnostic: it knows nothing about models, only a space
``{choice key: candidate op names}``, a constraint and a fitness, so a host
loop (an mmengine ``LOOPS`` entry) wraps it. All randomness comes from one
``random.Random`` owned by the searcher, and :meth:`state_dict` captures it
together with every score, so that a search killed after any generation (or
inside one) and resumed from its last state ends exactly as an
uninterrupted search, without scoring a candidate twice.
"""
import dataclasses
import hashlib
import json
import math
import random
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

from .io import atomic_write_text

Genotype = Dict[str, str]

STATE_VERSION = 1

# Hyper-parameters that must match for a state to be resumed. Not
# ``num_generations``: it does not change what any generation draws, so a
# finished search may be resumed with a larger value to extend it.
_CHECKED_HPARAMS = ('population_size', 'top_k', 'num_mutations',
                    'num_crossovers', 'mutation_prob', 'max_trials', 'seed',
                    'max_tries_per_child')


@dataclasses.dataclass
class _Candidate:
    """One evaluated candidate.

    Args:
        genotype (Genotype): Choice key -> op name.
        score (float): Its fitness, higher is better.
        generation (int): The generation that proposed it.
        index (int): Its position in evaluation order, the tie-break.
    """

    genotype: Genotype
    score: float
    generation: int
    index: int


def _rank_key(cand: _Candidate) -> Tuple[float, int]:
    """Sort key: best score first, NaN last, earlier evaluation first."""
    score = -math.inf if math.isnan(cand.score) else cand.score
    return (-score, cand.index)


def _rng_state_to_json(state: tuple) -> list:
    """``random.Random.getstate()`` -> nested lists (JSON-friendly)."""
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def _rng_state_from_json(state: Sequence) -> tuple:
    """Inverse of :func:`_rng_state_to_json`."""
    version, internal, gauss_next = state
    return (version, tuple(internal), gauss_next)


class EvolutionSearcher:
    """Evolutionary search over a discrete, ordered choice space.

    Args:
        space (Dict[str, Sequence[str]]): Ordered mapping choice key ->
            candidate op names, e.g. ``{'blocks.1': ['ir_k3_e3',
            'ir_k5_e6'], ...}``. The order of the keys is kept (it fixes the
            order of the random draws); a key with a single candidate is
            fixed.
        is_feasible (Callable[[Genotype], bool], optional): The constraint,
            e.g. a FLOPs budget. Infeasible candidates are never scored.
            Defaults to None (every candidate is feasible).
        sample_probs (Dict[str, Dict[str, float]], optional): Per-key
            distribution over ops for the initial draws and for mutation.
            Keys left out are uniform; within a given key, ops left out or
            with probability 0 are never drawn. Weights are normalised.
            Defaults to None (uniform everywhere).
        population_size (int): Size of generation 0. Defaults to 50.
        num_generations (int): Number of generations, generation 0
            included. Defaults to 20.
        top_k (int): Number of parents: the best candidates evaluated so
            far. Defaults to 10.
        num_mutations (int): Mutants proposed per generation. Defaults
            to 25.
        num_crossovers (int): Crossover children proposed per generation.
            Defaults to 25.
        mutation_prob (float): Probability that a mutant redraws each
            choice. Defaults to 0.1.
        max_trials (int): Most draws when sampling generation 0 or
            :meth:`sample`. Defaults to 10000.
        seed (int): Seed of the searcher's random generator. Defaults to 0.
    """

    #: Most attempts to make one new (feasible, unseen) child before the
    #: generation goes on without it.
    max_tries_per_child = 50

    def __init__(self,
                 space: Dict[str, Sequence[str]],
                 *,
                 is_feasible: Optional[Callable[[Genotype], bool]] = None,
                 sample_probs: Optional[Dict[str, Dict[str, float]]] = None,
                 population_size: int = 50,
                 num_generations: int = 20,
                 top_k: int = 10,
                 num_mutations: int = 25,
                 num_crossovers: int = 25,
                 mutation_prob: float = 0.1,
                 max_trials: int = 10000,
                 seed: int = 0) -> None:
        self._space = self._check_space(space)
        self._sample_probs = self._check_probs(sample_probs, self._space)
        self._draw_table = self._build_draw_table(self._space,
                                                  self._sample_probs)
        for name, value, low in (('population_size', population_size, 1),
                                 ('num_generations', num_generations, 1),
                                 ('top_k', top_k, 1),
                                 ('num_mutations', num_mutations, 0),
                                 ('num_crossovers', num_crossovers, 0),
                                 ('max_trials', max_trials, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(
                    f'{name} must be an integer >= {low}, got {value!r}')
        if not 0.0 <= mutation_prob <= 1.0:
            raise ValueError(
                f'mutation_prob must lie in [0, 1], got {mutation_prob!r}')
        self.is_feasible = is_feasible
        self.population_size = population_size
        self.num_generations = num_generations
        self.top_k = top_k
        self.num_mutations = num_mutations
        self.num_crossovers = num_crossovers
        self.mutation_prob = float(mutation_prob)
        self.max_trials = max_trials
        self.seed = seed
        self._space_hash = self._hash_space(self._space, self._sample_probs)

        self._rng = random.Random(seed)
        self._candidates: List[_Candidate] = []
        self._seen: Dict[Tuple[str, ...], int] = {}
        # Number of completed generations.
        self._generation = 0
        # Candidates proposed for generation ``self._generation`` and not
        # scored yet; None until that generation has been proposed.
        self._pending: Optional[List[Genotype]] = None

    # ------------------------------------------------------------------
    # Space
    # ------------------------------------------------------------------
    @staticmethod
    def _check_space(space: Mapping[str, Sequence[str]]
                     ) -> Dict[str, Tuple[str, ...]]:
        """Check the space and copy it into ``{key: tuple of ops}``."""
        if not isinstance(space, Mapping) or not space:
            raise ValueError('space must be a non-empty mapping choice key '
                             f'-> candidate ops, got {space!r}')
        checked = {}
        for key, ops in space.items():
            if not isinstance(key, str):
                raise ValueError(f'choice keys must be strings, got {key!r}')
            if isinstance(ops, str) or not isinstance(ops, Sequence):
                raise ValueError(f'the candidates of {key!r} must be a '
                                 f'sequence of op names, got {ops!r}')
            ops = tuple(ops)
            if not ops:
                raise ValueError(f'choice {key!r} has no candidate op')
            if not all(isinstance(op, str) for op in ops):
                raise ValueError(
                    f'op names of {key!r} must be strings, got {list(ops)}')
            if len(set(ops)) != len(ops):
                raise ValueError(
                    f'choice {key!r} lists an op twice: {list(ops)}')
            checked[key] = ops
        return checked

    @staticmethod
    def _check_probs(sample_probs: Optional[Mapping[str, Mapping[str,
                                                                 float]]],
                     space: Dict[str, Tuple[str, ...]]
                     ) -> Optional[Dict[str, Dict[str, float]]]:
        """Check ``sample_probs`` against the space; normalise each key."""
        if sample_probs is None:
            return None
        extra = [key for key in sample_probs if key not in space]
        if extra:
            raise ValueError(
                f'sample_probs has keys that are not in the space: {extra}')
        checked = {}
        for key, probs in sample_probs.items():
            unknown = [op for op in probs if op not in space[key]]
            if unknown:
                raise ValueError(
                    f'sample_probs[{key!r}] names ops {unknown} that are '
                    f'not candidates of {key!r}: {list(space[key])}')
            values = {}
            for op, p in probs.items():
                try:
                    values[op] = float(p)
                except (TypeError, ValueError):
                    values[op] = math.nan
                if not (math.isfinite(values[op]) and values[op] >= 0):
                    raise ValueError(f'sample_probs[{key!r}][{op!r}] must '
                                     f'be a finite number >= 0, got {p!r}')
            total = sum(values.values())
            if total <= 0:
                raise ValueError(
                    f'sample_probs[{key!r}] gives no op a positive '
                    f'probability: {dict(probs)}')
            # In the space's op order, so the draws do not depend on the
            # order of the given dict.
            checked[key] = {
                op: values[op] / total
                for op in space[key] if op in values
            }
        return checked

    @staticmethod
    def _build_draw_table(
        space: Dict[str, Tuple[str, ...]],
        sample_probs: Optional[Dict[str, Dict[str, float]]]
    ) -> Dict[str, Tuple[Tuple[str, ...], Tuple[float, ...]]]:
        """Per key: the drawable ops and their cumulative weights."""
        table = {}
        for key, ops in space.items():
            probs = (sample_probs or {}).get(key)
            if probs is None:
                weights = [(op, 1.0) for op in ops]
            else:
                weights = [(op, p) for op, p in probs.items() if p > 0]
            cum, total = [], 0.0
            for _, w in weights:
                total += w
                cum.append(total)
            table[key] = (tuple(op for op, _ in weights), tuple(cum))
        return table

    @staticmethod
    def _hash_space(space: Dict[str, Tuple[str, ...]],
                    sample_probs: Optional[Dict[str, Dict[str, float]]]
                    ) -> str:
        """sha1 of the JSON of the space (ordered) and of sample_probs."""
        payload = json.dumps(
            {
                'space': [[key, list(ops)] for key, ops in space.items()],
                'sample_probs': sample_probs,
            },
            sort_keys=True)
        return hashlib.sha1(payload.encode('utf-8')).hexdigest()

    @property
    def space(self) -> Dict[str, Tuple[str, ...]]:
        """The space, ``{choice key: candidate ops}`` (a copy)."""
        return dict(self._space)

    @property
    def space_hash(self) -> str:
        """sha1 identifying the space and ``sample_probs``."""
        return self._space_hash

    def _key(self, genotype: Mapping[str, str]) -> Tuple[str, ...]:
        """The hashable identity of a genotype, in the space's key order."""
        return tuple(genotype[key] for key in self._space)

    def validate(self, genotype: Mapping[str, str]) -> None:
        """Check that a genotype belongs to the space.

        Args:
            genotype (Mapping[str, str]): Choice key -> op name.

        Raises:
            ValueError: If keys are missing or extra (named), or an op is
                not a candidate of its key (the key, the op and the allowed
                ops are named).
        """
        if not isinstance(genotype, Mapping):
            raise ValueError(
                f'a genotype must be a mapping, got {type(genotype)}')
        missing = [key for key in self._space if key not in genotype]
        extra = [key for key in genotype if key not in self._space]
        if missing or extra:
            raise ValueError(f'genotype keys do not match the space: '
                             f'missing {missing}, extra {extra}')
        for key, ops in self._space.items():
            if genotype[key] not in ops:
                raise ValueError(
                    f'op {genotype[key]!r} is not a candidate of '
                    f'{key!r}; allowed ops: {list(ops)}')

    # ------------------------------------------------------------------
    # Random operators
    # ------------------------------------------------------------------
    def _draw_op(self, key: str) -> str:
        """Draw an op of ``key`` from its distribution."""
        ops, cum = self._draw_table[key]
        if len(ops) == 1:
            return ops[0]
        return self._rng.choices(ops, cum_weights=cum)[0]

    def _draw(self) -> Genotype:
        """One genotype drawn from the distribution, unconstrained."""
        return {key: self._draw_op(key) for key in self._space}

    def _feasible(self, genotype: Genotype) -> bool:
        if self.is_feasible is None:
            return True
        return bool(self.is_feasible(dict(genotype)))

    def _no_feasible_error(self, draws: int) -> ValueError:
        return ValueError(
            f'no candidate in the space meets the constraint after {draws} '
            'draws (max_trials); loosen the constraint or raise max_trials')

    def sample(self) -> Genotype:
        """Draw one feasible genotype (advances the searcher's RNG).

        Returns:
            Genotype: A genotype drawn from ``sample_probs`` (uniform where
            not given) that meets the constraint.

        Raises:
            ValueError: If none of ``max_trials`` draws is feasible.
        """
        for _ in range(self.max_trials):
            genotype = self._draw()
            if self._feasible(genotype):
                return genotype
        raise self._no_feasible_error(self.max_trials)

    def _mutate(self, parent: Genotype) -> Genotype:
        child = dict(parent)
        for key in self._space:
            if len(self._draw_table[key][0]) == 1:
                continue
            if self._rng.random() < self.mutation_prob:
                child[key] = self._draw_op(key)
        return child

    def _crossover(self, parent_a: Genotype, parent_b: Genotype) -> Genotype:
        # Uniform crossover: each choice from either parent with prob 1/2;
        # where the parents agree no number is drawn (so a fixed key does
        # not shift the random stream).
        child = {}
        for key in self._space:
            a, b = parent_a[key], parent_b[key]
            child[key] = a if a == b or self._rng.random() < 0.5 else b
        return child

    # ------------------------------------------------------------------
    # Generations
    # ------------------------------------------------------------------
    def _ranked(self) -> List[_Candidate]:
        return sorted(self._candidates, key=_rank_key)

    @property
    def parents(self) -> List[Genotype]:
        """The ``top_k`` best genotypes evaluated so far, best first."""
        return [dict(c.genotype) for c in self._ranked()[:self.top_k]]

    def _propose_initial(self) -> List[Genotype]:
        found: List[Genotype] = []
        keys = set(self._seen)
        infeasible = set()
        for _ in range(self.max_trials):
            genotype = self._draw()
            key = self._key(genotype)
            if key in keys or key in infeasible:
                continue
            if not self._feasible(genotype):
                infeasible.add(key)
                continue
            keys.add(key)
            found.append(genotype)
            if len(found) == self.population_size:
                break
        if not found:
            raise self._no_feasible_error(self.max_trials)
        return found

    def _propose_children(self) -> List[Genotype]:
        parents = self.parents
        children: List[Genotype] = []
        keys = set(self._seen)
        infeasible = set()

        def make(operator: Callable[[], Genotype]) -> None:
            for _ in range(self.max_tries_per_child):
                child = operator()
                key = self._key(child)
                if key in keys or key in infeasible:
                    continue
                if not self._feasible(child):
                    infeasible.add(key)
                    continue
                keys.add(key)
                children.append(child)
                return

        for _ in range(self.num_mutations):
            make(lambda: self._mutate(self._rng.choice(parents)))
        if len(parents) >= 2:
            for _ in range(self.num_crossovers):
                make(lambda: self._crossover(*self._rng.sample(parents, 2)))
        return children

    def _evaluate_pending(self, fitness: Callable[[Genotype],
                                                  float]) -> None:
        assert self._pending is not None
        while self._pending:
            genotype = self._pending[0]
            score = float(fitness(dict(genotype)))
            # Recorded before it leaves ``_pending``: a state taken inside
            # ``fitness`` scores this candidate again on resume, never
            # loses it.
            self._record(genotype, score, self._generation)
            self._pending.pop(0)

    def _record(self, genotype: Genotype, score: float,
                generation: int) -> None:
        index = len(self._candidates)
        self._candidates.append(
            _Candidate(dict(genotype), score, generation, index))
        self._seen[self._key(genotype)] = index

    def run(
        self,
        fitness: Callable[[Genotype], float],
        on_generation: Optional[Callable[['EvolutionSearcher'], None]] = None
    ) -> Tuple[Genotype, float]:
        """Run from the current state until ``num_generations`` are done.

        Args:
            fitness (Callable[[Genotype], float]): Score of a genotype,
                higher is better; called exactly once per distinct
                candidate, never on an infeasible one.
            on_generation (Callable[[EvolutionSearcher], None], optional):
                Called with the searcher after every completed generation,
                e.g. to save :meth:`state_dict`. Defaults to None.

        Returns:
            Tuple[Genotype, float]: The best genotype and its score.

        Raises:
            ValueError: If generation 0 finds no feasible candidate.
        """
        while self._generation < self.num_generations:
            if self._pending is None:
                if self._generation == 0:
                    self._pending = self._propose_initial()
                else:
                    self._pending = self._propose_children()
            self._evaluate_pending(fitness)
            self._pending = None
            self._generation += 1
            if on_generation is not None:
                on_generation(self)
        best = self.best
        assert best is not None
        return best

    # ------------------------------------------------------------------
    # Results
    # ------------------------------------------------------------------
    @property
    def best(self) -> Optional[Tuple[Genotype, float]]:
        """The best (genotype, score) so far, or None before any score.

        Ties go to the candidate evaluated first.
        """
        if not self._candidates:
            return None
        cand = min(self._candidates, key=_rank_key)
        return dict(cand.genotype), cand.score

    @property
    def history(self) -> List[Dict[str, Any]]:
        """Every evaluated candidate in evaluation order, as dicts with
        ``generation``, ``genotype`` and ``score``."""
        return [{
            'generation': c.generation,
            'genotype': dict(c.genotype),
            'score': c.score
        } for c in self._candidates]

    @property
    def generation(self) -> int:
        """Number of completed generations."""
        return self._generation

    # ------------------------------------------------------------------
    # State
    # ------------------------------------------------------------------
    def _hparams(self) -> Dict[str, Any]:
        return {
            'population_size': self.population_size,
            'num_generations': self.num_generations,
            'top_k': self.top_k,
            'num_mutations': self.num_mutations,
            'num_crossovers': self.num_crossovers,
            'mutation_prob': self.mutation_prob,
            'max_trials': self.max_trials,
            'seed': self.seed,
            'max_tries_per_child': self.max_tries_per_child,
        }

    def state_dict(self) -> Dict[str, Any]:
        """A JSON-serialisable snapshot from which the search resumes.

        Returns:
            Dict[str, Any]: ``version``; ``space_hash``, ``space`` and
            ``sample_probs``; ``hparams``; ``generation`` (completed
            generations); ``candidates`` (every evaluated candidate with its
            generation and score, in evaluation order); ``pending`` (the
            unscored candidates of the generation in progress, or None);
            ``population`` (the candidates of the last completed
            generation); ``parents`` (the current top-k); ``rng_state``.
        """
        last = self._generation - 1
        return {
            'version': STATE_VERSION,
            'space_hash': self._space_hash,
            'space': [[key, list(ops)] for key, ops in self._space.items()],
            'sample_probs': self._sample_probs,
            'hparams': self._hparams(),
            'generation': self._generation,
            'candidates': self.history,
            'pending': (None if self._pending is None else
                        [dict(g) for g in self._pending]),
            'population': [
                dict(c.genotype) for c in self._candidates
                if c.generation == last
            ],
            'parents': self.parents,
            'rng_state': _rng_state_to_json(self._rng.getstate()),
        }

    def _space_difference(self, state: Mapping[str, Any]) -> str:
        """Describe the first difference between a state's space and ours."""
        theirs = [(key, list(ops)) for key, ops in state.get('space', [])]
        ours = [(key, list(ops)) for key, ops in self._space.items()]
        for i, ((k1, o1), (k2, o2)) in enumerate(zip(theirs, ours)):
            if k1 != k2:
                return (f'choice #{i} is {k1!r} in the state and {k2!r} '
                        'here')
            if o1 != o2:
                return f'choice {k1!r} has ops {o1} in the state, {o2} here'
        if len(theirs) != len(ours):
            longer, where = ((theirs, 'the state') if len(theirs) > len(ours)
                             else (ours, 'this searcher'))
            return (f'choice {longer[min(len(theirs), len(ours))][0]!r} '
                    f'exists only in {where}')
        probs_theirs = state.get('sample_probs') or {}
        probs_ours = self._sample_probs or {}
        for key in self._space:
            if probs_theirs.get(key) != probs_ours.get(key):
                return (f'sample_probs of {key!r} differ: '
                        f'{probs_theirs.get(key)} in the state, '
                        f'{probs_ours.get(key)} here')
        return 'the difference could not be located'

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a snapshot made by :meth:`state_dict`.

        Args:
            state (Mapping[str, Any]): The snapshot, e.g. from
                :func:`load_state`.

        Raises:
            ValueError: If the state was made with another space or
                ``sample_probs`` (both hashes and the first difference are
                named), with other hyper-parameters (named), or holds a
                candidate outside the space or one that violates this
                searcher's constraint.
        """
        if state.get('version') != STATE_VERSION:
            raise ValueError(f'unsupported search state version '
                             f'{state.get("version")!r}, expected '
                             f'{STATE_VERSION}')
        if state.get('space_hash') != self._space_hash:
            raise ValueError(
                'a search resumed with a different space: the state has '
                f'space_hash {state.get("space_hash")}, this searcher has '
                f'{self._space_hash}; {self._space_difference(state)}')
        hparams = state.get('hparams', {})
        ours = self._hparams()
        differ = [
            f'{name} (state {hparams.get(name)!r}, here {ours[name]!r})'
            for name in _CHECKED_HPARAMS if hparams.get(name) != ours[name]
        ]
        if differ:
            raise ValueError('a search resumed with different '
                             f'hyper-parameters: {", ".join(differ)}')
        entries = state['candidates']
        pending = state.get('pending')
        for genotype in [e['genotype'] for e in entries] + (pending or []):
            self.validate(genotype)
            if not self._feasible(genotype):
                raise ValueError(
                    'a search resumed with a different constraint: the '
                    f'state holds the infeasible candidate {genotype}')

        self._candidates = []
        self._seen = {}
        for entry in entries:
            self._record(entry['genotype'], float(entry['score']),
                         int(entry['generation']))
        self._generation = int(state['generation'])
        self._pending = (None if pending is None else
                         [dict(g) for g in pending])
        self._rng.setstate(_rng_state_from_json(state['rng_state']))


def save_state(path: str, state: Mapping[str, Any]) -> None:
    """Write a search state as JSON, atomically (:mod:`.io`): a kill leaves
    either the old or the new file.

    Args:
        path (str): Destination file; its folder is created if missing.
        state (Mapping[str, Any]): E.g. :meth:`EvolutionSearcher.state_dict`.
    """
    atomic_write_text(path, json.dumps(state, indent=1))


def load_state(path: str) -> Dict[str, Any]:
    """Read a search state written by :func:`save_state`.

    Args:
        path (str): The JSON file.

    Returns:
        Dict[str, Any]: The state, for
        :meth:`EvolutionSearcher.load_state_dict`.
    """
    with open(path, encoding='utf-8') as f:
        return json.load(f)
