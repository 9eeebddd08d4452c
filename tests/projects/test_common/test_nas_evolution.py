# Copyright (c) EVLab contributors.
"""Tests of the evolutionary search of the NAS core."""
import json
import math
import os

import numpy as np
import pytest

from projects.common.nas.evolution import (
    EvolutionSearcher,
    load_state,
    save_state,
)

KEYS = [f'blocks.{i}' for i in range(8)]
OPS = [f'op{j}' for j in range(5)]
# 8 searched keys x 5 ops plus a fixed key.
SPACE = {'stem': ['conv3x3'], **{key: OPS for key in KEYS}}
# Op j costs j ** 2 and is worth j: under the budget the optimum spreads
# the budget over the keys, so no random draw of generation 0 holds it.
BUDGET = 40
SMALL = dict(population_size=30, num_generations=12, top_k=10,
             num_mutations=15, num_crossovers=15, mutation_prob=0.2)


def _indices(genotype):
    return [OPS.index(genotype[key]) for key in KEYS]


def _cost(genotype):
    return sum(j * j for j in _indices(genotype))


def _feasible(genotype):
    return _cost(genotype) <= BUDGET


def _fitness(genotype):
    return float(sum(_indices(genotype)))


def _optimum():
    """Brute force over the 5 ** 8 genotypes: (best value, #optima)."""
    grid = np.indices((len(OPS), ) * len(KEYS)).reshape(len(KEYS), -1)
    feasible = (grid**2).sum(0) <= BUDGET
    values = grid.sum(0)[feasible]
    return float(values.max()), int((values == values.max()).sum())


class _Recorder:
    """A fitness that records every genotype it is called with."""

    def __init__(self):
        self.calls = []

    def __call__(self, genotype):
        self.calls.append(dict(genotype))
        return _fitness(genotype)


def _searcher(seed=0, **kwargs):
    cfg = dict(SMALL, is_feasible=_feasible, seed=seed)
    cfg.update(kwargs)
    return EvolutionSearcher(SPACE, **cfg)


def _as_key(genotype):
    return tuple(genotype[key] for key in SPACE)


@pytest.mark.parametrize('seed', [0, 1, 2, 3, 4])
def test_finds_the_known_optimum(seed):
    optimum, num_optima = _optimum()
    assert optimum == 17.0 and num_optima == 176
    searcher = _searcher(seed)
    genotype, score = searcher.run(_fitness)
    assert score == optimum == _fitness(genotype)
    assert _feasible(genotype) and genotype['stem'] == 'conv3x3'
    history = searcher.history
    # Found by evolution, not by the random generation 0.
    assert max(h['score'] for h in history if h['generation'] == 0) < optimum
    assert searcher.generation == SMALL['num_generations']
    assert {h['generation'] for h in history} <= set(range(12))


def test_no_infeasible_candidate_is_scored_or_returned():
    fitness = _Recorder()
    genotype, _ = _searcher(seed=3, mutation_prob=0.5).run(fitness)
    assert len(fitness.calls) > 100
    assert all(_feasible(g) for g in fitness.calls)
    assert all(g['stem'] == 'conv3x3' for g in fitness.calls)
    assert _feasible(genotype)


def test_fitness_is_called_once_per_distinct_candidate():
    fitness = _Recorder()
    searcher = _searcher(seed=1)
    searcher.run(fitness)
    keys = [_as_key(g) for g in fitness.calls]
    assert len(keys) == len(set(keys))
    assert fitness.calls == [h['genotype'] for h in searcher.history]
    per_gen = [
        sum(h['generation'] == g for h in searcher.history)
        for g in range(searcher.generation)
    ]
    assert per_gen[0] == SMALL['population_size']
    assert all(0 < n <= 30 for n in per_gen[1:])
    # Calling run() again on a finished search scores nothing more.
    searcher.run(fitness)
    assert len(fitness.calls) == len(keys)


def test_same_seed_same_history_other_seed_differs():
    first = _searcher(seed=7)
    first.run(_fitness)
    again = _searcher(seed=7)
    again.run(_fitness)
    other = _searcher(seed=8)
    other.run(_fitness)
    assert first.history == again.history
    assert first.best == again.best
    genotypes = [h['genotype'] for h in first.history]
    assert genotypes != [h['genotype'] for h in other.history]


def test_ties_go_to_the_first_evaluated():
    searcher = _searcher(num_generations=3)
    genotype, score = searcher.run(lambda g: 1.0)
    history = searcher.history
    assert score == 1.0 and genotype == history[0]['genotype']
    assert searcher.parents == [h['genotype'] for h in history[:10]]


class _Killed(Exception):
    pass


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    path = str(tmp_path / 'search_state.json')
    whole = _searcher(seed=2)
    whole_best = whole.run(_fitness)

    def save_then_die(searcher):
        save_state(path, searcher.state_dict())
        if searcher.generation == 3:  # generations 0, 1 and 2 are done
            raise _Killed

    killed = _searcher(seed=2)
    with pytest.raises(_Killed):
        killed.run(_fitness, on_generation=save_then_die)
    # Atomic writes leave no temporary file behind.
    assert os.listdir(tmp_path) == ['search_state.json']

    resumed = _searcher(seed=2)
    resumed.load_state_dict(load_state(path))
    assert resumed.generation == 3
    fitness = _Recorder()
    generations = []
    best = resumed.run(fitness,
                       on_generation=lambda s: generations.append(
                           s.generation))
    assert best == whole_best
    assert resumed.history == whole.history
    assert generations == list(range(4, SMALL['num_generations'] + 1))
    done = {_as_key(h['genotype']) for h in whole.history
            if h['generation'] <= 2}
    assert fitness.calls
    assert not done & {_as_key(g) for g in fitness.calls}
    assert fitness.calls == [
        h['genotype'] for h in whole.history if h['generation'] > 2
    ]


def test_kill_inside_a_generation_resumes_exactly(tmp_path):
    path = str(tmp_path / 'state.json')
    whole = _searcher(seed=4)
    whole.run(_fitness)
    killed = _searcher(seed=4)
    calls = []

    def fitness_then_die(genotype):
        calls.append(genotype)
        if len(calls) == 40:  # in generation 1, its 10th candidate
            save_state(path, killed.state_dict())
            raise _Killed
        return _fitness(genotype)

    with pytest.raises(_Killed):
        killed.run(fitness_then_die)
    resumed = _searcher(seed=4)
    resumed.load_state_dict(load_state(path))
    assert resumed.generation == 1
    fitness = _Recorder()
    assert resumed.run(fitness) == whole.best
    assert resumed.history == whole.history
    # The candidate being scored at the kill is scored again, once.
    assert fitness.calls[0] == calls[-1]
    assert len(fitness.calls) == len(whole.history) - 39


def test_resume_with_more_generations_extends_the_search():
    long = _searcher(seed=5, num_generations=8)
    long.run(_fitness)
    short = _searcher(seed=5, num_generations=5)
    short.run(_fitness)
    extended = _searcher(seed=5, num_generations=8)
    extended.load_state_dict(json.loads(json.dumps(short.state_dict())))
    fitness = _Recorder()
    assert extended.run(fitness) == long.best
    assert extended.history == long.history
    assert len(fitness.calls) == len(long.history) - len(short.history)


def test_state_survives_json_and_restores_the_rng():
    searcher = _searcher(seed=6, num_generations=2)
    searcher.run(_fitness)
    state = json.loads(json.dumps(searcher.state_dict()))
    assert state['generation'] == 2 and state['pending'] is None
    assert len(state['candidates']) == len(searcher.history)
    assert state['parents'] == searcher.parents
    assert state['population'] == [
        h['genotype'] for h in searcher.history if h['generation'] == 1
    ]
    fresh = [_searcher(seed=6).sample() for _ in range(5)]
    restored = _searcher(seed=6)
    restored.load_state_dict(state)
    expected = [searcher.sample() for _ in range(5)]
    assert [restored.sample() for _ in range(5)] == expected
    assert fresh != expected


def test_resume_with_another_space_is_refused():
    searcher = _searcher(num_generations=1)
    searcher.run(_fitness)
    state = searcher.state_dict()

    other_ops = dict(SPACE, **{'blocks.5': OPS[:4]})
    other = EvolutionSearcher(other_ops, is_feasible=_feasible, **SMALL)
    with pytest.raises(ValueError, match='different space') as err:
        other.load_state_dict(state)
    assert 'blocks.5' in str(err.value)
    assert state['space_hash'] in str(err.value)
    assert other.space_hash in str(err.value)

    reordered = {key: SPACE[key] for key in reversed(list(SPACE))}
    other = EvolutionSearcher(reordered, is_feasible=_feasible, **SMALL)
    with pytest.raises(ValueError, match='different space'):
        other.load_state_dict(state)

    probs = {'blocks.0': {'op0': 0.5, 'op1': 0.5}}
    other = _searcher(sample_probs=probs)
    with pytest.raises(ValueError, match='different space') as err:
        other.load_state_dict(state)
    assert 'blocks.0' in str(err.value)


def test_resume_with_other_hyper_parameters_is_refused():
    searcher = _searcher(num_generations=1)
    searcher.run(_fitness)
    other = _searcher(population_size=40, mutation_prob=0.3)
    with pytest.raises(ValueError, match='hyper-parameters') as err:
        other.load_state_dict(searcher.state_dict())
    assert 'population_size' in str(err.value)
    assert 'mutation_prob' in str(err.value)
    assert 'top_k' not in str(err.value)


def test_resume_with_a_tighter_constraint_is_refused():
    searcher = _searcher(num_generations=1)
    searcher.run(_fitness)
    other = _searcher(is_feasible=lambda g: _cost(g) <= 10)
    with pytest.raises(ValueError, match='different constraint'):
        other.load_state_dict(searcher.state_dict())


def test_validate_names_the_bad_op_and_keys():
    searcher = _searcher()
    good = {'stem': 'conv3x3', **{key: 'op1' for key in KEYS}}
    searcher.validate(good)
    with pytest.raises(ValueError) as err:
        searcher.validate(dict(good, **{'blocks.3': 'ir_k7_e9'}))
    msg = str(err.value)
    assert 'blocks.3' in msg and 'ir_k7_e9' in msg and 'op4' in msg
    bad_keys = {k: v for k, v in good.items() if k != 'blocks.2'}
    bad_keys['head'] = 'fc'
    with pytest.raises(ValueError) as err:
        searcher.validate(bad_keys)
    assert 'blocks.2' in str(err.value) and 'head' in str(err.value)


def test_unmeetable_constraint_is_an_error():
    searcher = _searcher(is_feasible=lambda g: False, max_trials=200)
    with pytest.raises(ValueError,
                       match='no candidate in the space meets the '
                       'constraint after 200 draws'):
        searcher.run(_fitness)
    with pytest.raises(ValueError, match='after 200 draws'):
        searcher.sample()


def test_bad_sample_probs_are_refused():
    with pytest.raises(ValueError, match='blocks.1'):
        _searcher(sample_probs={'blocks.1': {'op9': 1.0}})
    with pytest.raises(ValueError, match='not in the space'):
        _searcher(sample_probs={'neck': {'op0': 1.0}})
    with pytest.raises(ValueError, match='positive'):
        _searcher(sample_probs={'blocks.1': {'op0': 0.0}})


def test_small_space_is_exhausted_without_duplicates():
    space = {'a': ['x', 'y'], 'b': ['x', 'y', 'z']}
    searcher = EvolutionSearcher(
        space, is_feasible=lambda g: g != {'a': 'y', 'b': 'z'},
        population_size=10, num_generations=3, top_k=2, max_trials=500)
    calls = []
    genotype, score = searcher.run(lambda g: calls.append(g) or 0.0)
    keys = sorted((g['a'], g['b']) for g in calls)
    assert keys == sorted({(a, b) for a in 'xy' for b in 'xyz'} -
                          {('y', 'z')})
    assert searcher.generation == 3
    assert (genotype, score) == (calls[0], 0.0)


def test_zero_probability_op_is_never_drawn():
    probs = {key: {'op0': 0.1, 'op1': 0.3, 'op2': 0.3, 'op3': 0.0}
             for key in KEYS}
    probs['blocks.7'] = {'op4': 1.0}  # op0..op3 left out: never drawn
    fitness = _Recorder()
    searcher = _searcher(sample_probs=probs, mutation_prob=0.5,
                         num_generations=6)
    searcher.run(fitness)
    assert len(fitness.calls) > 50
    for genotype in fitness.calls:
        assert 'op3' not in genotype.values()
        assert all(genotype[key] != 'op4' for key in KEYS[:7])
        assert genotype['blocks.7'] == 'op4'


def test_sample_frequencies_match_the_distribution():
    space = {'a': ['k3', 'k5', 'k7', 'skip'], 'b': ['e1', 'e3', 'e6'],
             'c': ['fixed']}
    given = {'a': {'k3': 5.0, 'k5': 3.0, 'k7': 2.0, 'skip': 0.0}}
    searcher = EvolutionSearcher(space, sample_probs=given, seed=11)
    n = 5000
    draws = [searcher.sample() for _ in range(n)]
    expected = {
        'a': {'k3': 0.5, 'k5': 0.3, 'k7': 0.2, 'skip': 0.0},
        'b': {op: 1 / 3 for op in space['b']},
        'c': {'fixed': 1.0},
    }
    for key, probs in expected.items():
        for op, p in probs.items():
            count = sum(d[key] == op for d in draws)
            sigma = math.sqrt(n * p * (1 - p))
            assert abs(count - n * p) <= 3 * sigma, (key, op, count)
