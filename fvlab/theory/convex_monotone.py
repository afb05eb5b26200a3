"""Convex and monotone units: same arg max / arg min, different behaviour elsewhere.

Explicit pairs on [0, 1]^d (c = 0.3 · 1):

* convex: f(x) = ‖x − c‖² and g(x) = max(f(x), α (x₁ − c₁)) with
  α = (f(e₁) + max f) / (2 (1 − c₁)). Both are convex (a maximum of convex functions); both have
  their unique minimum 0 at c (the affine piece vanishes there and g ≥ f > 0 elsewhere) and
  their unique maximum d · 0.49 at the corner 1 (the affine piece stays below it); but
  g(e₁) = (f(e₁) + max f) / 2 > f(e₁), which also reverses the order of some pairs.
* monotone, values: f(x) = mean(x) and g(x) = mean(x)³: both strictly increasing in every
  coordinate, arg max 1 (value 1) and arg min 0 (value 0); g = f³ < f inside, same orderings.
* monotone, orderings (d ≥ 2): f(x) = w·x / Σw and g(x) = w′·x / Σw′ with w = (d, …, 1) and
  w′ = (1, …, d): same extremes and values, opposite orders of e₁ and e_d.

Each pair is checked numerically on a grid: convexity (midpoint inequality on random pairs of
grid points) or monotonicity (differences along every axis), identical arg max / arg min on the
grid, and the size of the difference elsewhere (max |f − g|, share of pairs ordered
differently).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fvlab.errors import FvlabError

Fn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FunctionPair:
    """Two functions of one class with the same visualization."""

    name: str
    kind: str  # "convex" or "monotone"
    f: Fn
    g: Fn
    d: int
    formula: str


def convex_pair(d: int = 2, centre: float = 0.3) -> FunctionPair:
    """‖x − c‖² and its maximum with an affine piece (see the module docstring)."""
    if d < 1 or not 0 < centre < 0.5:
        raise FvlabError(f"need d >= 1 and 0 < centre < 0.5, got d={d}, centre={centre}")
    c = np.full(d, centre)

    def f(x: np.ndarray) -> np.ndarray:
        return ((x - c) ** 2).sum(axis=1)

    corner = np.ones((1, d))
    e1 = np.zeros((1, d))
    e1[0, 0] = 1.0
    alpha = float(f(e1)[0] + f(corner)[0]) / (2 * (1 - centre))

    def g(x: np.ndarray) -> np.ndarray:
        return np.maximum(f(x), alpha * (x[:, 0] - centre))

    formula = f"f = ‖x − {centre}·1‖², g = max(f, {alpha:.3f}·(x₁ − {centre}))"
    return FunctionPair("convex", "convex", f, g, d, formula)


def monotone_value_pair(d: int = 2) -> FunctionPair:
    """mean(x) and mean(x)³."""
    if d < 1:
        raise FvlabError(f"need d >= 1, got {d}")
    return FunctionPair(
        "monotone (values differ)",
        "monotone",
        lambda x: x.mean(axis=1),
        lambda x: x.mean(axis=1) ** 3,
        d,
        "f = mean(x), g = mean(x)³",
    )


def monotone_order_pair(d: int = 2) -> FunctionPair:
    """Normalised weighted sums with reversed positive weights."""
    if d < 2:
        raise FvlabError(f"orderings can only differ for d >= 2, got d={d}")
    w = np.arange(d, 0, -1, dtype=float)
    w, w_rev = w / w.sum(), w[::-1] / w.sum()
    return FunctionPair(
        "monotone (orderings differ)",
        "monotone",
        lambda x: x @ w,
        lambda x: x @ w_rev,
        d,
        f"f = w·x, g = w′·x, w = {np.round(w, 3).tolist()}, w′ reversed",
    )


def grid(d: int, n: int) -> np.ndarray:
    """All points of the regular grid with n points per axis on [0, 1]^d, (n^d, d)."""
    axes = np.meshgrid(*([np.linspace(0, 1, n)] * d), indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=1)


def convexity_violation(fn: Fn, d: int, n: int = 21, n_pairs: int = 20000, seed: int = 0) -> float:
    """max over random pairs of grid points of fn((x + y)/2) − (fn(x) + fn(y))/2 (≤ 0 if convex)."""
    points = grid(d, n)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(points), (2, n_pairs))
    x, y = points[i], points[j]
    return float((fn((x + y) / 2) - (fn(x) + fn(y)) / 2).max())


def monotonicity_violation(fn: Fn, d: int, n: int = 21) -> float:
    """max over grid points and axes of fn(x) − fn(x + step · e_k) (≤ 0 if non-decreasing).
    Returns −min increase: strictly negative means strictly increasing on the grid."""
    values = fn(grid(d, n)).reshape((n,) * d)
    return float(max((-np.diff(values, axis=k)).max() for k in range(d)))


def grid_extrema(fn: Fn, d: int, n: int) -> dict:
    """Arg max / arg min on the grid (index and point) and the values there."""
    points = grid(d, n)
    values = fn(points)
    top, bottom = int(values.argmax()), int(values.argmin())
    return {
        "argmax": points[top].tolist(),
        "max": float(values[top]),
        "argmin": points[bottom].tolist(),
        "min": float(values[bottom]),
        "n_maximisers": int(np.isclose(values, values[top], rtol=0, atol=1e-12).sum()),
        "n_minimisers": int(np.isclose(values, values[bottom], rtol=0, atol=1e-12).sum()),
    }


@dataclass
class PairReport:
    """The numeric checks of one :class:`FunctionPair`."""

    pair: FunctionPair
    violation_f: float
    violation_g: float
    extrema_f: dict
    extrema_g: dict
    max_abs_difference: float
    where_largest: list[float]
    flipped_order_share: float

    def checks(self, tol: float = 1e-12) -> dict[str, bool]:
        same_extrema = all(
            np.allclose(self.extrema_f[k], self.extrema_g[k], rtol=0, atol=1e-12)
            for k in ("argmax", "max", "argmin", "min")
        )
        unique = all(
            e[k] == 1
            for e in (self.extrema_f, self.extrema_g)
            for k in ("n_maximisers", "n_minimisers")
        )
        return {
            f"both_{self.pair.kind}": max(self.violation_f, self.violation_g) <= tol,
            "same_argmax_argmin_and_values": same_extrema,
            "extrema_unique_on_grid": unique,
            "differ_elsewhere": self.max_abs_difference > 1e-3,
        }

    def summary(self) -> dict:
        return {
            "name": self.pair.name,
            "formula": self.pair.formula,
            "d": self.pair.d,
            "violation_f": self.violation_f,
            "violation_g": self.violation_g,
            "extrema_f": self.extrema_f,
            "extrema_g": self.extrema_g,
            "max_abs_difference": self.max_abs_difference,
            "where_largest": self.where_largest,
            "flipped_order_share": self.flipped_order_share,
            "checks": self.checks(),
        }


def check_pair(
    pair: FunctionPair, n: int | None = None, n_pairs: int = 20000, seed: int = 0
) -> PairReport:
    """Run every grid check on ``pair`` (n points per axis; default 201 for d ≤ 2, else 21)."""
    d = pair.d
    n = n or (201 if d <= 2 else 21)
    if pair.kind == "convex":
        vf = convexity_violation(pair.f, d, n, n_pairs, seed)
        vg = convexity_violation(pair.g, d, n, n_pairs, seed)
    else:
        vf, vg = monotonicity_violation(pair.f, d, n), monotonicity_violation(pair.g, d, n)
    points = grid(d, n)
    fv, gv = pair.f(points), pair.g(points)
    largest = int(np.abs(fv - gv).argmax())
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(points), (2, n_pairs))
    df, dg = fv[i] - fv[j], gv[i] - gv[j]
    strict = (np.abs(df) > 1e-12) & (np.abs(dg) > 1e-12)
    flipped = float((np.sign(df[strict]) != np.sign(dg[strict])).mean()) if strict.any() else 0.0
    return PairReport(
        pair=pair,
        violation_f=vf,
        violation_g=vg,
        extrema_f=grid_extrema(pair.f, d, n),
        extrema_g=grid_extrema(pair.g, d, n),
        max_abs_difference=float(np.abs(fv - gv)[largest]),
        where_largest=points[largest].tolist(),
        flipped_order_share=flipped,
    )


def demonstrate_convex_monotone(d: int = 2, seed: int = 0) -> list[PairReport]:
    """Check the three pairs in dimension d."""
    pairs = [convex_pair(d), monotone_value_pair(d)]
    if d >= 2:
        pairs.append(monotone_order_pair(d))
    return [check_pair(p, seed=seed) for p in pairs]


def plot_convex_monotone(reports: list[PairReport], path: str | Path, n: int = 121) -> Path:
    """One row per pair (d = 2): f, g and g − f with the shared arg max (★) and arg min (▼)."""
    from matplotlib.figure import Figure

    if any(r.pair.d != 2 for r in reports):
        raise FvlabError("plot_convex_monotone draws d = 2 pairs only")
    points = grid(2, n)
    fig = Figure(figsize=(12, 3.6 * len(reports)), constrained_layout=True)
    axes = fig.subplots(len(reports), 3, squeeze=False)
    for row, report in zip(axes, reports, strict=True):
        fv = report.pair.f(points).reshape(n, n).T
        gv = report.pair.g(points).reshape(n, n).T
        lo, hi = float(min(fv.min(), gv.min())), float(max(fv.max(), gv.max()))
        panels = (("f", fv, "viridis", lo, hi), ("g", gv, "viridis", lo, hi))
        lim = float(np.abs(gv - fv).max()) or 1.0
        panels += (("g − f", gv - fv, "RdBu_r", -lim, lim),)
        for ax, (label, data, cmap, vmin, vmax) in zip(row, panels, strict=True):
            im = ax.imshow(
                data, origin="lower", extent=(0, 1, 0, 1), cmap=cmap, vmin=vmin, vmax=vmax
            )
            fig.colorbar(im, ax=ax, shrink=0.8)
            ext = report.extrema_f
            marks = {"clip_on": False, "zorder": 5, "mec": "black", "ls": ""}
            ax.plot(*ext["argmax"], marker="*", color="gold", ms=14, **marks)
            ax.plot(*ext["argmin"], marker="v", color="cyan", ms=10, **marks)
            ax.set_title(f"{report.pair.name}: {label}", fontsize=10)
        row[0].set_ylabel(report.pair.formula, fontsize=8)
    fig.suptitle("Same arg max (★) and arg min (▼), same values there — different units")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path
