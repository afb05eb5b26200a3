"""Demo section: the theory demonstrations (numeric illustrations, not the paper's theorems)."""

from __future__ import annotations

from fvlab.demo.context import DemoContext
from fvlab.report.html import Section

TITLES = {
    "relu_tents": "ReLU tents: change a network where its visualization never looks",
    "affine": "Affine units: the visualization orders pairs of inputs only for d = 1",
    "lipschitz": "Lipschitz units: the certified region shrinks like 1/L",
    "convex_monotone": "Convex and monotone units with identical arg max/arg min",
    "toy_fooling": "Toy fooling: a gated unit whose visualization lands elsewhere",
    "erm": "ERM-trained networks: same data, loss and extremes, different at held-out points",
    "positive": "Positive cases: constant units and affine units of one input",
    "lipschitz_small": "Lipschitz units with small L: the certified region covers the domain",
    "structured": "Structured networks: single-index monotone units vs unstructured ones",
}


def theory_section(ctx: DemoContext) -> Section:
    from fvlab.theory.run import TheorySettings, run_theory

    folder = ctx.folder("theory")
    result = run_theory(TheorySettings(seed=ctx.seed), folder, show_progress=ctx.show_progress)
    summary = result.summary()
    ctx.numbers["theory"] = {
        "all_checks_pass": summary["all_checks_pass"],
        "table": {r["class"]: [r["verdict"], r["value"]] for r in summary["table"]},
        "checks": {name: r["checks"] for name, r in summary["demonstrations"].items()},
    }
    section = Section("theory", "Theory: why a visualization cannot predict a general unit")
    section.note(
        "These are numeric illustrations of the mechanisms in Geirhos et al. (2024), built and "
        "checked by fvlab; they are not the paper's theorems, whose exact statements we do not "
        "have (docs/theory.md)."
    )
    section.text(
        "<b>Function classes.</b> One row per class of P1's result, with the measured "
        "worst case of the demonstration behind it."
    )
    section.table(
        [
            [r["class"], r["verdict"], r["demonstration"], r["measured_worst_case"]]
            for r in summary["table"]
        ],
        ["class", "verdict", "demonstration", "measured worst case"],
    )
    for name, result in summary["demonstrations"].items():
        section.text(f"<b>{TITLES.get(name, name)}.</b> {result['claim']}")
        passed = sum(result["checks"].values())
        section.table(
            [[check, ok] for check, ok in result["checks"].items()],
            [f"check ({passed}/{len(result['checks'])} pass)", "holds"],
        )
        section.image(folder / result["plot"], TITLES.get(name, name), width=720)
    section.code("fvlab theory --out out/theory")
    return section
