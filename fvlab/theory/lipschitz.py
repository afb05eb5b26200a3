"""Lipschitz units: the arg max certifies the unit's value only within a radius ε / L.

Known from the visualization: x⁺ (arg max, value M) and x⁻ (arg min, value m); assumed: f is
L-Lipschitz (Euclidean norm). Every such f lies between

    ℓ(x) = max(m, M − L‖x − x⁺‖)    and    u(x) = min(M, m + L‖x − x⁻‖),

and both bounds are themselves consistent L-Lipschitz functions (when L‖x⁺ − x⁻‖ ≥ M − m). So
|f(x) − M| ≤ ε is guaranteed exactly when M − ℓ(x) ≤ ε, i.e. within the certified radius ε / L,
and beyond (M − m) / L the lower bound is m: the visualization says nothing there.

The numeric check measures the radius directly: for a family of consistent functions — the
cone M − L‖x − x⁺‖ (the worst case) and random "elliptic cones" M − L‖A(x − x⁺)‖ with
‖A‖₂ ∈ [0.25, 1] (gentler units), each clipped to stay consistent with x⁻ — it finds by
bisection the largest r such that no function deviates from M by more than ε on the sphere of
radius r around x⁺ (deviation grows along rays for all of them, so the sphere suffices).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fvlab.errors import FvlabError

Fn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Extremes:
    """What the visualization shows: arg max / arg min and the values there."""

    x_plus: np.ndarray
    x_minus: np.ndarray
    top: float
    bottom: float

    def min_lipschitz(self) -> float:
        """The smallest L for which an L-Lipschitz function with these extremes exists."""
        return (self.top - self.bottom) / float(np.linalg.norm(self.x_plus - self.x_minus))


def bounds(x: np.ndarray, ext: Extremes, L: float) -> tuple[np.ndarray, np.ndarray]:
    """(ℓ(x), u(x)): the tightest bounds on any consistent L-Lipschitz f at points x (N, d)."""
    lower = np.maximum(ext.bottom, ext.top - L * np.linalg.norm(x - ext.x_plus, axis=1))
    upper = np.minimum(ext.top, ext.bottom + L * np.linalg.norm(x - ext.x_minus, axis=1))
    return lower, upper


def consistent_function(ext: Extremes, L: float, shape: np.ndarray | None = None) -> Fn:
    """f(x) = max(m, min(M − L‖A(x − x⁺)‖, m + L‖x − x⁻‖)), A = I (the cone) or ``shape``
    (spectral norm ≤ 1): L-Lipschitz, maximum M at x⁺, minimum m at x⁻."""
    if L < ext.min_lipschitz() * (1 - 1e-12):
        raise FvlabError(
            f"no {L:.4g}-Lipschitz function has these extremes; L must be at least "
            f"(M − m)/‖x⁺ − x⁻‖ = {ext.min_lipschitz():.4g}"
        )
    A = np.eye(len(ext.x_plus)) if shape is None else shape
    if np.linalg.norm(A, 2) > 1 + 1e-12:
        raise FvlabError("shape must have spectral norm <= 1 to keep f L-Lipschitz")

    def f(x: np.ndarray) -> np.ndarray:
        cone = ext.top - L * np.linalg.norm((x - ext.x_plus) @ A.T, axis=1)
        floor = ext.bottom + L * np.linalg.norm(x - ext.x_minus, axis=1)
        return np.maximum(ext.bottom, np.minimum(cone, floor))

    return f


def random_shapes(d: int, n: int, seed: int, smallest_norm: float = 0.25) -> list[np.ndarray]:
    """``n`` random d×d matrices with spectral norms uniform in [smallest_norm, 1]."""
    rng = np.random.default_rng(seed)
    shapes = []
    for _ in range(n):
        A = rng.normal(size=(d, d))
        shapes.append(A / np.linalg.norm(A, 2) * rng.uniform(smallest_norm, 1.0))
    return shapes


def _directions(d: int, n: int, seed: int) -> np.ndarray:
    if d == 2:
        angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([np.cos(angle), np.sin(angle)], axis=1)
    u = np.random.default_rng(seed).normal(size=(n, d))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def measured_radius(
    functions: list[Fn],
    ext: Extremes,
    eps: float,
    n_directions: int = 256,
    seed: int = 0,
    iterations: int = 60,
) -> float:
    """Largest r such that |f(x⁺ + r u) − M| ≤ ε for every function and sampled direction u
    (bisection; the search stays inside the unit cube)."""
    d = len(ext.x_plus)
    dirs = _directions(d, n_directions, seed)
    r_max = float(min(ext.x_plus.min(), (1 - ext.x_plus).min()))
    if r_max <= 0:
        raise FvlabError("x⁺ must lie inside the open unit cube to measure a radius around it")

    def deviation(r: float) -> float:
        x = ext.x_plus + r * dirs
        return max(float(np.abs(f(x) - ext.top).max()) for f in functions)

    if deviation(r_max) <= eps:
        return r_max
    good, bad = 0.0, r_max
    for _ in range(iterations):
        mid = (good + bad) / 2
        good, bad = (mid, bad) if deviation(mid) <= eps else (good, mid)
    return good


@dataclass
class LipschitzDemo:
    """Measured certified radii over a range of Lipschitz constants."""

    ext: Extremes
    eps: float
    lipschitz: np.ndarray
    radius_worst: np.ndarray  # over the whole family (the cone decides)
    radius_random_min: np.ndarray  # over the random functions only (not worst case)

    @property
    def radius_times_l(self) -> np.ndarray:
        return self.radius_worst * self.lipschitz

    def spread(self) -> float:
        """(max − min) / mean of r · L over the L grid."""
        product = self.radius_times_l
        return float((product.max() - product.min()) / product.mean())

    def slope(self) -> float:
        """Least-squares slope of log r against log L (−1 for r ∝ 1/L)."""
        return float(np.polyfit(np.log(self.lipschitz), np.log(self.radius_worst), 1)[0])

    def checks(self) -> dict[str, bool]:
        return {
            "radius_times_L_constant_within_5pct": self.spread() <= 0.05,
            "radius_matches_eps_over_L": bool(
                np.allclose(self.radius_worst, self.eps / self.lipschitz, rtol=1e-6)
            ),
            "random_functions_never_worse_than_cone": bool(
                (self.radius_random_min >= self.radius_worst * (1 - 1e-9)).all()
            ),
        }

    def summary(self) -> dict:
        return {
            "x_plus": self.ext.x_plus.tolist(),
            "x_minus": self.ext.x_minus.tolist(),
            "max_value": self.ext.top,
            "min_value": self.ext.bottom,
            "eps": self.eps,
            "lipschitz": self.lipschitz.tolist(),
            "certified_radius": self.radius_worst.tolist(),
            "radius_random_functions": self.radius_random_min.tolist(),
            "radius_times_L": self.radius_times_l.tolist(),
            "radius_times_L_relative_spread": self.spread(),
            "loglog_slope": self.slope(),
            "checks": self.checks(),
        }


def demonstrate_lipschitz(
    eps: float = 0.05,
    lipschitz: tuple[float, ...] | None = None,
    n_random: int = 8,
    n_directions: int = 256,
    seed: int = 0,
) -> LipschitzDemo:
    """Measure the certified radius for M = 1, m = 0, x⁺ = (0.35, 0.6), x⁻ = (0.85, 0.15)."""
    ext = Extremes(np.array([0.35, 0.6]), np.array([0.85, 0.15]), 1.0, 0.0)
    if not 0 < eps < ext.top - ext.bottom:
        raise FvlabError(f"eps must be in (0, M − m) = (0, {ext.top - ext.bottom}), got {eps}")
    if lipschitz is None:
        lipschitz = tuple(np.geomspace(2.0, 500.0, 12))
    Ls = np.array(sorted(lipschitz), dtype=float)
    shapes = random_shapes(2, n_random, seed)
    worst, random_min = [], []
    for L in Ls:
        randoms = [consistent_function(ext, L, A) for A in shapes]
        family = [consistent_function(ext, L), *randoms]
        worst.append(measured_radius(family, ext, eps, n_directions, seed))
        random_min.append(measured_radius(randoms, ext, eps, n_directions, seed))
    return LipschitzDemo(ext, eps, Ls, np.array(worst), np.array(random_min))


def plot_lipschitz(demo: LipschitzDemo, path: str | Path) -> Path:
    """Left: certified radius against L (log-log). Right: the bracket [ℓ, u] on x⁺ → x⁻."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.5, 4.4), constrained_layout=True)
    left, right = fig.subplots(1, 2)
    Ls = demo.lipschitz
    left.loglog(Ls, demo.eps / Ls, "k-", label="ε / L (certified radius)")
    left.loglog(Ls, demo.radius_worst, "o", color="tab:red", label="measured: worst case (cone)")
    left.loglog(
        Ls,
        demo.radius_random_min,
        "s",
        mfc="none",
        color="tab:blue",
        label="measured: random, gentler functions",
    )
    spread = demo.ext.top - demo.ext.bottom
    left.loglog(Ls, spread / Ls, "--", color="gray", label="(M − m) / L: beyond, nothing is known")
    left.set_xlabel("Lipschitz constant L")
    left.set_ylabel("radius around the arg max")
    left.set_title(f"|f − f(x⁺)| ≤ ε = {demo.eps:g} is certified only within ε / L")
    left.legend(fontsize=8)
    t = np.linspace(0, 1, 401)
    segment = demo.ext.x_plus + t[:, None] * (demo.ext.x_minus - demo.ext.x_plus)
    length = float(np.linalg.norm(demo.ext.x_minus - demo.ext.x_plus))
    for L, color in ((Ls[0], "tab:green"), (Ls[len(Ls) // 3], "tab:purple")):
        lower, upper = bounds(segment, demo.ext, L)
        right.fill_between(t * length, lower, upper, color=color, alpha=0.25, label=f"L = {L:.3g}")
        right.plot(t * length, consistent_function(demo.ext, L)(segment), color=color, lw=1)
    right.set_xlabel("distance from x⁺ along the segment to x⁻")
    right.set_ylabel("possible values of f")
    right.set_title("all values in the band fit the same visualization")
    right.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
