"""``fvlab audit``: score every unit of a layer for signs that its FV is not representative."""

from __future__ import annotations

from typing import Annotated

import typer

from fvlab.cli import common as c


def audit(
    out: c.OutOpt,
    layer: Annotated[str, typer.Option(help="Layer to audit (see `fvlab layers`).")],
    model: c.ModelOpt = "fmnist-cnn",
    weights: c.WeightsOpt = None,
    units: Annotated[str | None, typer.Option(help="Units: '0-9', '1,4,7' (default: all).")] = None,
    data: c.DataOpt = None,
    split: c.SplitOpt = "test",
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
    metric: c.MetricOpt = "spearman",
    size: c.SizeOpt = None,
    excess_threshold: Annotated[
        float, typer.Option(help="Flag when (FV − natural mean)/(natural max − mean) ≥ this.")
    ] = 10.0,
    jump_threshold: Annotated[
        float, typer.Option(help="Flag when the path's largest jump / natural range ≥ this.")
    ] = 0.01,
    silent_threshold: Annotated[
        float, typer.Option(help="Flag when the unit fires on < this fraction of images.")
    ] = 0.001,
    gradient_threshold: Annotated[
        float, typer.Option(help="Flag when the gradient residual along exemplar → FV ≥ this.")
    ] = 0.2,
    valley_threshold: Annotated[
        float, typer.Option(help="Flag when the path's dip below its ends / natural spread ≥ this.")
    ] = 3.0,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Images per forward pass and units per render (memory).")
    ] = 256,
    seed: c.SeedOpt = 0,
    device: c.DeviceOpt = "cpu",
    quiet: c.QuietOpt = False,
) -> None:
    """Audit the units of one layer: FV activation beyond the natural range, gate-like jumps
    on the pixel path exemplar → FV, a gradient that does not match the function along that
    path (any gate without gradient, continuous or not), a valley in the response landscape,
    silence on natural data, and path similarity of the FV with the unit's own exemplars.
    Writes OUT/audit.csv, OUT/audit.html and OUT/summary.json.

    Example: fvlab audit --model fmnist-cnn --layer relu3 --out out/audit-relu3

    Works on saved (e.g. fooled) models: fvlab audit --model out/fooled --layer relu3 ...
    """
    import fvlab
    from fvlab.check.audit import AuditSettings, AuditThresholds, run_audit

    thresholds = AuditThresholds(
        excess_threshold, jump_threshold, silent_threshold, gradient_threshold, valley_threshold
    )
    settings = AuditSettings(
        layer=layer, units=c.parse_int_list(units) if units else None, data=data, split=split,
        size=size, images=images, steps=steps, top_k=top_k, relu_redirect_steps=relu_redirect,
        metric=metric, thresholds=thresholds, batch_size=batch_size, seed=seed,
    )  # fmt: skip
    loaded = fvlab.load(model, weights, device=device)
    summary = run_audit(loaded, settings, out, show_progress=not quiet).summary()
    if not quiet:
        print(
            f"{summary['flagged']} of {summary['units']} units flagged "
            f"{summary['flag_counts']}; {out / 'audit.html'}; {out / 'summary.json'}"
        )
