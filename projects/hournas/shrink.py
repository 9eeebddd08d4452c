# Copyright (c) EVLab contributors.
"""Budget-aware shrinking of the non-vital search space (HourNAS stage 2).

HourNAS (arXiv 2005.14446) first searches the vital blocks, then shrinks the
space of the non-vital blocks to the candidates that are affordable under the
remaining budget ``B'`` (``B`` minus the fixed and vital MACs). The paper's
shrinking rule is not published in detail: the objective below is a
re-derivation (the project's HourNAS spec, section 2.4), not the authors'
method or code.

Every non-vital position ``i`` gets a categorical distribution
``p_i = softmax(theta_i)`` over its ops with costs ``f_{i,o}``. Ops are drawn
independently, so the sampled cost ``F = sum_i f_{i,o_i}`` has

    mu      = sum_i sum_o p_{i,o} f_{i,o}
    sigma^2 = sum_i (sum_o p_{i,o} f_{i,o}^2 - (sum_o p_{i,o} f_{i,o})^2)

and, by the central limit theorem, ``P(F <= B') ~ Phi((B' - mu) / sigma)``.
``theta`` (zero at start, i.e. uniform) is optimised with Adam to maximise

    J = 1/n sum_i H(p_i) / log K_i                  (diversity, in [0, 1])
        + eta * mu / B'                             (use the budget)
        - lam * relu(tau - Phi((B' - mu) / sigma))^2  (>= tau affordable)

then ops with ``p < min_prob`` are dropped and the rest renormalised: that is
the shrunk space. Its feasibility ``P(F <= B')`` is verified without the
Gaussian approximation by dynamic programming over a histogram of the sum
(:func:`feasibility_dp`); :func:`feasibility_mc` is a Monte-Carlo check.

Choices of this re-derivation (the spec leaves them open):

- Entropy: each position's entropy is divided by ``log K_i`` (its maximum),
  so positions with different op counts weigh the same; a position with one
  op counts as 1 (it is as diverse as it can be) and has no gradient.
- Feasibility restoration: when the uniform start is many sigmas over the
  budget, ``Phi`` saturates and the penalty's gradient vanishes, so Adam
  would follow ``+eta * mu / B'`` away from feasibility. If the start
  violates the constraint, theta first descends ``relu(z_tau - z)^2``
  (``z = (B' - mu) / sigma``, ``z_tau = Phi^-1(tau)``: the same constraint,
  without saturation) until ``z >= z_tau`` or ``steps`` steps have passed;
  Adam is then restarted on ``J`` itself for ``steps`` steps.
- Repair: if the DP feasibility of the shrunk space is below
  ``tau - 0.02`` (the CLT misjudges skewed or few costs, pruning moves
  mass), the optimisation is rerun from ``theta = 0`` with the target of the
  CLT term raised by the DP shortfall, ``tau_k+1 = tau_k + (tau - dp_k)``
  (capped at 0.999), at most ``max_reruns`` times. If that is not enough
  (e.g. a bimodal sum that no Gaussian target fixes), a greedy fallback
  removes, one at a time, the most expensive op still kept in any position
  (a position with one kept op moves it to its cheapest op) until the DP
  value reaches ``tau - 0.02``. It always terminates: all-cheapest fits,
  as ``budget >= sum_i min_o f_{i,o}`` is checked first and the DP
  represents that path exactly. ``ShrinkResult`` reports both counts.

Everything runs on the CPU in float64 and is deterministic: the same input
gives the same output.
"""
import contextlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

# default DP resolution: this many bins per budget (0.1 M MACs at ~400 M)
_BINS_PER_BUDGET = 4000
# the DP histogram is refused beyond this many bins (memory / time guard)
_MAX_BINS = 10_000_000
# shortfall of the DP feasibility below tau that is accepted
_TAU_TOLERANCE = 0.02
# the CLT target is never raised above this by the reruns
_MAX_TAU = 0.999


@dataclass
class ShrinkResult:
    """The shrunk non-vital space and its feasibility.

    Args:
        probs (list[list[float]]): Per position, the probability of every op
            of the input table (zeros for dropped ops); each sums to 1.
        kept (list[list[int]]): Per position, the indices of the kept ops.
        feasibility (float): ``P(F <= budget)`` of the shrunk space by
            :func:`feasibility_dp`.
        feasibility_clt (float): The same by the normal approximation
            (:func:`feasibility_clt`).
        mu (float): Mean cost of a path sampled from the shrunk space.
        sigma (float): Standard deviation of that cost.
        budget (float): The budget ``B'`` the space was shrunk for.
        reruns (int): Optimisations rerun with a raised CLT target (0 if
            the first one passed the DP check). Defaults to 0.
        greedy_drops (int): Ops removed by the greedy fallback after the
            reruns (0 unless the reruns failed). Defaults to 0.
    """

    probs: List[List[float]]
    kept: List[List[int]]
    feasibility: float
    feasibility_clt: float
    mu: float
    sigma: float
    budget: float
    reruns: int = field(default=0)
    greedy_drops: int = field(default=0)

    def to_dict(self) -> Dict[str, Any]:
        """Plain ``dict`` of built-in types, ready for ``json.dump``."""
        return asdict(self)


def _check_costs(costs: Sequence[Sequence[float]]) -> List[np.ndarray]:
    """Validate a cost table and return it as float64 arrays."""
    if len(costs) == 0:
        raise ValueError('the cost table has no positions')
    table = []
    for i, c in enumerate(costs):
        arr = np.asarray(c, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(
                f'costs of position {i} must be a 1-D sequence, got shape '
                f'{arr.shape}')
        if arr.size == 0:
            raise ValueError(f'position {i} has no ops')
        if not np.all(np.isfinite(arr)):
            raise ValueError(f'position {i} has a non-finite cost')
        if np.any(arr < 0):
            raise ValueError(
                f'position {i} has a negative cost ({arr.min():g})')
        table.append(arr)
    return table


def _check_table(
    probs: Sequence[Sequence[float]], costs: Sequence[Sequence[float]]
) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Validate probabilities against a cost table.

    Each probability vector must match its position's op count, be
    non-negative and sum to 1 (within 1e-6); it is returned renormalised to
    remove rounding residue.
    """
    table = _check_costs(costs)
    if len(probs) != len(table):
        raise ValueError(
            f'probs has {len(probs)} positions but costs has {len(table)}')
    dists = []
    for i, (p, c) in enumerate(zip(probs, table)):
        arr = np.asarray(p, dtype=np.float64)
        if arr.shape != c.shape:
            raise ValueError(
                f'position {i} has {c.size} ops but {arr.size} '
                'probabilities')
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(
                f'probabilities of position {i} must be finite and >= 0')
        total = arr.sum()
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f'probabilities of position {i} sum to {total:.8g}, not 1')
        dists.append(arr / total)
    return dists, table


def _check_budget(budget: float) -> float:
    budget = float(budget)
    if not math.isfinite(budget):
        raise ValueError(f'budget must be finite, got {budget}')
    return budget


def _moments(probs: Sequence[np.ndarray],
             costs: Sequence[np.ndarray]) -> Tuple[float, float]:
    """Mean and standard deviation of ``F = sum_i f_{i,o_i}``."""
    mu = 0.0
    var = 0.0
    for p, c in zip(probs, costs):
        m = float(np.dot(p, c))
        mu += m
        # sum_o p f^2 - (sum_o p f)^2, in the cancellation-free form
        var += float(np.dot(p, (c - m)**2))
    return mu, math.sqrt(var)


def _ndtr(z: float) -> float:
    """Standard normal CDF, accurate in both tails."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def feasibility_clt(probs: Sequence[Sequence[float]],
                    costs: Sequence[Sequence[float]],
                    budget: float) -> float:
    """``P(F <= budget)`` by the normal approximation (central limit).

    ``Phi((budget - mu) / sigma)`` with ``mu`` and ``sigma`` the exact mean
    and standard deviation of the sampled cost (see the module docstring).

    Args:
        probs (Sequence[Sequence[float]]): Per position, a distribution over
            its ops (sums to 1).
        costs (Sequence[Sequence[float]]): Per position, the cost of each op
            (non-negative), same lengths as ``probs``.
        budget (float): The budget ``B'``.

    Returns:
        float: The approximate probability. If ``sigma == 0`` the cost is
        deterministic: 1.0 if ``mu <= budget`` else 0.0.
    """
    dists, table = _check_table(probs, costs)
    budget = _check_budget(budget)
    mu, sigma = _moments(dists, table)
    if sigma == 0.0:
        return 1.0 if mu <= budget else 0.0
    return _ndtr((budget - mu) / sigma)


def _default_bin_size(budget: float) -> float:
    return budget / _BINS_PER_BUDGET if budget > 0 else 1.0


def feasibility_dp(probs: Sequence[Sequence[float]],
                   costs: Sequence[Sequence[float]],
                   budget: float,
                   bin_size: Optional[float] = None) -> float:
    """``P(F <= budget)`` by dynamic programming over a cost histogram.

    The histogram of the partial sum is convolved with one position's op
    distribution at a time. Costs are measured from each position's cheapest
    op (the "excess" ``f_{i,o} - min_o f_{i,o}``, so the cheapest path is
    represented exactly) and each excess is rounded to the nearest multiple
    of ``bin_size``. Mass beyond the budget's slack
    ``budget - sum_i min_o f_{i,o}`` is discarded as it can never become
    feasible again (excesses are non-negative).

    The result is exact for the rounded costs. Rounding moves each op by at
    most ``bin_size / 2`` (without bias: nearest, not floor or ceil), so the
    value lies between the true ``P(F <= budget - n * bin_size / 2)`` and
    ``P(F <= budget + n * bin_size / 2)`` for ``n`` positions; when all
    excesses and the slack are multiples of ``bin_size`` it is exact.

    Args:
        probs (Sequence[Sequence[float]]): Per position, a distribution over
            its ops (sums to 1).
        costs (Sequence[Sequence[float]]): Per position, the cost of each op
            (non-negative), same lengths as ``probs``.
        budget (float): The budget ``B'``.
        bin_size (float, optional): Histogram resolution in cost units (the
            spec uses 0.1 M MACs for ImageNet). Defaults to None, i.e.
            ``budget / 4000`` (1.0 if ``budget <= 0``).

    Returns:
        float: The probability.
    """
    dists, table = _check_table(probs, costs)
    budget = _check_budget(budget)
    if bin_size is None:
        bin_size = _default_bin_size(budget)
    bin_size = float(bin_size)
    if not (math.isfinite(bin_size) and bin_size > 0):
        raise ValueError(f'bin_size must be positive, got {bin_size}')
    slack = budget - sum(float(c.min()) for c in table)
    if slack < 0:
        return 0.0
    # feasible iff (rounded excess, in bins) <= floor(slack / bin_size); the
    # relative tolerance absorbs float noise when slack is a bin multiple
    ratio = slack / bin_size
    n_bins = int(math.floor(ratio + 1e-9 * max(1.0, ratio))) + 1
    if n_bins > _MAX_BINS:
        raise ValueError(
            f'bin_size {bin_size:g} gives {n_bins} bins for the slack '
            f'{slack:g}; use a coarser bin_size')
    hist = np.zeros(n_bins)
    hist[0] = 1.0
    for p, c in zip(dists, table):
        shift = np.rint((c - c.min()) / bin_size).astype(np.int64)
        new = np.zeros(n_bins)
        for p_o, s in zip(p, shift):
            if p_o == 0.0 or s >= n_bins:
                continue
            new[s:] += p_o * hist[:n_bins - s]
        hist = new
    return float(min(hist.sum(), 1.0))


def feasibility_mc(probs: Sequence[Sequence[float]],
                   costs: Sequence[Sequence[float]],
                   budget: float,
                   num_samples: int = 100000,
                   seed: int = 0) -> float:
    """``P(F <= budget)`` by Monte-Carlo sampling of paths.

    Args:
        probs (Sequence[Sequence[float]]): Per position, a distribution over
            its ops (sums to 1).
        costs (Sequence[Sequence[float]]): Per position, the cost of each op
            (non-negative), same lengths as ``probs``.
        budget (float): The budget ``B'``.
        num_samples (int): Number of sampled paths. Defaults to 100000.
        seed (int): Seed of ``numpy.random.default_rng``. Defaults to 0.

    Returns:
        float: The fraction of sampled paths with ``F <= budget`` (standard
        error ``<= 0.5 / sqrt(num_samples)``).
    """
    dists, table = _check_table(probs, costs)
    budget = _check_budget(budget)
    if num_samples < 1:
        raise ValueError(f'num_samples must be >= 1, got {num_samples}')
    rng = np.random.default_rng(seed)
    total = np.zeros(num_samples)
    for p, c in zip(dists, table):
        cdf = np.cumsum(p)
        cdf[-1] = 1.0
        # inverse CDF; side='right' never picks an op with p == 0
        idx = np.searchsorted(cdf, rng.random(num_samples), side='right')
        total += c[np.minimum(idx, c.size - 1)]
    return float(np.mean(total <= budget))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, as the tensors are tiny.

    Multi-threaded kernels only add synchronisation here: on a loaded 2-core
    machine they made each Adam step ~5x slower. One thread also fixes the
    reduction order, so results do not depend on the thread count. The
    previous setting is restored on exit (process-global, like any
    ``torch.set_num_threads``).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _optimise_logits(cost: torch.Tensor, mask: torch.Tensor,
                     log_k: torch.Tensor, tau: float, eta: float,
                     lam: float, lr: float, steps: int) -> torch.Tensor:
    """Maximise ``J`` over padded logits; returns ``p`` of shape (n, K)."""
    n = cost.shape[0]
    theta = torch.zeros_like(cost, requires_grad=True)
    z_tau = float(torch.special.ndtri(torch.tensor(tau, dtype=cost.dtype)))
    # positions with one op: H / log K is 0 / 0, counted as 1 (constant)
    multi = log_k > 0
    safe_log_k = torch.where(multi, log_k, torch.ones_like(log_k))
    tiny = torch.finfo(cost.dtype).tiny

    def stats(theta: torch.Tensor):
        # padded entries get -inf logits: p = 0 and no gradient there
        logp = torch.log_softmax(theta.masked_fill(~mask, -math.inf), -1)
        p = logp.exp()
        ent = -(p * logp.masked_fill(~mask, 0.0)).sum(-1)  # (n, )
        ent = torch.where(multi, ent / safe_log_k, torch.ones_like(ent))
        m_i = (p * cost).sum(-1)  # (n, )
        mu = m_i.sum()
        var = (p * (cost - m_i[:, None])**2).sum()
        z = (1.0 - mu) / var.clamp_min(tiny).sqrt()  # costs are / budget
        return p, ent.sum() / n, mu, z

    # feasibility restoration (see the module docstring): Phi(z) saturates
    # far from the budget, relu(z_tau - z)^2 does not
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        _, _, _, z = stats(theta)
        if z.item() >= z_tau:
            break
        opt.zero_grad()
        (torch.relu(z_tau - z)**2).backward()
        opt.step()

    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        _, ent, mu, z = stats(theta)
        # J = H_norm + eta * mu / B' - lam * relu(tau - Phi(z))^2
        objective = ent + eta * mu - lam * torch.relu(
            tau - torch.special.ndtr(z))**2
        opt.zero_grad()
        (-objective).backward()
        opt.step()
    with torch.no_grad():
        return stats(theta)[0]


def _prune(p: np.ndarray, min_prob: float) -> np.ndarray:
    """Drop ops with ``p < min_prob`` (never the argmax), renormalise."""
    keep = p >= min_prob
    keep[int(np.argmax(p))] = True
    out = np.where(keep, p, 0.0)
    return out / out.sum()


def shrink_space(costs: Sequence[Sequence[float]],
                 budget: float,
                 tau: float = 0.9,
                 eta: float = 1.0,
                 lam: float = 100.0,
                 lr: float = 0.05,
                 steps: int = 1000,
                 min_prob: float = 0.02,
                 bin_size: Optional[float] = None,
                 max_reruns: int = 3) -> ShrinkResult:
    """Shrink the non-vital space to the ops affordable under ``budget``.

    See the module docstring for the objective, the feasibility restoration
    and the repair policy.

    Args:
        costs (Sequence[Sequence[float]]): Per non-vital position, the cost
            ``f_{i,o}`` of each op (e.g. M MACs), non-negative.
        budget (float): The remaining budget ``B'`` for the non-vital
            positions, in the units of ``costs``.
        tau (float): Required probability that a sampled path fits.
            Defaults to 0.9.
        eta (float): Weight of the budget-use term ``mu / B'``.
            Defaults to 1.0.
        lam (float): Weight ``lambda`` of the feasibility penalty.
            Defaults to 100.0.
        lr (float): Adam learning rate. Defaults to 0.05.
        steps (int): Adam steps on ``J``. Defaults to 1000.
        min_prob (float): Ops below this probability are dropped (at least
            the most probable op of every position is kept).
            Defaults to 0.02.
        bin_size (float, optional): Resolution of the DP check, see
            :func:`feasibility_dp`. Defaults to None (``budget / 4000``).
        max_reruns (int): Reruns with a raised CLT target allowed when the
            DP feasibility falls below ``tau - 0.02``, before the greedy
            fallback. Defaults to 3.

    Returns:
        ShrinkResult: The shrunk distributions and their feasibility.

    Raises:
        ValueError: On a malformed table (naming the position), on
            out-of-range settings, or when no architecture fits
            (``budget < sum_i min_o f_{i,o}``).
    """
    table = _check_costs(costs)
    budget = _check_budget(budget)
    if not 0.0 < tau < 1.0:
        raise ValueError(f'tau must be in (0, 1), got {tau}')
    if not 0.0 <= min_prob < 1.0:
        raise ValueError(f'min_prob must be in [0, 1), got {min_prob}')
    if steps < 0 or max_reruns < 0:
        raise ValueError('steps and max_reruns must be >= 0')
    if lr <= 0:
        raise ValueError(f'lr must be positive, got {lr}')
    if bin_size is not None and not (math.isfinite(bin_size)
                                     and bin_size > 0):
        raise ValueError(f'bin_size must be positive, got {bin_size}')
    min_cost = sum(float(c.min()) for c in table)
    if budget < min_cost:
        raise ValueError(
            f'budget {budget:g} is below the smallest achievable cost '
            f'{min_cost:g} (every position at its cheapest op): no '
            'architecture fits')
    if budget <= 0:
        # only the free ops fit (budget == min_cost == 0)
        probs = [_prune(np.where(c == 0, 1.0, 0.0) / np.sum(c == 0), 0.0)
                 for c in table]
        return _result(probs, table, budget, bin_size, 0, 0)

    n, k_max = len(table), max(c.size for c in table)
    cost = torch.zeros(n, k_max, dtype=torch.float64)
    mask = torch.zeros(n, k_max, dtype=torch.bool)
    for i, c in enumerate(table):
        cost[i, :c.size] = torch.from_numpy(c / budget)  # scale-free
        mask[i, :c.size] = True
    log_k = torch.tensor([math.log(c.size) for c in table],
                         dtype=torch.float64)

    tau_opt = tau
    target = tau - _TAU_TOLERANCE
    for rerun in range(max_reruns + 1):
        with _one_thread():
            p = _optimise_logits(cost, mask, log_k, tau_opt, eta, lam, lr,
                                 steps).numpy()
        probs = [_prune(p[i, :c.size].copy(), min_prob)
                 for i, c in enumerate(table)]
        feasibility = feasibility_dp(probs, table, budget, bin_size)
        if feasibility >= target:
            return _result(probs, table, budget, bin_size, rerun, 0)
        tau_opt = min(tau_opt + (tau - feasibility), _MAX_TAU)
    drops = 0
    while feasibility < target:
        probs = _drop_most_expensive(probs, table)
        drops += 1
        feasibility = feasibility_dp(probs, table, budget, bin_size)
    return _result(probs, table, budget, bin_size, max_reruns, drops)


def _drop_most_expensive(probs: List[np.ndarray],
                         table: List[np.ndarray]) -> List[np.ndarray]:
    """One greedy repair move: remove the most expensive kept op.

    Over all positions, the kept op of the largest cost that is not the only
    cheapest choice is removed: with two or more kept ops it is dropped and
    the rest renormalised; a single kept op hands its mass to the position's
    cheapest op. Ties go to the lowest position index.
    """
    best_cost, best = -math.inf, None
    for i, (p, c) in enumerate(zip(probs, table)):
        kept = np.flatnonzero(p > 0)
        j = int(kept[np.argmax(c[kept])])
        if (kept.size > 1 or c[j] > c.min()) and c[j] > best_cost:
            best_cost, best = float(c[j]), (i, j)
    if best is None:
        # every position is at its cheapest op: the DP value is 1 then
        raise RuntimeError('no op left to drop')
    i, j = best
    out = list(probs)
    p = probs[i].copy()
    if np.count_nonzero(p) == 1:
        p[int(np.argmin(table[i]))] = 1.0
    p[j] = 0.0
    out[i] = p / p.sum()
    return out


def _result(probs: List[np.ndarray], table: List[np.ndarray], budget: float,
            bin_size: Optional[float], reruns: int,
            greedy_drops: int) -> ShrinkResult:
    mu, sigma = _moments(probs, table)
    return ShrinkResult(
        probs=[[float(x) for x in p] for p in probs],
        kept=[[int(j) for j in np.flatnonzero(p > 0)] for p in probs],
        feasibility=feasibility_dp(probs, table, budget, bin_size),
        feasibility_clt=feasibility_clt(probs, table, budget),
        mu=mu,
        sigma=sigma,
        budget=budget,
        reruns=reruns,
        greedy_drops=greedy_drops)
