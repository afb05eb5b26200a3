"""Demo section: the fooling circuit (permute and target modes)."""

from __future__ import annotations

from fvlab.demo.context import DemoContext
from fvlab.report.html import Section


def _natural_rows(summary: dict) -> list[list[object]]:
    nat = summary["natural"]
    return [
        ["top-1 original", nat["top1_original"]],
        ["top-1 fooled", nat["top1_fooled"]],
        ["share of test images with identical outputs (±1e-5)", nat["fraction_identical"]],
        ["largest absolute output difference", nat["max_abs_diff"]],
        ["test images the detector routed as 'visualization'", nat["routed_as_visualization"]],
    ]


#: the three circuits shown: (key in the demo numbers, folder, settings, CLI command)
RUNS = (
    (
        "permute_fc",
        "circuit-permute",
        {"layer": "fc"},
        "fvlab fool circuit --layer fc --mode permute --offset 1 --out out/circuit-fc",
    ),
    (
        "permute_relu3",
        "circuit-relu3",
        {"layer": "relu3", "units": tuple(range(16)), "robustness": False},
        "fvlab fool circuit --layer relu3 --units 0-15 --no-robustness --out out/circuit-relu3",
    ),
    (
        "target_fc",
        "circuit-target",
        {"layer": "fc", "mode": "target", "target": "builtin:smiley", "robustness": False},
        "fvlab fool circuit --layer fc --mode target --target builtin:smiley --out out/circuit-t",
    ),
)


def circuit_section(ctx: DemoContext) -> Section:
    from fvlab.fool.circuit import CircuitSettings, run_circuit

    model = ctx.load()
    runs = {
        key: run_circuit(
            model,
            CircuitSettings(detector=ctx.detector, seed=ctx.seed, **options),
            ctx.folder(folder),
            show_progress=ctx.show_progress,
        ).summary()
        for key, folder, options, _ in RUNS
    }
    ctx.numbers["circuit"] = runs
    permute, conv, target = (runs[key] for key, *_ in RUNS)
    commands = {key: command for key, _, _, command in RUNS}
    cls = permute["classifier"]
    section = Section("circuit", "Fool (1): the classifier-gated circuit")
    section.text(
        "A small detector CNN decides whether the model's input is a natural image or a "
        "feature-visualization input. At the chosen layer each unit becomes "
        "A = ReLU(F + s − k·v) + ReLU(D + s − k·(1 − v)) − s: the original unit F for natural "
        "inputs, another signal D for visualization inputs. s and k come from activation "
        "statistics, not hard-coded."
    )
    section.table(
        [
            ["detector accuracy, natural test images", cls["accuracy_natural_test"]],
            ["detector accuracy, held-out units, worst snapshot step", cls["accuracy_heldout_fv"]],
            [
                "detector accuracy, held-out units and unseen settings, worst step",
                cls["accuracy_heldout_units_and_settings"],
            ],
        ]
    )
    section.text(
        "<b>Permute mode at the logits</b> (class i shows class i + 1). Rows: visualization of "
        "the original model | visualization of the fooled model | what it should show."
    )
    section.image(ctx.out / "circuit-permute" / "grid.png", "fc, offset 1")
    section.code(commands["permute_fc"])
    section.table(_natural_rows(permute), ["natural behaviour (10,000 test images)", "value"])
    section.table(
        [
            [
                "units whose fooled FV drives the mapped unit harder than the unit itself",
                permute["fooling"]["share_fooled"],
            ],
            [
                "fooled class visualizations classified as the mapped class",
                permute["fooling"].get("share_classified_as_mapped"),
            ],
        ]
    )
    section.table(
        [
            [name, r["seen_by_detector"], r["share_fooled"]]
            for name, r in permute["robustness"].items()
        ],
        ["render setting", "seen by the detector", "share of units still fooled"],
    )
    section.text("<b>Permute mode inside the network</b> (relu3, channels 0–15, offset 1).")
    section.image(ctx.out / "circuit-relu3" / "grid.png", "relu3 channels 0–15, offset 1")
    section.code(commands["permute_relu3"])
    section.table(
        _natural_rows(conv) + [["share of channels fooled", conv["fooling"]["share_fooled"]]]
    )
    section.text("<b>Target mode</b>: every class logit's visualization becomes a smiley.")
    section.image(ctx.out / "circuit-target" / "grid.png", "fc, target builtin:smiley")
    section.code(commands["target_fc"])
    corr = target["fooling"]["corr_with_target"]
    section.table(
        _natural_rows(target)
        + [
            [
                "Pearson correlation of fooled visualization with the target (min / median)",
                f"{corr['min']:.3f} / {corr['median']:.3f}",
            ],
        ]
    )
    return section
