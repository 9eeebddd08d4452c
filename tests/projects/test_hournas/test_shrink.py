# Copyright (c) EVLab contributors.
"""The HourNAS budget shrinker (spec sections 2.4 and 5, "Shrinker")."""
import itertools
import json
import math
import re

import numpy as np
import pytest

from projects.hournas.shrink import (
    ShrinkResult,
    feasibility_clt,
    feasibility_dp,
    feasibility_mc,
    shrink_space,
)

TAU = 0.9
MIN_PROB = 0.02
# the three estimators must agree this well (spec section 5)
AGREEMENT = 0.03
# (channels, resolution) of the non-vital stages of the spec's table 2.2
STAGES = ((24, 56), (40, 28), (80, 14), (112, 14), (192, 7))


def mbconv_table(num_positions: int = 15, seed: int = 0) -> list:
    """M MACs of ``ir_k{3,5}_e{1,3,6}`` at non-vital positions.

    The spec's MAC formula (section 2.2, c_in == c_out, stride 1), each
    position scaled by a seeded factor in [0.8, 1.2] so no two are equal.
    """
    rng = np.random.default_rng(seed)
    table = []
    for i in range(num_positions):
        c, h = STAGES[i * len(STAGES) // num_positions]
        row = []
        for k in (3, 5):
            for e in (1, 3, 6):
                mid = c * e
                row.append(h * h * c * mid + h * h * mid * k * k +
                           2 * mid * (c // 4) + h * h * mid * c)
        table.append(np.array(row) / 1e6 * rng.uniform(0.8, 1.2))
    return table


TABLE = mbconv_table()
MIN_SUM = sum(float(c.min()) for c in TABLE)
MAX_SUM = sum(float(c.max()) for c in TABLE)
# uniform sampling almost never fits TIGHT and almost always fits LOOSE
TIGHT = MIN_SUM + 0.2 * (MAX_SUM - MIN_SUM)
LOOSE = MIN_SUM + 0.7 * (MAX_SUM - MIN_SUM)


def uniform(table: list) -> list:
    return [np.full(len(c), 1.0 / len(c)) for c in table]


def moments(probs: list, table: list) -> tuple:
    mu = sum(float(np.dot(p, c)) for p, c in zip(probs, table))
    var = sum(
        float(np.dot(p, np.square(c)) - np.dot(p, c)**2)
        for p, c in zip(probs, table))
    return mu, math.sqrt(var)


@pytest.fixture(scope='module')
def tight() -> ShrinkResult:
    return shrink_space(TABLE, TIGHT, tau=TAU, min_prob=MIN_PROB)


@pytest.fixture(scope='module')
def loose() -> ShrinkResult:
    return shrink_space(TABLE, LOOSE, tau=TAU, min_prob=MIN_PROB)


def test_mc_clt_dp_agree(tight, loose):
    mu_u, sigma_u = moments(uniform(TABLE), TABLE)
    dirichlet = list(np.random.default_rng(1).dirichlet(np.ones(6), 15))
    mu_d, _ = moments(dirichlet, TABLE)
    cases = [(uniform(TABLE), mu_u + k * sigma_u)
             for k in (-1.5, -0.5, 0.0, 0.5, 1.5)]
    cases += [(dirichlet, mu_d), (tight.probs, TIGHT), (loose.probs, LOOSE)]
    values = []
    for probs, budget in cases:
        mc = feasibility_mc(probs, TABLE, budget)
        clt = feasibility_clt(probs, TABLE, budget)
        dp = feasibility_dp(probs, TABLE, budget)
        assert abs(mc - dp) < AGREEMENT, (budget, mc, dp)
        assert abs(clt - dp) < AGREEMENT, (budget, clt, dp)
        assert abs(mc - clt) < AGREEMENT, (budget, mc, clt)
        values.append(dp)
    # the cases span the whole range, not only the easy tails
    assert min(values) < 0.1 and max(values) > 0.9
    assert sum(0.2 < v < 0.8 for v in values) >= 3


def test_shrunk_space_meets_tau_and_uses_the_budget(tight, loose):
    mu_u, sigma_u = moments(uniform(TABLE), TABLE)
    # the uniform space is infeasible at TIGHT and feasible at LOOSE
    assert feasibility_dp(uniform(TABLE), TABLE, TIGHT) < 0.05
    assert feasibility_dp(uniform(TABLE), TABLE, LOOSE) > 0.95
    for result, budget in ((tight, TIGHT), (loose, LOOSE)):
        assert result.budget == budget
        assert result.feasibility >= TAU - 0.02
        assert feasibility_mc(result.probs, TABLE, budget) >= TAU - 0.025
        # eta * mu / B' pushes the space up to the constraint, not below it
        assert result.feasibility < TAU + 0.05
        assert abs(result.feasibility_clt - TAU) < 0.03
        assert result.mu > 0.75 * budget
        mu, sigma = moments(result.probs, TABLE)
        assert result.mu == pytest.approx(mu, rel=1e-12)
        assert result.sigma == pytest.approx(sigma, rel=1e-9)
    # with slack, the shrinker spends it: a dearer space than uniform
    assert loose.mu > mu_u + sigma_u


def test_tight_budget_drops_the_most_expensive_ops(tight):
    dropped = [int(np.argmax(c)) not in kept
               for c, kept in zip(TABLE, tight.kept)]
    assert sum(dropped) >= 1
    # the kept space is cheaper than the full one on average
    assert tight.mu < moments(uniform(TABLE), TABLE)[0]
    assert len(tight.probs) == len(TABLE)
    for p, kept, c in zip(tight.probs, tight.kept, TABLE):
        p = np.asarray(p)
        assert p.shape == c.shape
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        assert kept == np.flatnonzero(p).tolist()
        assert np.all(p[kept] >= MIN_PROB)
        assert 1 <= len(kept) <= len(c)


def test_entropy_only_converges_to_uniform():
    # op counts 1..6: the normalised entropy weighs them alike
    table = [c[:k] for c, k in zip(TABLE, itertools.cycle(range(1, 7)))]
    loose = 10 * MAX_SUM
    result = shrink_space(table, loose, eta=0.0, steps=300)
    for p, c in zip(result.probs, table):
        np.testing.assert_allclose(p, 1.0 / len(c), atol=1e-3)
    assert result.feasibility == 1.0
    # control: the budget term tilts the same space to the dearer ops
    tilted = shrink_space(table, 1.5 * MAX_SUM, eta=1.0, steps=300)
    for p, c in zip(tilted.probs, table):
        if len(c) > 1:
            assert p[int(np.argmax(c))] > p[int(np.argmin(c))] + 0.01


@pytest.mark.parametrize('bin_size', [1.0, 0.5])
def test_dp_equals_brute_force(bin_size):
    costs = [[3.0, 7.0, 12.0], [0.0, 4.0, 9.0], [5.0, 6.0, 20.0]]
    probs = [[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.25, 0.25, 0.5]]
    paths = list(itertools.product(range(3), repeat=3))
    budgets = [7.0, 8.0, 10.5, 14.0, 19.0, 22.0, 25.0, 29.5, 41.0, 100.0]
    for budget in budgets:
        exact = sum(
            math.prod(probs[i][o] for i, o in enumerate(path))
            for path in paths
            if sum(costs[i][o] for i, o in enumerate(path)) <= budget)
        dp = feasibility_dp(probs, costs, budget, bin_size=bin_size)
        assert abs(dp - exact) < 1e-9, (budget, dp, exact)
    assert feasibility_dp(probs, costs, 7.9, bin_size=bin_size) == 0.0
    assert feasibility_dp(probs, costs, 41.0, bin_size=bin_size) == 1.0


def test_dp_rounding_error_is_bounded():
    # costs off the bin grid: the DP lies between the exact values at
    # budget -+ n * bin / 2 (see feasibility_dp)
    probs = uniform(TABLE)
    mu, sigma = moments(probs, TABLE)
    bin_size = 0.5
    slack = len(TABLE) * bin_size / 2
    for budget in (mu - sigma, mu, mu + sigma):
        dp = feasibility_dp(probs, TABLE, budget, bin_size=bin_size)
        low = feasibility_dp(probs, TABLE, budget - slack, bin_size=1e-3)
        high = feasibility_dp(probs, TABLE, budget + slack, bin_size=1e-3)
        assert low - 1e-6 <= dp <= high + 1e-6


def test_clt_and_mc_degenerate_cases():
    costs = [[2.0, 5.0], [1.0, 3.0]]
    one_hot = [[1.0, 0.0], [0.0, 1.0]]  # always costs 5
    assert feasibility_clt(one_hot, costs, 5.0) == 1.0
    assert feasibility_clt(one_hot, costs, 4.9) == 0.0
    # MC never draws an op of probability 0
    assert feasibility_mc(one_hot, costs, 5.0, num_samples=1000) == 1.0
    mixed = [[0.5, 0.5], [0.5, 0.5]]
    assert feasibility_mc(mixed, costs, 5.0, seed=3) == feasibility_mc(
        mixed, costs, 5.0, seed=3)
    assert abs(feasibility_mc(mixed, costs, 5.0) - 0.5) < 0.01  # 2 of 4


def test_budget_below_the_minimum_raises():
    costs = [[4.5, 9.0], [8.0, 3.0, 11.0], [5.0]]  # cheapest path 12.5
    with pytest.raises(ValueError, match=re.escape('12.5')):
        shrink_space(costs, 12.4)
    # exactly the minimum: only the cheapest path remains, and it fits
    result = shrink_space(costs, 12.5, steps=100)
    assert result.kept == [[0], [1], [0]]
    assert result.feasibility == 1.0


@pytest.mark.parametrize('costs, position', [
    ([[1.0, 2.0], [3.0], [-1.0, 2.0]], 2),
    ([[1.0, 2.0], [], [1.0]], 1),
    ([[1.0, float('nan')], [1.0]], 0),
])
def test_malformed_costs_name_the_position(costs, position):
    with pytest.raises(ValueError, match=f'position {position}'):
        shrink_space(costs, 10.0)
    probs = [[1.0 / max(len(c), 1)] * len(c) for c in costs]
    with pytest.raises(ValueError, match=f'position {position}'):
        feasibility_dp(probs, costs, 10.0)


def test_malformed_probs_name_the_position():
    costs = [[1.0, 2.0], [3.0, 4.0, 5.0]]
    for fn in (feasibility_clt, feasibility_dp, feasibility_mc):
        with pytest.raises(ValueError, match='position 1'):
            fn([[0.5, 0.5], [0.5, 0.5]], costs, 5.0)
        with pytest.raises(ValueError, match='position 0'):
            fn([[0.7, 0.7], [0.2, 0.3, 0.5]], costs, 5.0)
        with pytest.raises(ValueError, match='positions'):
            fn([[0.5, 0.5]], costs, 5.0)


def test_reruns_then_greedy_fallback():
    # few positions with a heavy tail: the CLT is optimistic here
    costs = [[0.0, 0.0, 0.314, 1.06], [0.167, 0.306, 0.431, 4.33],
             [0.0, 22.349, 35.495, 222.298]]
    budget = 22.919
    rerun = shrink_space(costs, budget, steps=300)
    assert rerun.reruns >= 1 and rerun.greedy_drops == 0
    assert rerun.feasibility >= TAU - 0.02
    assert rerun.feasibility_clt > rerun.feasibility + 0.03
    greedy = shrink_space(costs, budget, steps=300, max_reruns=0)
    assert greedy.reruns == 0 and greedy.greedy_drops >= 1
    assert greedy.feasibility >= TAU - 0.02
    for p in greedy.probs:
        assert sum(p) == pytest.approx(1.0, abs=1e-12)


def test_reproducible_and_json_round_trip():
    table = TABLE[:4]
    budget = sum(float(c.mean()) for c in table)
    first = shrink_space(table, budget, steps=100)
    second = shrink_space(table, budget, steps=100)
    assert first == second
    data = first.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) >= {'probs', 'kept', 'feasibility', 'feasibility_clt',
                         'mu', 'sigma', 'budget'}
    assert ShrinkResult(**data) == first
