"""``fvlab audit``: score every unit of a layer for signs that its FV is not representative."""

from __future__ import annotations

from pathlib import Path
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
        int, typer.Option(min=1, help="Render updates (--batch-size units per optimisation).")
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
    procedure_threshold: Annotated[
        float,
        typer.Option(
            help="Flag when the FV from the --consistency-param render disagrees this much: "
            "max(|ln activation ratio|, angle of the layer vectors in radians)."
        ),
    ] = 2.0,
    consistency_param: Annotated[
        str,
        typer.Option(
            help="Parameterization of a second, procedure-consistency render: pixel | fft "
            "(seed + 1 only) | none (the default: skipped; it did not separate the "
            "weight-only attacks out of sample, docs/check.md)."
        ),
    ] = "none",
    hold_steps: Annotated[
        int,
        typer.Option(
            min=0,
            help="Updates of the exemplar-hold ascents (the FV procedure started from each of "
            "the unit's top 3 exemplars); 0 skips them (docs/check.md).",
        ),
    ] = 64,
    hold_threshold: Annotated[
        float,
        typer.Option(
            help="Flag when the exemplar hold −ln(1 − r) ≥ this (r: what is left of the "
            "exemplars after --hold-steps updates; 3.0 ↔ r 0.95)."
        ),
    ] = 3.0,
    calibrate_on: Annotated[
        str | None,
        typer.Option(
            help="Calibrate the thresholds on this clean model of the same architecture "
            "(audited first with the same settings; OUT/thresholds.json). Replaces the "
            "--*-threshold options."
        ),
    ] = None,
    calibrate_weights: Annotated[
        Path | None, typer.Option(help="Weights file of the --calibrate-on model.")
    ] = None,
    thresholds_file: Annotated[
        Path | None,
        typer.Option("--thresholds", help="Use the thresholds of an earlier OUT/thresholds.json."),
    ] = None,
    safety: Annotated[
        float,
        typer.Option(min=1.0, help="--calibrate-on: τ = safety × the reference's largest value."),
    ] = 1.5,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Images per forward pass and units per render (memory).")
    ] = 256,
    shard_images: c.ShardImagesOpt = 2048,
    seed: c.SeedOpt = 0,
    device: c.DeviceOpt = "cpu",
    engine: c.EngineOpt = "local",
    ray_address: c.RayAddressOpt = None,
    resume: c.ResumeOpt = False,
    quiet: c.QuietOpt = False,
) -> None:
    """Audit the units of one layer: FV activation beyond the natural range, gate-like jumps
    on the pixel path exemplar → FV, a gradient that does not match the function along that
    path (any gate without gradient, continuous or not), a valley in the response landscape,
    disagreement with an FV from another parameterization (a manipulation tuned to one FV
    procedure), ascents from the unit's own exemplars that hardly leave them (weight-only
    fine-tunes), silence on natural data, and path similarity of the FV with the unit's own
    exemplars.
    Writes OUT/audit.csv, OUT/audit.html and OUT/summary.json.

    Limits (docs/check.md, measured out of sample): gated circuits and silent units are
    flagged; weight-only fine-tunes (gradient slingshot, push-down / push-up) are ranked above
    most clean units but mostly not flagged, so an unflagged unit does not rule them out.

    Example: fvlab audit --model fmnist-cnn --layer relu3 --out out/audit-relu3

    Works on saved (e.g. fooled) models: fvlab audit --model out/fooled --layer relu3 ...

    Thresholds calibrated on a second clean model instead of the fixed defaults (fmnist-cnn:
    the committed seed-1 retrain): fvlab audit --model out/fooled --layer relu5
    --calibrate-on fmnist-cnn --calibrate-weights fvlab/check/weights/fmnist-cnn-seed1.pt
    --out DIR; reuse them with --thresholds DIR/thresholds.json (docs/check.md).

    The natural sweep (slices of --shard-images) and the renders (--batch-size units each)
    are shards: --engine ray runs them as Ray tasks; each finished shard is kept in
    OUT/shards, so --resume finishes an interrupted audit (docs/scale.md).
    """
    import fvlab
    from fvlab.check.audit import AuditSettings, AuditThresholds, run_audit
    from fvlab.check.calibration import Calibration, run_calibrated_audit
    from fvlab.errors import FvlabError

    thresholds = AuditThresholds(
        excess_threshold, jump_threshold, silent_threshold, gradient_threshold, valley_threshold,
        procedure_threshold, hold_threshold,
    )  # fmt: skip
    settings = AuditSettings(
        layer=layer, units=c.parse_int_list(units) if units else None, data=data, split=split,
        size=size, images=images, steps=steps, top_k=top_k, relu_redirect_steps=relu_redirect,
        metric=metric, thresholds=thresholds, batch_size=batch_size, shard_images=shard_images,
        seed=seed, consistency_param=consistency_param, hold_steps=hold_steps,
    )  # fmt: skip
    if calibrate_on is not None and thresholds_file is not None:
        raise FvlabError("give --calibrate-on or --thresholds, not both")
    if calibrate_weights is not None and calibrate_on is None:
        raise FvlabError("--calibrate-weights needs --calibrate-on MODEL")
    runner = c.engine_from_options(engine, ray_address)
    calibration = Calibration.load(thresholds_file) if thresholds_file is not None else None
    loaded = fvlab.load(model, weights, device=device)
    run = dict(show_progress=not quiet, engine=runner, resume=resume)
    if calibrate_on is None and calibration is None:
        result = run_audit(loaded, settings, out, **run)
    else:
        reference = None
        if calibrate_on is not None:
            reference = fvlab.load(calibrate_on, calibrate_weights, device=device)
        result = run_calibrated_audit(loaded, settings, out, reference=reference,
                                      calibration=calibration, safety=safety, **run)  # fmt: skip
    summary = result.summary()
    if not quiet:
        print(
            f"{summary['flagged']} of {summary['units']} units flagged "
            f"{summary['flag_counts']}; {out / 'audit.html'}; {out / 'summary.json'}"
        )
