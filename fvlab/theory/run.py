"""Run every theory demonstration: one PNG each plus ``summary.json`` in one directory."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

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
}


def _relu_tents(out: Path, seed: int, quick: bool) -> dict:
    from fvlab.theory.ascent import AscentSchedule
    from fvlab.theory.relu_tents import demonstrate_tents, plot_tents

    schedule = AscentSchedule(steps=100 if quick else 200)
    demo = demonstrate_tents(seed=seed, n_starts=8 if quick else 16, schedule=schedule)
    plot_tents(demo, out / "relu_tents.png")
    return demo.summary() | {"plot": "relu_tents.png"}


def _affine(out: Path, seed: int, quick: bool) -> dict:
    from fvlab.theory.affine import demonstrate_affine, plot_affine

    if quick:
        demo = demonstrate_affine((1, 2, 3, 5, 10), n_pairs=5000, posterior_draws=64, seed=seed)
    else:
        demo = demonstrate_affine(seed=seed)
    plot_affine(demo, out / "affine.png")
    return demo.summary() | {"plot": "affine.png"}


def _lipschitz(out: Path, seed: int, quick: bool) -> dict:
    from fvlab.theory.lipschitz import demonstrate_lipschitz, plot_lipschitz

    if quick:
        demo = demonstrate_lipschitz(n_random=4, n_directions=64, seed=seed)
    else:
        demo = demonstrate_lipschitz(seed=seed)
    plot_lipschitz(demo, out / "lipschitz.png")
    return demo.summary() | {"plot": "lipschitz.png"}


def _convex_monotone(out: Path, seed: int, quick: bool) -> dict:
    from fvlab.theory.convex_monotone import demonstrate_convex_monotone, plot_convex_monotone

    reports = demonstrate_convex_monotone(2, seed=seed)
    plot_convex_monotone(reports, out / "convex_monotone.png")
    pairs = [r.summary() for r in reports]
    checks = {f"{r.pair.name}: {k}": v for r in reports for k, v in r.checks().items()}
    return {"pairs": pairs, "checks": checks, "plot": "convex_monotone.png"}


def _toy_fooling(out: Path, seed: int, quick: bool) -> dict:
    from fvlab.theory.toy_fooling import demonstrate_toy_fooling, plot_toy_fooling

    demo = demonstrate_toy_fooling(seed=seed, steps=256 if quick else 512, starts=2 if quick else 4)
    plot_toy_fooling(demo, out / "toy_fooling.png")
    return demo.summary() | {"plot": "toy_fooling.png"}


STEPS: dict[str, Callable[[Path, int, bool], dict]] = {
    "relu_tents": _relu_tents,
    "affine": _affine,
    "lipschitz": _lipschitz,
    "convex_monotone": _convex_monotone,
    "toy_fooling": _toy_fooling,
}


def run_all(out: Path, seed: int = 0, quick: bool = False, show_progress: bool = True) -> dict:
    """Run the demonstrations; write ``<name>.png`` for each and ``summary.json``.

    ``quick`` uses fewer Monte Carlo samples, starts and steps (same checks). The summary holds,
    per demonstration, its claim, the measured numbers, the checks (True/False), the plot's file
    name and the seconds it took; ``all_checks_pass`` is the conjunction of every check.
    """
    from fvlab.progress import progress_bar
    from fvlab.report.summary import write_summary

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results: dict[str, dict] = {}
    with progress_bar("theory demonstrations", len(STEPS), show_progress) as advance:
        for name, step in STEPS.items():
            began = time.perf_counter()
            result = step(out, seed, quick)
            result["seconds"] = round(time.perf_counter() - began, 3)
            results[name] = {"claim": CLAIMS[name], **result}
            advance(1, info=name)
    summary = {
        "seed": seed,
        "quick": quick,
        "all_checks_pass": all(all(r["checks"].values()) for r in results.values()),
        "seconds": round(time.perf_counter() - start, 3),
        "note": "numeric illustrations of the mechanisms, not the paper's theorems; "
        "see docs/theory.md",
        "demonstrations": results,
    }
    write_summary(out, summary)
    return summary
