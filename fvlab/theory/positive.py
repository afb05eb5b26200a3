"""The positive cases: constant units and affine units of one input.

* Constant, f(x) = c on [0, 1]^d: every visualization shows the value c, and the "max value"
  decoder (predict f(x⁺) everywhere) is exact.
* Affine, d = 1, f(x) = w x + b on [0, 1] (w ≠ 0): the arg max and arg min are the two ends of
  the interval, so x⁺ − x⁻ = sign(w) and f(x⁺) − f(x⁻) = |w|; the "interpolate arg min → arg max"
  decoder m + t (M − m), t = (x − x⁻)/(x⁺ − x⁻), is f itself. (It also orders every pair.)

Measured: the visualization (projected gradient ascent and descent, :mod:`~fvlab.theory.ascent`)
of ``n_units`` seeded random units of each class — c ~ U(−2, 2); w ~ Laplace(0, 1), b ~ U(−1, 1)
— and the decoders' largest absolute error on ``n_queries`` uniform query points plus the ends.
Contrast (not positive): the same interpolation decoder on affine units of two inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from fvlab.errors import FvlabError
from fvlab.theory.ascent import AscentSchedule, ScalarFn, default_starts, visualize
from fvlab.theory.decoders import DECODERS

#: class → the decoder that succeeds on it
DECODER_FOR = {"constant": "max value", "affine_d1": "interpolate arg min → arg max"}
#: the positive classes' error bound (numerics only)
TOLERANCE = 1e-6


def _constant(d: int, g: torch.Generator) -> ScalarFn:
    c = float(torch.rand(1, generator=g, dtype=torch.float64)) * 4 - 2
    return lambda x: torch.full((len(x),), c, dtype=torch.float64) + 0 * x.sum(dim=1)


def _affine(d: int, g: torch.Generator) -> ScalarFn:
    u = torch.rand(d, generator=g, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    w = torch.where(u < 0.5, torch.log(2 * u), -torch.log(2 * (1 - u)))  # Laplace(0, 1)
    b = float(torch.rand(1, generator=g, dtype=torch.float64)) * 2 - 1
    return lambda x: x @ w + b


#: class → (input dimension, unit sampler)
CLASSES: dict[str, tuple[int, Callable[[int, torch.Generator], ScalarFn]]] = {
    "constant": (2, _constant),
    "affine_d1": (1, _affine),
    "affine_d2 (contrast)": (2, _affine),
}


def worst_errors(
    kind: str, n_units: int, n_queries: int, seed: int, schedule: AscentSchedule, n_starts: int
) -> dict[str, float]:
    """Decoder name → largest |decoder − f| over ``n_units`` units of class ``kind``."""
    if kind not in CLASSES:
        raise FvlabError(f"unknown class {kind!r}; known: {', '.join(CLASSES)}")
    d, sample = CLASSES[kind]
    g = torch.Generator().manual_seed(seed)
    worst = dict.fromkeys(DECODERS, 0.0)
    for k in range(n_units):
        f = sample(d, g)
        vis = visualize(f, default_starts(d, n_starts, seed + k), schedule)
        ends = torch.stack([torch.zeros(d), torch.ones(d)]).double()
        q = torch.cat([torch.rand(n_queries, d, generator=g, dtype=torch.float64), ends])
        with torch.no_grad():
            truth = f(q)
        for name, decoder in DECODERS.items():
            worst[name] = max(worst[name], float((decoder(vis, q) - truth).abs().max()))
    return worst


@dataclass
class PositiveDemo:
    """Worst-case error of every decoder on each class."""

    n_units: int
    n_queries: int
    errors: dict[str, dict[str, float]]

    def error(self, kind: str) -> float:
        """The worst-case error of the decoder that succeeds on ``kind``."""
        return self.errors[kind][DECODER_FOR[kind]]

    def checks(self) -> dict[str, bool]:
        contrast = self.errors["affine_d2 (contrast)"][DECODER_FOR["affine_d1"]]
        return {
            "constant_decoder_error_below_1e-6": self.error("constant") <= TOLERANCE,
            "affine_d1_decoder_error_below_1e-6": self.error("affine_d1") <= TOLERANCE,
            "same_decoder_fails_for_affine_d2": contrast > 100 * TOLERANCE,
        }

    def summary(self) -> dict:
        return {
            "n_units_per_class": self.n_units,
            "n_queries_per_unit": self.n_queries + 2,
            "decoder": DECODER_FOR,
            "constant_worst_error": self.error("constant"),
            "affine_d1_worst_error": self.error("affine_d1"),
            "affine_d2_worst_error_same_decoder": self.errors["affine_d2 (contrast)"][
                DECODER_FOR["affine_d1"]
            ],
            "worst_error_every_decoder": self.errors,
            "checks": self.checks(),
        }


def demonstrate_positive(
    n_units: int = 20,
    n_queries: int = 200,
    seed: int = 0,
    schedule: AscentSchedule = AscentSchedule(steps=60),
    n_starts: int = 4,
) -> PositiveDemo:
    """Worst-case errors of every decoder on random constant, affine-1D and affine-2D units."""
    from fvlab.theory.threads import limited_threads

    if n_units < 1 or n_queries < 1:
        raise FvlabError(f"need n_units >= 1 and n_queries >= 1, got {n_units}, {n_queries}")
    with limited_threads(1):
        errors = {
            kind: worst_errors(kind, n_units, n_queries, seed + 7919 * i, schedule, n_starts)
            for i, kind in enumerate(CLASSES)
        }
    return PositiveDemo(n_units, n_queries, errors)


def plot_positive(demo: PositiveDemo, path: str | Path) -> Path:
    """Worst-case error of each decoder per class (log scale; numerical zero drawn at 1e-17)."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 4.6), constrained_layout=True)
    ax = fig.subplots()
    names = list(DECODERS)
    y = np.arange(len(names))
    colors = {"constant": "tab:green", "affine_d1": "tab:blue", "affine_d2 (contrast)": "gray"}
    for i, (kind, color) in enumerate(colors.items()):
        values = [max(demo.errors[kind][n], 1e-17) for n in names]
        ax.barh(y + (i - 1) * 0.27, values, height=0.26, color=color, label=kind)
    ax.axvline(TOLERANCE, color="red", ls="--", lw=1, label="1e-6")
    ax.set_xscale("log")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel(f"worst |decoder − f| over {demo.n_units} units × {demo.n_queries + 2} queries")
    ax.set_title("Positive cases: constants (max value) and affine d = 1 (interpolation) are exact")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
