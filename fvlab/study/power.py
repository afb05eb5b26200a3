"""Power analysis: participants per condition needed to detect an accuracy difference.

Model: participant i in a condition with mean accuracy p has their own accuracy
p_i ~ Beta(mean p, sd τ) (τ = 0: everyone has p), answers T trials, and scores
a_i = Binomial(T, p_i) / T. The analysis compares two conditions with Welch's t-test on the
a_i (two-sided, level α). Var(a_i) = (p(1 − p) − τ²) / T + τ².

* :func:`participants_needed` — normal approximation:
  n = ⌈(z_{1−α/2} + z_{power})² · (Var₁ + Var₂) / Δ²⌉ per condition.
* :func:`simulated_power` — Monte Carlo power of exactly that test (vectorised).
* :func:`power_analysis` — both, plus the smallest n whose simulated power reaches the target,
  inflated for an expected exclusion rate.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

from fvlab.errors import FvlabError


def _check(
    p1: float,
    p2: float,
    n_trials: int,
    sd: float,
    alpha: float,
    power: float,
    need_difference: bool = True,
) -> None:
    for name, p in (("p1", p1), ("p2", p2)):
        if not 0 < p < 1:
            raise FvlabError(f"{name} must be an accuracy in (0, 1), got {p}")
        if sd > 0 and sd**2 >= p * (1 - p):
            raise FvlabError(
                f"participant sd {sd} is too large for accuracy {p}: need sd² < p(1 − p)"
            )
    if need_difference and p1 == p2:
        raise FvlabError("p1 and p2 are equal: there is no difference to detect")
    if n_trials < 1 or sd < 0 or not 0 < alpha < 1 or not 0 < power < 1:
        raise FvlabError(
            f"need trials >= 1, sd >= 0, alpha and power in (0, 1); got trials={n_trials}, "
            f"sd={sd}, alpha={alpha}, power={power}"
        )


def accuracy_variance(p: float, n_trials: int, sd: float = 0.0) -> float:
    """Var of one participant's accuracy over ``n_trials`` trials (see module docstring)."""
    return (p * (1 - p) - sd**2) / n_trials + sd**2


def participants_needed(
    p1: float,
    p2: float,
    n_trials: int = 18,
    sd: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Participants per condition by the normal approximation (two-sided test)."""
    _check(p1, p2, n_trials, sd, alpha, power)
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    total_var = accuracy_variance(p1, n_trials, sd) + accuracy_variance(p2, n_trials, sd)
    return max(2, math.ceil(z**2 * total_var / (p1 - p2) ** 2))


def _accuracies(
    p: float, n: int, n_trials: int, sd: float, n_sims: int, rng: np.random.Generator
) -> np.ndarray:
    if sd > 0:
        concentration = p * (1 - p) / sd**2 - 1
        ability = rng.beta(p * concentration, (1 - p) * concentration, size=(n_sims, n))
    else:
        ability = np.full((n_sims, n), p)
    return rng.binomial(n_trials, ability) / n_trials


def simulated_power(
    n: int,
    p1: float,
    p2: float,
    n_trials: int = 18,
    sd: float = 0.0,
    alpha: float = 0.05,
    n_sims: int = 2000,
    seed: int = 0,
) -> float:
    """Fraction of ``n_sims`` simulated studies (n per condition) where Welch's t-test rejects.

    With p1 = p2 this is the test's false-positive rate (≈ α).
    """
    _check(p1, p2, n_trials, sd, alpha, 0.5, need_difference=False)
    if n < 2 or n_sims < 1:
        raise FvlabError(f"need n >= 2 participants per condition and n_sims >= 1, got {n}")
    rng = np.random.default_rng(seed)
    a = _accuracies(p1, n, n_trials, sd, n_sims, rng)
    b = _accuracies(p2, n, n_trials, sd, n_sims, rng)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant samples at small n
        pvalues = stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue
    # Identical constant samples give nan: no evidence, no rejection.
    return float(np.mean(np.nan_to_num(pvalues, nan=1.0) < alpha))


def power_analysis(
    p1: float,
    p2: float,
    n_trials: int = 18,
    sd: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
    exclusion_rate: float = 0.0,
    n_sims: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Analytic and simulated sample sizes per condition, and the power curve around them."""
    _check(p1, p2, n_trials, sd, alpha, power)
    if not 0 <= exclusion_rate < 1:
        raise FvlabError(f"exclusion rate must be in [0, 1), got {exclusion_rate}")
    analytic = participants_needed(p1, p2, n_trials, sd, alpha, power)
    lo, hi = 2, max(4, 2 * analytic)
    while simulated_power(hi, p1, p2, n_trials, sd, alpha, n_sims, seed) < power:
        lo, hi = hi, hi * 2
        if hi > 100_000:
            raise FvlabError("more than 100000 participants per condition would be needed")
    while lo < hi:  # smallest n with simulated power >= target (power rises with n)
        mid = (lo + hi) // 2
        if simulated_power(mid, p1, p2, n_trials, sd, alpha, n_sims, seed) >= power:
            hi = mid
        else:
            lo = mid + 1
    curve_n = sorted({max(2, round(hi * f)) for f in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)})
    curve = [
        {"n": n, "power": simulated_power(n, p1, p2, n_trials, sd, alpha, n_sims, seed)}
        for n in curve_n
    ]
    return {
        "p1": p1,
        "p2": p2,
        "difference": p1 - p2,
        "trials_per_participant": n_trials,
        "participant_sd": sd,
        "alpha": alpha,
        "target_power": power,
        "test": "Welch t-test on per-participant accuracy, two-sided",
        "n_analytic": analytic,
        "n_simulated": hi,
        "n_to_recruit": math.ceil(hi / (1 - exclusion_rate)),
        "exclusion_rate": exclusion_rate,
        "n_sims": n_sims,
        "curve": curve,
    }
