"""Affine units: how well does the arg max order pairs of inputs?

Unit f(x) = w·x + b on [0, 1]^d with w_i iid Laplace(0, 1). Its visualization is the corner
x⁺ = 1[w > 0] (arg max) and x⁻ = 1[w < 0] (arg min), i.e. s = sign(w), plus the values there,
which give b and ‖w‖₁ only. Under the Laplace prior the direction w / ‖w‖₁ is independent of
‖w‖₁ (|w_i| are iid exponential), so given the visualization |w| / ‖w‖₁ is uniform on the
simplex and the values carry no information about the order of two inputs.

Task: for x, y iid uniform on the cube, predict whether f(x) > f(y). With z = s ⊙ (x − y),
f(x) − f(y) = |w|·z, and the best decoder predicts "x" iff q(z) = P(u·z > 0) > 1/2, u uniform on
the simplex; its accuracy is E[max(q, 1 − q)].

* d = 1: f(x) − f(y) = |w| z, so sign(z) is the answer (q ∈ {0, 1}): accuracy 1.
* d = 2: the best decoder is sign(z₁ + z₂) and its accuracy is exactly 1/6 + ln 2 ≈ 0.8598
  (derivation in docs/theory.md; :func:`d2_accuracy_by_quadrature` re-computes the integral).
* d → ∞: (Σ z_i, Σ |w_i| z_i) becomes bivariate normal with correlation E|w|/√E[w²] = 1/√2, so
  the accuracy tends to 1 − arccos(1/√2)/π = 3/4.
* other d: no closed form here; Monte Carlo brackets the best decoder's accuracy between the
  accuracy of an actual decoder (majority vote over K posterior draws) and E[max(q̂, 1 − q̂)],
  which overestimates E[max(q, 1 − q)] on average (Jensen: max(q, 1 − q) is convex in q).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fvlab.errors import FvlabError

#: accuracy of the best decoder for d = 2 (closed form)
D2_ACCURACY = 1 / 6 + math.log(2)
#: limit of the best decoder's accuracy as d → ∞
LIMIT_ACCURACY = 1 - math.acos(1 / math.sqrt(2)) / math.pi


def analytic_accuracy(d: int) -> float | None:
    """The best decoder's pair-ordering accuracy where a closed form is known (d = 1, 2)."""
    return {1: 1.0, 2: D2_ACCURACY}.get(d)


def d2_accuracy_by_quadrature() -> float:
    """1/2 + 1/2 · E[max(t₁, t₂)/(t₁ + t₂)] with t_i iid of density 2(1 − t) on [0, 1] (|z_i| of
    a difference of two uniforms), integrated numerically with scipy."""
    from scipy import integrate

    def integrand(t2: float, t1: float) -> float:  # the half t2 < t1 (the other is symmetric)
        return t1 / (t1 + t2) * 4 * (1 - t1) * (1 - t2)

    half, _ = integrate.dblquad(integrand, 0, 1, 0, lambda t1: t1, epsabs=1e-12, epsrel=1e-12)
    return 0.5 + half


@dataclass
class Estimate:
    """A Monte Carlo estimate with a 95 % confidence interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return {"value": self.value, "ci95": [self.low, self.high]}


def _wilson(correct: int, n: int) -> Estimate:
    from scipy.stats import binomtest

    ci = binomtest(correct, n).proportion_ci(0.95, method="wilson")
    return Estimate(correct / n, float(ci.low), float(ci.high))


def _mean_ci(values: np.ndarray) -> Estimate:
    mean = float(values.mean())
    half = 1.959964 * float(values.std(ddof=1)) / math.sqrt(len(values))
    return Estimate(mean, mean - half, min(1.0, mean + half))


@dataclass
class OrderingAtD:
    """Pair-ordering accuracies at one dimension d."""

    d: int
    n_pairs: int
    sum_rule: Estimate  # decoder sign(Σ z_i) (posterior-mean weights)
    vote: Estimate  # majority vote over K posterior draws: a real decoder (≤ the best)
    best_upper: Estimate  # E[max(q̂, 1 − q̂)]: ≥ the best decoder's accuracy on average
    analytic: float | None

    def as_dict(self) -> dict:
        return {
            "d": self.d,
            "n_pairs": self.n_pairs,
            "sum_rule": self.sum_rule.as_dict(),
            "posterior_vote": self.vote.as_dict(),
            "best_decoder_upper": self.best_upper.as_dict(),
            "analytic_best": self.analytic,
        }


def simulate_ordering(
    d: int, n_pairs: int = 20000, posterior_draws: int = 128, seed: int = 0, chunk: int = 2000
) -> OrderingAtD:
    """Monte Carlo over random units (w ~ Laplace^d) and pairs (x, y ~ U[0, 1]^d)."""
    if d < 1 or n_pairs < 2 or posterior_draws < 1:
        raise FvlabError(
            f"need d >= 1, n_pairs >= 2 and posterior_draws >= 1; got {d}, {n_pairs}, "
            f"{posterior_draws}"
        )
    rng = np.random.default_rng([seed, d])
    w = rng.laplace(size=(n_pairs, d))
    x, y = rng.random((n_pairs, d)), rng.random((n_pairs, d))
    truth = np.einsum("nd,nd->n", w, x - y) > 0
    argmax = w > 0  # the visualization: the maximising corner
    z = np.where(argmax, 1.0, -1.0) * (x - y)
    sum_rule = z.sum(axis=1) > 0
    q_hat = np.empty(n_pairs)
    for start in range(0, n_pairs, chunk):
        block = z[start : start + chunk]
        # u ∝ iid Exp(1) is uniform on the simplex; the sign of u·z ignores the normalisation
        draws = rng.standard_exponential((len(block), posterior_draws, d))
        q_hat[start : start + chunk] = (draws @ block[:, :, None] > 0).mean(axis=(1, 2))
    vote = np.where(q_hat == 0.5, sum_rule, q_hat > 0.5)
    return OrderingAtD(
        d=d,
        n_pairs=n_pairs,
        sum_rule=_wilson(int((sum_rule == truth).sum()), n_pairs),
        vote=_wilson(int((vote == truth).sum()), n_pairs),
        best_upper=_mean_ci(np.maximum(q_hat, 1 - q_hat)),
        analytic=analytic_accuracy(d),
    )


@dataclass
class AffineDemo:
    """The accuracy curve over d."""

    curve: list[OrderingAtD]
    d2_quadrature: float
    limit: float = LIMIT_ACCURACY
    notes: list[str] = field(default_factory=list)

    def at(self, d: int) -> OrderingAtD:
        for row in self.curve:
            if row.d == d:
                return row
        raise FvlabError(f"d = {d} was not simulated; simulated: {[r.d for r in self.curve]}")

    def checks(self) -> dict[str, bool]:
        checks = {}
        for row in self.curve:
            if row.d == 1:
                checks["d1_every_pair_ordered_correctly"] = (
                    row.sum_rule.value == 1.0 and row.vote.value == 1.0
                )
            else:
                checks[f"d{row.d}_best_decoder_below_1"] = row.best_upper.high < 1.0
        if any(r.d == 2 for r in self.curve):
            row = self.at(2)
            checks["d2_matches_closed_form"] = row.sum_rule.low <= D2_ACCURACY <= row.sum_rule.high
        checks["d2_closed_form_matches_quadrature"] = abs(self.d2_quadrature - D2_ACCURACY) < 1e-8
        return checks

    def summary(self) -> dict:
        return {
            "prior": "w_i iid Laplace(0, 1); x, y iid uniform on [0, 1]^d",
            "d2_closed_form": D2_ACCURACY,
            "d2_quadrature": self.d2_quadrature,
            "limit_d_to_infinity": self.limit,
            "curve": [row.as_dict() for row in self.curve],
            "checks": self.checks(),
        }


def demonstrate_affine(
    dims: tuple[int, ...] = (1, 2, 3, 4, 5, 7, 10, 15, 20),
    n_pairs: int = 20000,
    posterior_draws: int = 128,
    seed: int = 0,
) -> AffineDemo:
    """The pair-ordering accuracy curve over ``dims``."""
    curve = [simulate_ordering(d, n_pairs, posterior_draws, seed) for d in sorted(set(dims))]
    return AffineDemo(curve=curve, d2_quadrature=d2_accuracy_by_quadrature())


def plot_affine(demo: AffineDemo, path: str | Path) -> Path:
    """Accuracy over d: the three estimates with 95 % intervals, closed forms and the limit."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.6), constrained_layout=True)
    ax = fig.subplots()
    dims = np.array([r.d for r in demo.curve])
    series = (
        ("best decoder, upper estimate E[max(q̂, 1−q̂)]", "best_upper", "tab:red", -0.04),
        ("posterior-vote decoder (a real decoder)", "vote", "tab:blue", 0.0),
        ("sum-rule decoder sign(Σ s_i (x_i − y_i))", "sum_rule", "tab:green", 0.04),
    )
    for label, attr, color, shift in series:
        est = [getattr(r, attr) for r in demo.curve]
        value = np.array([e.value for e in est])
        err = np.array([[e.value - e.low for e in est], [e.high - e.value for e in est]])
        ax.errorbar(
            dims + shift, value, yerr=err, fmt="o-", ms=4, capsize=3, color=color, label=label
        )
    known = [(d, analytic_accuracy(d)) for d in (1, 2)]
    ax.plot(
        *zip(*known, strict=True), "k*", ms=12, label="closed form (d = 1: 1, d = 2: 1/6 + ln 2)"
    )
    ax.axhline(demo.limit, color="gray", ls="--", label="limit d → ∞: 3/4")
    ax.set_xscale("log")
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_xlabel("input dimension d")
    ax.set_ylabel("P(pair ordered correctly)")
    ax.set_ylim(0.7, 1.02)
    ax.set_title("Affine unit: ordering two inputs from the arg max (95 % CIs)")
    ax.legend(fontsize=8, loc="upper right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
