"""Power analysis: participants per condition needed to detect an accuracy difference.

Model: participant i in a condition with mean accuracy p has their own accuracy
p_i ~ Beta(mean p, sd τ) (τ = 0: everyone has p), answers T trials, and scores
a_i = Binomial(T, p_i) / T. The analysis compares two conditions with Welch's t-test on the
a_i (two-sided, level α). Var(a_i) = (p(1 − p) − τ²) / T + τ².

* :func:`participants_needed` — normal approximation:
  n = ⌈(z_{1−α/2} + z_{power})² · (Var₁ + Var₂) / Δ²⌉ per condition.
* :func:`simulated_power` — Monte Carlo power of exactly that test (vectorised).
* :func:`run_power` — the ``fvlab study power`` job: both, plus the smallest n whose simulated
  power reaches the target, inflated for an expected exclusion rate.

Every function reads the design from one :class:`PowerSettings`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from fvlab.jobs import OutDir, SettingsError, finish
from fvlab.study.settings import PowerSettings


def accuracy_variance(p: float, n_trials: int, sd: float = 0.0) -> float:
    """Var of one participant's accuracy over ``n_trials`` trials (see module docstring)."""
    return (p * (1 - p) - sd**2) / n_trials + sd**2


def participants_needed(design: PowerSettings) -> int:
    """Participants per condition by the normal approximation (two-sided test)."""
    design.need_difference()
    z = stats.norm.ppf(1 - design.alpha / 2) + stats.norm.ppf(design.power)
    total_var = sum(
        accuracy_variance(p, design.n_trials, design.sd) for p in (design.p1, design.p2)
    )
    return max(2, math.ceil(z**2 * total_var / (design.p1 - design.p2) ** 2))


def _accuracies(p: float, n: int, design: PowerSettings, rng: np.random.Generator) -> np.ndarray:
    """(n_sims, n) simulated participant accuracies in a condition of mean accuracy ``p``."""
    sd, shape = design.sd, (design.n_sims, n)
    if sd > 0:
        concentration = p * (1 - p) / sd**2 - 1
        ability = rng.beta(p * concentration, (1 - p) * concentration, size=shape)
    else:
        ability = np.full(shape, p)
    return rng.binomial(design.n_trials, ability) / design.n_trials


def simulated_power(design: PowerSettings, n: int) -> float:
    """Fraction of ``design.n_sims`` simulated studies (n per condition) where Welch's t-test
    rejects at ``design.alpha``. With p1 = p2 this is the test's false-positive rate (≈ α)."""
    if n < 2:
        raise SettingsError("n", f"need n >= 2 participants per condition, got {n}")
    rng = np.random.default_rng(design.seed)
    a = _accuracies(design.p1, n, design, rng)
    b = _accuracies(design.p2, n, design, rng)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant samples at small n
        pvalues = stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue
    # Identical constant samples give nan: no evidence, no rejection.
    return float(np.mean(np.nan_to_num(pvalues, nan=1.0) < design.alpha))


@dataclass
class PowerResult:
    """Sample sizes per condition (analytic, simulated, to recruit) and the power curve."""

    settings: PowerSettings
    n_analytic: int
    n_simulated: int
    curve: list[dict[str, float]]

    @property
    def n_to_recruit(self) -> int:
        """The simulated n inflated for exclusions: ⌈n / (1 − exclusion_rate)⌉."""
        return math.ceil(self.n_simulated / (1 - self.settings.exclusion_rate))

    def summary(self) -> dict[str, Any]:
        s = self.settings
        return {
            "p1": s.p1,
            "p2": s.p2,
            "difference": s.p1 - s.p2,
            "trials_per_participant": s.n_trials,
            "participant_sd": s.sd,
            "alpha": s.alpha,
            "target_power": s.power,
            "test": "Welch t-test on per-participant accuracy, two-sided",
            "n_analytic": self.n_analytic,
            "n_simulated": self.n_simulated,
            "n_to_recruit": self.n_to_recruit,
            "exclusion_rate": s.exclusion_rate,
            "n_sims": s.n_sims,
            "curve": self.curve,
        }

    def save(self, out: Path) -> Path:
        from fvlab.report.summary import write_summary

        return write_summary(out, self.summary())


def run_power(settings: PowerSettings, out: OutDir = None) -> PowerResult:
    """The ``fvlab study power`` job: analytic and simulated sample sizes per condition (the
    smallest n whose simulated power reaches the target), and the power curve around it."""
    s = settings
    analytic = participants_needed(s)
    lo, hi = 2, max(4, 2 * analytic)
    while simulated_power(s, hi) < s.power:
        lo, hi = hi, hi * 2
        if hi > 100_000:
            raise SettingsError("p2", "more than 100000 participants per condition would be needed")
    while lo < hi:  # smallest n with simulated power >= target (power rises with n)
        mid = (lo + hi) // 2
        if simulated_power(s, mid) >= s.power:
            hi = mid
        else:
            lo = mid + 1
    curve_n = sorted({max(2, round(hi * f)) for f in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)})
    curve = [{"n": n, "power": simulated_power(s, n)} for n in curve_n]
    return finish(PowerResult(s, analytic, hi, curve), out)
