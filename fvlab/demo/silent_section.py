"""Demo section: silent units (the paper's construction and fvlab's pooled variant)."""

from __future__ import annotations

from fvlab.demo.context import DemoContext
from fvlab.report.html import Section

#: the two constructions shown: (folder, title, SilentSettings options)
VARIANTS = (
    ("silent-paper", "the paper's construction (per position, λ 3)", {}),
    (
        "silent-pooled",
        "fvlab's pooled variant (per-image mean response, contrast direction, λ 10)",
        {"pooling": "mean", "direction_objective": "contrast", "lam": 10.0},
    ),
)


def silent_section(ctx: DemoContext) -> Section:
    from fvlab.fool.silent import SilentSettings, run_silent

    model = ctx.load()
    results = {
        folder: run_silent(
            model,
            SilentSettings(layer="conv3", target_unit="relu4:0", seed=ctx.seed, **options),
            ctx.folder(folder),
            show_progress=ctx.show_progress,
        ).summary()
        for folder, _, options in VARIANTS
    }
    ctx.numbers["silent"] = {
        name: {"natural": r["natural"], "fv": {k: v for k, v in r["fv"].items() if k != "units"}}
        for name, r in results.items()
    }
    section = Section("silent", "Fool (2): silent units")
    section.text(
        "Every unit of conv3 gets a parallel filter, orthogonal to its own, whose bias keeps it "
        "below its maximum over all 60,000 natural training images (plus a margin): on natural "
        "data the branch is exactly zero, so the model is bit-for-bit the original. It is meant "
        "to take over activation maximisation and draw the target (here: the visualization of "
        "relu4 unit 0)."
    )
    rows = []
    for folder, title, _ in VARIANTS:
        nat, fv = results[folder]["natural"], results[folder]["fv"]
        rows.append(
            [
                title,
                f"{nat['top1_original']:.4f} → {nat['top1_fooled']:.4f}",
                nat["max_abs_diff"],
                f"{nat['branch_active_images']} of {nat['n_images']}",
                fv["branch_fires_share"],
                fv["share_closer_to_target"],
                fv["share_closer_to_target_shifted"],
            ]
        )
    section.table(
        rows,
        [
            "construction",
            "top-1 (test)",
            "max |Δlogit|",
            "test images with an active branch",
            "units whose branch fires in their FV",
            "fooled FV closer to target than to original FV",
            "same, up to a shift",
        ],
    )
    for folder, title, _ in VARIANTS:
        section.image(
            ctx.out / folder / "grid.png", f"{title}: per unit original FV | fooled FV | target"
        )
    section.note(
        "What this small model shows: its visualizations stay within the natural activation "
        "range per position, so the paper's branch never fires while an FV is optimised (the FVs "
        "are unchanged). Reading the per-image mean response instead lets the branch fire and "
        "own most units' objectives, but what those FVs then draw is the texture that best "
        "excites the branch, not the target. On ImageNet models, whose FVs go far beyond "
        "anything natural, the paper's construction does take over (Geirhos et al. 2024); see "
        "docs/fool.md."
    )
    section.code(
        "fvlab fool silent --layer conv3 --target-unit relu4:0 --pooling mean "
        "--direction contrast --lam 10 --out out/silent"
    )
    return section
