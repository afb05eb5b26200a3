"""Files written by ``fvlab check paths`` and ``fvlab audit``: CSV tables, a plot, an HTML table."""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from fvlab.check.audit import AuditResult
    from fvlab.check.paths import PathCurves

CURVE_STYLE = {
    "nat_same": ("natural, same class", "tab:green"),
    "nat_other": ("natural, different classes", "tab:gray"),
    "fv_same": ("FV vs natural, same class", "tab:red"),
    "fv_other": ("FV vs natural, other classes", "tab:orange"),
}


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Write dicts as CSV (columns from the first row; lists joined with spaces)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()}
            )
    return path


def plot_paths(curves: PathCurves, path: Path) -> Path:
    """Two panels over layer depth: raw similarities (with bands) and the normalised curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(curves.layers))
    width = max(8.0, 0.35 * len(x) + 3)
    fig, (raw, norm) = plt.subplots(1, 2, figsize=(2 * width, 4.8), constrained_layout=True)
    for name, (label, colour) in CURVE_STYLE.items():
        raw.plot(x, curves.values[name], "-o", ms=3, color=colour, label=label)
        raw.fill_between(x, *curves.ci[name].T, color=colour, alpha=0.2, lw=0)
    raw.set_ylabel(f"{curves.metric} similarity ({curves.reduction})")
    raw.legend(fontsize=8)
    raw.set_title("similarity of activation vectors per layer")
    norm.axhline(0, color="tab:gray", lw=1, ls="--")
    norm.axhline(1, color="tab:green", lw=1, ls="--")
    norm.plot(x, curves.values["normalised"], "-o", ms=3, color="tab:red")
    norm.fill_between(x, *curves.ci["normalised"].T, color="tab:red", alpha=0.2, lw=0)
    norm.set_ylabel("normalised FV similarity (0 = other class, 1 = same class)")
    norm.set_title(
        f"{int(curves.confidence * 100)} % bootstrap bands ({curves.n_boot} resamples), "
        f"{len(curves.classes)} classes × {curves.images_per_class} images, "
        f"{curves.fvs_per_class} FVs per class",
        fontsize=9,
    )
    for axis in (raw, norm):
        axis.set_xticks(x)
        axis.set_xticklabels(curves.layers, rotation=90, fontsize=7 if len(x) < 40 else 4)
        axis.set_xlabel("layer (forward order)")
        axis.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _png_data_uri(image: torch.Tensor, upscale: int) -> str:
    from PIL import Image

    from fvlab.report.images import to_uint8

    pil = Image.fromarray(to_uint8(image))
    if upscale > 1:
        pil = pil.resize((pil.width * upscale, pil.height * upscale), Image.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


AUDIT_COLUMNS = (
    "unit",
    "score",
    "flags",
    "excess",
    "jump",
    "gradient",
    "valley",
    "procedure",
    "hold",
    "active_fraction",
    "path_at_layer",
    "path_mean",
    "fv_activation",
    "natural_max",
)


def write_audit_html(result: AuditResult, path: Path) -> Path:
    """An HTML table, one row per unit (highest score first) with its FV and top exemplar."""
    size = result.fv_images.shape[-1]
    upscale = max(1, 64 // size)
    index = {row["unit"]: i for i, row in enumerate(result.rows)}
    header = "".join(f"<th>{c}</th>" for c in ("FV", "top exemplar", *AUDIT_COLUMNS))
    lines = []
    for row in sorted(result.rows, key=lambda r: -r["score"]):
        i = index[row["unit"]]
        cells = [
            f'<td><img src="{_png_data_uri(result.fv_images[i], upscale)}"></td>',
            f'<td><img src="{_png_data_uri(result.exemplars[i], upscale)}"></td>',
        ]
        for column in AUDIT_COLUMNS:
            value = row[column]
            if isinstance(value, float):
                text = f"{value:.4g}"
            elif isinstance(value, list):
                text = ", ".join(value) or "—"
            else:
                text = str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        style = ' class="flagged"' if row["flags"] else ""
        lines.append(f"<tr{style}>{''.join(cells)}</tr>")
    summary = result.summary()
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>fvlab audit: {html.escape(result.layer)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; font-size: 13px; }}
tr.flagged {{ background: #fde2e2; }}
img {{ image-rendering: pixelated; }}
</style></head><body>
<h1>Audit of {html.escape(result.model)} / {html.escape(result.layer)}</h1>
<p>{summary["flagged"]} of {summary["units"]} units flagged
({html.escape(str(summary["flag_counts"]))}). Score = max(excess / {
        result.settings["thresholds"]["excess"]
    }, jump / {result.settings["thresholds"]["jump"]}, ln(1/active fraction) / ln(1/{
        result.settings["thresholds"]["silent"]
    }), gradient / {result.settings["thresholds"]["gradient"]}, valley / {
        result.settings["thresholds"]["valley"]
    }, procedure / {result.settings["thresholds"]["procedure"]}, hold / {
        result.settings["thresholds"]["hold"]
    }); flagged when ≥ 1.
excess = (FV activation − natural mean) / (natural max − natural mean);
jump = largest discontinuity on the pixel path top exemplar → FV, / natural range;
gradient = the part of the unit's change along that path its gradient does not account for;
valley = how far the response dips along the path, / its natural spread;
procedure = how much an FV from another parameterization disagrees (docs/check.md);
hold = how little of its own top exemplars the FV procedure started from them leaves, −ln(1 − r);
path = normalised path similarity FV vs own exemplars (1 = like an exemplar, 0 = like a random
image).</p>
<p><b>Limits.</b> Measured out of sample on fmnist-cnn (docs/check.md, leave-one-family-out):
gated circuits and silent units are flagged; weight-only fine-tunes (gradient slingshot,
push-down / push-up) are ranked above most clean units but mostly not flagged. An unflagged unit
is not evidence that the model was not fine-tuned to fool its visualizations.</p>
<table><tr>{header}</tr>
{chr(10).join(lines)}
</table></body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
