"""Lipschitz units with small L: the certified region covers the whole domain.

For an L-Lipschitz unit on [0, 1]^d with arg max x⁺ and value M, |f(x) − M| ≤ L‖x − x⁺‖, so the
"max value" decoder (predict M everywhere) is within ε on the ball of radius ε / L around x⁺
(:mod:`~fvlab.theory.lipschitz`). That ball covers the cube exactly when ε / L ≥ R, where
R = max over the cube of ‖x − x⁺‖ (the distance to the farthest corner): for

    L ≤ L* = ε / R

the visualization bounds f everywhere to within ε (the positive side: such units are nearly
constant at the scale ε). For L > L* the cone f(x) = M − L‖x − x⁺‖ — L-Lipschitz, arg max x⁺, arg
min the farthest corner x⁻, f(x⁻) = M − L R, so (f(x⁺) − f(x⁻)) / L = R — deviates from M by
L R > ε at x⁻, and no decoder does better than half that: the band of consistent values at x⁻
is [M − L R, M] (the constant M is a limit of consistent units).

Measured on a grid of ``n_grid``² points of [0, 1]², for L on a log grid: the share of the
domain inside the certified radius ε / L, and the max-value decoder's largest error over the
grid for the cone (:func:`~fvlab.theory.lipschitz.consistent_function` with these extremes,
which is the cone itself); the crossover is found by bisection on L where that measured error
first exceeds ε.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fvlab.errors import FvlabError
from fvlab.theory.lipschitz import Extremes, consistent_function

#: where the visualization's arg max lies (the same point as the large-L demonstration)
X_PLUS = np.array([0.35, 0.6])


def farthest_corner(x_plus: np.ndarray) -> np.ndarray:
    """The corner of [0, 1]^d farthest from x⁺ (Euclidean)."""
    return (x_plus < 0.5).astype(float)


def cone_extremes(L: float, x_plus: np.ndarray = X_PLUS, top: float = 1.0) -> Extremes:
    """Extremes of the cone M − L‖x − x⁺‖ on the cube: x⁻ = the farthest corner, m = M − L R."""
    x_minus = farthest_corner(x_plus)
    return Extremes(x_plus, x_minus, top, top - L * float(np.linalg.norm(x_minus - x_plus)))


def max_value_error(L: float, grid: np.ndarray) -> float:
    """The max-value decoder's largest |f − M| on ``grid`` for the cone of slope L."""
    ext = cone_extremes(L)
    return float(np.abs(consistent_function(ext, L)(grid) - ext.top).max())


@dataclass
class SmallLipschitzDemo:
    """Certified share of the domain and measured worst-case errors over a grid of L."""

    eps: float
    farthest: float  # R
    lipschitz: np.ndarray
    covered_share: np.ndarray
    cone_error: np.ndarray
    measured_crossover: float

    @property
    def crossover(self) -> float:
        """L* = ε / R."""
        return self.eps / self.farthest

    def checks(self) -> dict[str, bool]:
        small = self.lipschitz <= self.crossover
        large = ~small
        return {
            "small_L_radius_covers_domain": bool((self.covered_share[small] == 1.0).all()),
            "small_L_worst_error_within_eps": bool(
                (self.cone_error[small] <= self.eps * (1 + 1e-12)).all()
            ),
            "large_L_radius_leaves_domain_uncovered": bool((self.covered_share[large] < 1).all()),
            "large_L_worst_error_exceeds_eps": bool((self.cone_error[large] > self.eps).all()),
            "measured_crossover_is_eps_over_R": abs(self.measured_crossover / self.crossover - 1)
            <= 1e-6,
            "both_sides_sampled": bool(small.any() and large.any()),
        }

    def summary(self) -> dict:
        return {
            "x_plus": X_PLUS.tolist(),
            "farthest_corner": farthest_corner(X_PLUS).tolist(),
            "R_farthest_distance": self.farthest,
            "eps": self.eps,
            "crossover_L": self.crossover,
            "measured_crossover_L": self.measured_crossover,
            "lipschitz": self.lipschitz.tolist(),
            "certified_radius": (self.eps / self.lipschitz).tolist(),
            "covered_share": self.covered_share.tolist(),
            "max_value_decoder_worst_error": self.cone_error.tolist(),
            "worst_error_at_or_below_crossover": float(
                self.cone_error[self.lipschitz <= self.crossover].max(initial=0.0)
            ),
            "checks": self.checks(),
        }


def demonstrate_small_lipschitz(
    eps: float = 0.05,
    lipschitz: tuple[float, ...] | None = None,
    n_grid: int = 201,
) -> SmallLipschitzDemo:
    """Share of [0, 1]² certified to within ``eps`` and measured worst errors, over L."""
    if eps <= 0 or n_grid < 2:
        raise FvlabError(f"need eps > 0 and n_grid >= 2, got eps={eps}, n_grid={n_grid}")
    axis = np.linspace(0, 1, n_grid)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    distance = np.linalg.norm(grid - X_PLUS, axis=1)
    farthest = float(np.linalg.norm(farthest_corner(X_PLUS) - X_PLUS))
    if lipschitz is None:
        lipschitz = tuple(np.geomspace(0.1, 10.0, 13) * eps / farthest)
    Ls = np.array(sorted(lipschitz), dtype=float)
    errors = np.array([max_value_error(L, grid) for L in Ls])
    share = np.array([(distance <= eps / L).mean() for L in Ls])
    low, high = Ls.min() / 100, Ls.max() * 100  # bisection on the cone's measured error
    for _ in range(100):
        mid = np.sqrt(low * high)
        low, high = (mid, high) if max_value_error(mid, grid) <= eps else (low, mid)
    return SmallLipschitzDemo(eps, farthest, Ls, share, errors, float(np.sqrt(low * high)))


def plot_small_lipschitz(demo: SmallLipschitzDemo, path: str | Path) -> Path:
    """Left: share of the domain within ε / L of x⁺. Right: the max-value decoder's worst error."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.5, 4.4), constrained_layout=True)
    left, right = fig.subplots(1, 2)
    Ls, star = demo.lipschitz, demo.crossover
    left.semilogx(Ls, demo.covered_share, "o-", color="tab:blue")
    left.axvline(star, color="red", ls="--", label=f"L* = ε / R = {star:.3g}")
    left.set_xlabel("Lipschitz constant L")
    left.set_ylabel("share of [0, 1]² within ε / L of x⁺")
    left.set_title(f"certified region (ε = {demo.eps:g}) covers the domain iff L ≤ L*")
    left.legend(fontsize=8)
    right.loglog(Ls, demo.cone_error, "o-", color="tab:red", label="measured: cone (worst case)")
    right.loglog(Ls, Ls * demo.farthest, "k-", lw=0.8, label="bound L R (every L-Lipschitz unit)")
    right.axhline(demo.eps, color="k", ls=":", label="ε")
    right.axvline(star, color="red", ls="--")
    right.set_xlabel("Lipschitz constant L")
    right.set_ylabel("max over the domain of |f − f(x⁺)|")
    right.set_title("max-value decoder: within ε everywhere iff L ≤ L*")
    right.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
