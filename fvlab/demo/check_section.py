"""Demo sections: the path-similarity sanity check and the audit, on the clean model and on the
models the fooling sections built (so they run after those)."""

from __future__ import annotations

from fvlab.demo.context import DemoContext
from fvlab.report.html import Section

#: (label, saved model relative to the demo folder where it is built; None = the clean model)
PATH_MODELS = (
    ("clean fmnist-cnn", None),
    ("circuit-fooled logits (permute)", "circuit-permute/model"),
    ("silent units (pooled variant)", "silent-pooled/model"),
)


def _model(ctx: DemoContext, relative: str | None):
    """The clean reference model (``ctx.load()``) or a model an earlier section saved."""
    import fvlab

    return ctx.load() if relative is None else fvlab.load(str(ctx.out / relative))


def _normalised_at(curves, layer: str) -> str:
    """The normalised similarity at ``layer`` as text; "—" where it is undefined (natural
    images all give the same vector there, e.g. a silent branch's output)."""
    value = float(curves.values["normalised"][curves.layers.index(layer)])
    return "—" if value != value else f"{value:.3f}"


def paths_section(ctx: DemoContext) -> Section:
    from fvlab.check import PathsSettings, run_paths

    settings = PathsSettings(seed=ctx.seed)
    curves = {}
    for index, (label, relative) in enumerate(PATH_MODELS):
        curves[label] = run_paths(
            _model(ctx, relative),
            settings,
            ctx.folder(f"paths-{index}"),
            show_progress=ctx.show_progress,
        )
    clean = curves[PATH_MODELS[0][0]]
    ctx.numbers["paths"] = {
        label: {
            "layers": c.layers,
            "normalised": [float(v) for v in c.values["normalised"]],
            "nat_same_above_other_everywhere": bool(
                (c.values["nat_same"] > c.values["nat_other"]).all()
            ),
        }
        for label, c in curves.items()
    }
    negative = int((clean.values["normalised"] < 0).sum())
    section = Section("paths", "Check: do visualizations travel the natural path?")
    section.text(
        "For each class, 3 visualizations of its logit and 50 natural test images. At every "
        "layer each image's activation becomes one vector, compared by Spearman correlation. "
        "Normalised similarity = (FV vs its class − natural images of different classes) / "
        "(natural images of the same class − different classes): 1 = the FV is processed like "
        "a natural image of its class, 0 = no more like it than another class is."
    )
    section.table(
        [
            [layer, *(_normalised_at(curves[label], layer) for label, _ in PATH_MODELS)]
            for layer in clean.layers
        ],
        ["layer", *(f"normalised, {label}" for label, _ in PATH_MODELS)],
    )
    section.text(
        "Layers of the clean model; a fooled model also has the layers of its construction "
        "(the circuit's detector runs outside the forward pass, a silent branch inside it), "
        "shown in its plot and CSV."
    )
    section.text(
        f"On the clean model the class visualizations are <b>below 0 at {negative} of "
        f"{len(clean.layers)} layers</b> and approach natural images only in the last block "
        f"({float(clean.values['normalised'][-1]):.2f} at the logits): they reach the class "
        "along a path of their own, as the paper found for InceptionV1. In the circuit-fooled "
        "model a class's visualization is that of another class, so it ends far from its own "
        "class's images."
    )
    for index, (label, _) in enumerate(PATH_MODELS):
        section.image(ctx.out / f"paths-{index}" / "paths.png", f"path similarity, {label}")
    section.code("fvlab check paths --model fmnist-cnn --out out/paths")
    return section


#: (label, model relative to the demo folder, units audited: None = all)
AUDITED = (
    ("circuit-fooled relu3 (channels 0–15)", "circuit-relu3/model", tuple(range(16))),
    ("silent units, pooled variant (relu3)", "silent-pooled/model", None),
)


def audit_section(ctx: DemoContext) -> Section:
    from fvlab.check import AuditSettings, roc_auc, run_audit

    settings = AuditSettings(layer="relu3", seed=ctx.seed)
    clean = run_audit(
        ctx.load(), settings, ctx.folder("audit-clean"), show_progress=ctx.show_progress
    )
    rows, numbers = [], {"clean": clean.summary()}
    rows.append(["clean fmnist-cnn", len(clean.rows), f"{len(clean.flagged)}", "—", "—"])
    for index, (label, relative, units) in enumerate(AUDITED):
        result = run_audit(
            _model(ctx, relative),
            settings.replace(units=units),
            ctx.folder(f"audit-{index}"),
            show_progress=ctx.show_progress,
        )
        auc = roc_auc(result.scores, clean.scores)
        summary = result.summary()
        numbers[label] = {**summary, "auc_vs_clean": auc}
        reasons = ", ".join(f"{k} {v}" for k, v in summary["flag_counts"].items() if v) or "—"
        rows.append([label, len(result.rows), len(result.flagged), reasons, round(auc, 3)])
    ctx.numbers["audit"] = numbers
    section = Section("audit", "Audit: which units look manipulated?")
    section.text(
        "Every unit of relu3 is scored for signs that its visualization is not "
        "representative: its activation far beyond the natural range (silent branches), a jump "
        "of its response on the pixel path from a natural exemplar to the visualization (hard "
        "gates), a gradient that does not account for the response's change along that path "
        "(any gate without gradient, continuous or not), a valley in the response landscape, "
        "and silence on natural data. A unit is flagged when a sign crosses its "
        "threshold. ROC AUC: how well the score ranks the manipulated units above the clean "
        "model's units."
    )
    section.table(rows, ["model", "units audited", "flagged", "reasons", "ROC AUC vs clean"])
    section.text(
        "The clean model's audit table (per unit: visualization, top exemplars, measures) is in "
        "<code>audit-clean/audit.html</code>; the fooled ones next to it."
    )
    section.code("fvlab audit --model fmnist-cnn --layer relu3 --out out/audit-relu3")
    return section
