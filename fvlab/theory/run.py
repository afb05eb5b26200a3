"""The theory job (``fvlab theory``): run every demonstration, one plot each plus summary.json.

``summary.json`` also holds ``table``: P1's function classes, each with its verdict, the
demonstration behind it and the measured worst case (:mod:`fvlab.theory.table`).

Each step builds one demonstration and returns a :class:`Demonstration` (its figures and checks,
and how to draw its plot); :func:`run_theory` runs them in order and returns a
:class:`TheoryResult`, whose ``save(out)`` writes ``<name>.png`` for each and ``summary.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fvlab.jobs import OutDir, Settings, finish

#: one-line statement of what each demonstration illustrates (details: docs/theory.md)
CLAIMS = {
    "relu_tents": "A ReLU network can be changed by ±delta at chosen points without changing its "
    "arg max, arg min or gradient-ascent paths; any decoder then errs by >= delta/2 there.",
    "affine": "From the arg max of an affine unit, the best decoder orders every pair of inputs "
    "correctly for d = 1 but not for d >= 2 (1/6 + ln 2 at d = 2, tending to 3/4).",
    "lipschitz": "For an L-Lipschitz unit the arg max certifies the value to within eps only "
    "within radius eps / L.",
    "convex_monotone": "Convex (monotone) units with identical arg max/arg min and values there "
    "can differ in value and in the order of inputs elsewhere.",
    "toy_fooling": "A gated unit in a 2-D classifier keeps every test prediction but its "
    "gradient-ascent visualization lands in another unit's arg max region.",
    "erm": "Two networks trained on the same data to the same small loss have the same arg max "
    "and arg min but differ by a stated margin at held-out points.",
    "positive": "For constant units and affine units of one input, a decoder from the "
    "visualization predicts every value (worst error <= 1e-6).",
    "lipschitz_small": "For L <= eps / R (R: farthest distance from the arg max) the certified "
    "radius eps / L covers the domain: the visualization bounds the unit everywhere to eps.",
    "structured": "For single-index monotone networks f = h(a.x) the first ascent step orders "
    "every pair; on unstructured networks of the same size the same decoder does not.",
}


@dataclass(frozen=True)
class TheorySettings(Settings):
    """``quick``: fewer Monte Carlo samples, starts and steps (the same checks)."""

    seed: int = 0
    quick: bool = False


@dataclass
class Demonstration:
    """One demonstration's figures (``numbers``: its summary, with ``checks`` name → bool), how
    to draw its plot (``plot(path)``), and the seconds it took to compute."""

    name: str
    numbers: dict[str, Any]
    plot: Callable[[Path], object]
    seconds: float = 0.0

    @property
    def checks(self) -> dict[str, bool]:
        return self.numbers["checks"]

    @property
    def plot_file(self) -> str:
        return f"{self.name}.png"

    def summary(self) -> dict[str, Any]:
        return {
            "claim": CLAIMS[self.name],
            **self.numbers,
            "plot": self.plot_file,
            "seconds": round(self.seconds, 3),
        }


def _relu_tents(seed: int, quick: bool) -> tuple[dict, Callable[[Path], object]]:
    from fvlab.theory.ascent import AscentSchedule
    from fvlab.theory.relu_tents import demonstrate_tents, plot_tents

    schedule = AscentSchedule(steps=100 if quick else 200)
    demo = demonstrate_tents(seed=seed, n_starts=8 if quick else 16, schedule=schedule)
    return demo.summary(), lambda path: plot_tents(demo, path)


def _affine(seed: int, quick: bool) -> tuple[dict, Callable[[Path], object]]:
    from fvlab.theory.affine import demonstrate_affine, plot_affine

    if quick:
        demo = demonstrate_affine((1, 2, 3, 5, 10), n_pairs=5000, posterior_draws=64, seed=seed)
    else:
        demo = demonstrate_affine(seed=seed)
    return demo.summary(), lambda path: plot_affine(demo, path)


def _lipschitz(seed: int, quick: bool) -> tuple[dict, Callable[[Path], object]]:
    from fvlab.theory.lipschitz import demonstrate_lipschitz, plot_lipschitz

    if quick:
        demo = demonstrate_lipschitz(n_random=4, n_directions=64, seed=seed)
    else:
        demo = demonstrate_lipschitz(seed=seed)
    return demo.summary(), lambda path: plot_lipschitz(demo, path)


def _convex_monotone(seed: int, quick: bool) -> tuple[dict, Callable[[Path], object]]:
    from fvlab.theory.convex_monotone import demonstrate_convex_monotone, plot_convex_monotone

    reports = demonstrate_convex_monotone(2, seed=seed)
    checks = {f"{r.pair.name}: {k}": v for r in reports for k, v in r.checks().items()}
    numbers = {"pairs": [r.summary() for r in reports], "checks": checks}
    return numbers, lambda path: plot_convex_monotone(reports, path)


def _toy_fooling(seed: int, quick: bool) -> tuple[dict, Callable[[Path], object]]:
    from fvlab.theory.toy_fooling import demonstrate_toy_fooling, plot_toy_fooling

    demo = demonstrate_toy_fooling(seed=seed, steps=256 if quick else 512, starts=2 if quick else 4)
    return demo.summary(), lambda path: plot_toy_fooling(demo, path)


def _erm(seed: int, quick: bool) -> tuple[dict, Callable[[Path], object]]:
    from fvlab.theory.erm import demonstrate_erm, plot_erm

    demo = demonstrate_erm(seed=seed)
    return demo.summary(), lambda path: plot_erm(demo, path)


def _positive(seed: int, quick: bool) -> tuple[dict, Callable[[Path], object]]:
    from fvlab.theory.positive import demonstrate_positive, plot_positive

    demo = demonstrate_positive(n_units=8 if quick else 20, seed=seed)
    return demo.summary(), lambda path: plot_positive(demo, path)


def _lipschitz_small(seed: int, quick: bool) -> tuple[dict, Callable[[Path], object]]:
    from fvlab.theory.lipschitz_small import demonstrate_small_lipschitz, plot_small_lipschitz

    demo = demonstrate_small_lipschitz(n_grid=101 if quick else 201)
    return demo.summary(), lambda path: plot_small_lipschitz(demo, path)


def _structured(seed: int, quick: bool) -> tuple[dict, Callable[[Path], object]]:
    from fvlab.theory.structured import demonstrate_structured, plot_structured

    demo = demonstrate_structured(n_nets=4 if quick else 8, seed=seed)
    return demo.summary(), lambda path: plot_structured(demo, path)


#: name → step(seed, quick) -> (numbers with "checks", plot(path))
STEPS: dict[str, Callable[[int, bool], tuple[dict, Callable[[Path], object]]]] = {
    "relu_tents": _relu_tents,
    "affine": _affine,
    "lipschitz": _lipschitz,
    "convex_monotone": _convex_monotone,
    "toy_fooling": _toy_fooling,
    "erm": _erm,
    "positive": _positive,
    "lipschitz_small": _lipschitz_small,
    "structured": _structured,
}


def demonstrate(name: str, settings: TheorySettings) -> Demonstration:
    """Run the demonstration ``name`` (a key of :data:`STEPS`) and time it."""
    began = time.perf_counter()
    numbers, plot = STEPS[name](settings.seed, settings.quick)
    return Demonstration(name, numbers, plot, time.perf_counter() - began)


@dataclass
class TheoryResult:
    """Every demonstration of one run; ``all_checks_pass`` is the conjunction of their checks."""

    settings: TheorySettings
    demonstrations: list[Demonstration] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def all_checks_pass(self) -> bool:
        return all(all(d.checks.values()) for d in self.demonstrations)

    def failed_checks(self) -> list[str]:
        """``"name: check"`` for every check that does not hold."""
        return [
            f"{d.name}: {c}" for d in self.demonstrations for c, ok in d.checks.items() if not ok
        ]

    def table(self) -> list[dict[str, Any]]:
        """P1's table of function classes (:mod:`fvlab.theory.table`) from these results."""
        from fvlab.theory.table import build_table

        summaries = {d.name: d.numbers for d in self.demonstrations}
        passed = {d.name: all(d.checks.values()) for d in self.demonstrations}
        return build_table(summaries, passed)

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.settings.seed,
            "quick": self.settings.quick,
            "all_checks_pass": self.all_checks_pass,
            "seconds": round(self.seconds, 3),
            "note": "numeric illustrations of the mechanisms, not the paper's theorems; "
            "see docs/theory.md",
            "table": self.table(),
            "demonstrations": {d.name: d.summary() for d in self.demonstrations},
        }

    def save(self, out: Path) -> Path:
        """``<name>.png`` per demonstration and ``summary.json`` in ``out``."""
        from fvlab.report.summary import write_summary

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for demo in self.demonstrations:
            demo.plot(out / demo.plot_file)
        return write_summary(out, self.summary())


def run_theory(
    settings: TheorySettings | None = None, out: OutDir = None, *, show_progress: bool = True
) -> TheoryResult:
    """Run every demonstration of :data:`STEPS`; save plots and summary.json into ``out``."""
    from fvlab.progress import progress_bar

    settings = settings or TheorySettings()
    began = time.perf_counter()
    result = TheoryResult(settings)
    with progress_bar("theory demonstrations", len(STEPS), show_progress) as advance:
        for name in STEPS:
            result.demonstrations.append(demonstrate(name, settings))
            advance(1, info=name)
    result.seconds = time.perf_counter() - began
    return finish(result, out)
