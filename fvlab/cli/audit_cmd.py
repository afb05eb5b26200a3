"""``fvlab audit``: score every unit of a layer for signs that its FV is not representative."""

from __future__ import annotations

from typing import Annotated

import typer

from fvlab.cli.common import (
    DataOpt,
    DeviceOpt,
    ModelOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    WeightsOpt,
    parse_int_list,
    write_summary,
)


def audit(
    out: OutOpt,
    layer: Annotated[str, typer.Option(help="Layer to audit (see `fvlab layers`).")],
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    units: Annotated[str | None, typer.Option(help="Units: '0-9', '1,4,7' (default: all).")] = None,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="Fashion-MNIST split: test or train.")] = "test",
    images: Annotated[
        int | None, typer.Option(min=2, help="Use only the first N natural images.")
    ] = None,
    steps: Annotated[
        int, typer.Option(min=1, help="Render updates (all units in one batch).")
    ] = 256,
    top_k: Annotated[int, typer.Option(min=2, help="Top natural exemplars per unit.")] = 5,
    relu_redirect: Annotated[
        int,
        typer.Option(
            min=0, help="ReLU-gradient redirection for the first N updates of the render (0 = off)."
        ),
    ] = 16,
    metric: Annotated[str, typer.Option(help="Path similarity: spearman | pearson | cosine.")] = (
        "spearman"
    ),
    size: Annotated[int | None, typer.Option(help="Image side in px (image folders).")] = None,
    excess_threshold: Annotated[
        float, typer.Option(help="Flag when (FV − natural mean)/(natural max − mean) ≥ this.")
    ] = 10.0,
    jump_threshold: Annotated[
        float, typer.Option(help="Flag when the path's largest jump / natural range ≥ this.")
    ] = 0.01,
    silent_threshold: Annotated[
        float, typer.Option(help="Flag when the unit fires on < this fraction of images.")
    ] = 0.001,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 256,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
) -> None:
    """Audit the units of one layer: FV activation beyond the natural range, gate-like jumps
    on the pixel path exemplar → FV, silence on natural data, and path similarity of the FV
    with the unit's own exemplars. Writes OUT/audit.csv, OUT/audit.html and OUT/summary.json.

    Example: fvlab audit --model fmnist-cnn --layer relu3 --out out/audit-relu3

    Works on saved (e.g. fooled) models: fvlab audit --model out/fooled --layer relu3 ...
    """
    import fvlab
    from fvlab.check.audit import AuditThresholds
    from fvlab.check.audit import audit as run_audit
    from fvlab.check.report import write_audit_html, write_csv
    from fvlab.check.similarity import check_metric
    from fvlab.cli.check_paths import natural_dataset
    from fvlab.models.hooks import resolve_layers

    check_metric(metric)
    loaded = fvlab.load(model, weights, device=device)
    resolve_layers(loaded.module, [layer])
    dataset = natural_dataset(loaded, data, split, size)
    if images is not None and images < len(dataset):
        dataset = type(dataset)(**{**_fields(dataset), "stop": images})
    thresholds = AuditThresholds(excess_threshold, jump_threshold, silent_threshold)
    result = run_audit(
        loaded,
        layer,
        dataset,
        units=parse_int_list(units) if units else None,
        steps=steps,
        top_k=top_k,
        relu_redirect_steps=relu_redirect,
        metric=metric,
        thresholds=thresholds,
        seed=seed,
        batch_size=batch_size,
        show_progress=not quiet,
        size=size,
    )
    out.mkdir(parents=True, exist_ok=True)
    columns = [k for k in result.rows[0] if k != "top_exemplars"] + ["top_exemplars"]
    write_csv(out / "audit.csv", [{k: row[k] for k in columns} for row in result.rows])
    write_audit_html(result, out / "audit.html")
    summary = result.summary()
    path = write_summary(out, summary)
    if not quiet:
        print(
            f"{summary['flagged']} of {summary['units']} units flagged "
            f"{summary['flag_counts']}; {out / 'audit.html'}; {path}"
        )


def _fields(dataset) -> dict:
    from dataclasses import fields

    return {f.name: getattr(dataset, f.name) for f in fields(dataset) if f.init}


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
