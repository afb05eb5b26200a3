"""``fvlab fool silent``: silent units — orthogonal filters that never fire on natural data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fvlab.cli import common as c


def fool_silent(
    out: c.OutOpt,
    layer: Annotated[
        str | None,
        typer.Option(
            help="Conv layer to fool, e.g. conv3 or layer4.1.conv2 (not with --suggest-layer)."
        ),
    ] = None,
    model: c.ModelOpt = "fmnist-cnn",
    weights: c.WeightsOpt = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Target the visualizations should show: an image file or "
            "builtin:smiley|cross|ring|checker."
        ),
    ] = None,
    target_unit: Annotated[
        str | None, typer.Option(help="Target = the visualization of this unit, LAYER:IDX.")
    ] = None,
    units: c.UnitsOpt = None,
    lam: Annotated[float, typer.Option(help="λ: weight of the target direction.")] = 3.0,
    angle: Annotated[
        float | None,
        typer.Option(help="Mix by angle instead of λ: degrees between w and w_new (0–90)."),
    ] = None,
    weight_factor: Annotated[float, typer.Option(help="Scale of the fooling filters.")] = 100.0,
    margin: Annotated[
        float, typer.Option(help="Extra bias as a fraction of (natural max − mean); 0 = paper.")
    ] = 0.25,
    pooling: Annotated[
        str, typer.Option(help="none (per position, the paper) or mean (per-image mean).")
    ] = "none",
    attach: Annotated[
        str, typer.Option(help="Module whose output gets the branch; 'auto' = after the ReLU.")
    ] = "auto",
    direction: Annotated[
        str,
        typer.Option(help="Target direction objective: sum (paper), centre, contrast, rare."),
    ] = "sum",
    rare_energy: Annotated[
        float, typer.Option(help="rare: share of the natural patch energy the directions hold.")
    ] = 0.01,
    data: c.DataOpt = None,
    eval_data: Annotated[
        Path | None,
        typer.Option(help="Image folder for the natural check (Fashion-MNIST: the test split)."),
    ] = None,
    natural_limit: Annotated[
        int | None, typer.Option(help="Use only the first N natural images for the bias.")
    ] = None,
    eval_limit: Annotated[
        int | None, typer.Option(help="Check only the first N evaluation images.")
    ] = None,
    target_steps: Annotated[
        int, typer.Option(help="Render updates for a --target-unit visualization.")
    ] = 256,
    fv_steps: Annotated[int, typer.Option(help="Render updates for the comparison.")] = 256,
    fv_redirect_steps: Annotated[
        int, typer.Option(help="lucid's ReLU-gradient redirection for the first N FV updates.")
    ] = 0,
    suggest_layer: Annotated[
        bool,
        typer.Option(
            "--suggest-layer",
            help="Rank the conv layers by the diagnostic (no model is built); "
            "writes OUT/suggest.json.",
        ),
    ] = False,
    suggest_units: Annotated[
        int, typer.Option(help="--suggest-layer: units per layer (the first N).")
    ] = 8,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 500,
    seed: c.SeedOpt = 0,
    device: c.DeviceOpt = "cpu",
    quiet: c.QuietOpt = False,
) -> None:
    """Add silent units to a conv layer: a parallel filter per unit, orthogonal to the unit's
    own, biased to stay below its maximum over the natural images, so the model is unchanged
    on natural data while activation maximisation may be pulled to the target.

    Example: fvlab fool silent --layer conv3 --target-unit relu4:0 --out out/silent

    Writes OUT/model/ (reload with fvlab.load), OUT/grid.png (per unit: original FV | fooled
    FV | target) and OUT/summary.json (natural top-1 of both models, max |logit difference|,
    images on which any branch fired, the diagnostic, fv.taken_over_fraction and per-unit
    feature-space figures). Before rendering the fooled model it prints the diagnostic: how far
    the original FVs reach along the branch directions relative to the natural maximum (a
    warning when a takeover is unlikely).

    fvlab fool silent --suggest-layer --target-unit relu4:0 --out out/suggest ranks the conv
    layers by that diagnostic instead.
    """
    import fvlab
    from fvlab.fool.silent import SilentSettings, run_silent
    from fvlab.int_lists import parse_int_list

    if layer is None and not suggest_layer:
        raise typer.BadParameter("give --layer (or --suggest-layer)", param_hint="--layer")
    settings = SilentSettings(
        layer=layer or "(suggest)", target=target, target_unit=target_unit, lam=lam, angle=angle,
        margin=margin, units=parse_int_list(units, "units") if units else None,
        weight_factor=weight_factor, pooling=pooling, attach=attach, direction_objective=direction,
        rare_energy=rare_energy, data=data, eval_data=eval_data, natural_limit=natural_limit,
        eval_limit=eval_limit, fv_steps=fv_steps, fv_redirect_steps=fv_redirect_steps,
        target_steps=target_steps, batch_size=batch_size, seed=seed,
    )  # fmt: skip
    loaded = fvlab.load(model, weights, device=device)
    if suggest_layer:
        _suggest(loaded, settings, suggest_units, out, quiet)
        return
    result = run_silent(loaded, settings, out, show_progress=not quiet)
    summary = result.summary()
    agreement, fv = summary["natural"], summary["fv"]
    if result.reach.likely:  # else the job has warned with the same line
        print(result.reach.line())
    print(
        f"{len(fv['units'])} silent units at {layer} (attached after {summary['attach']}); "
        f"natural: top-1 {agreement['top1_original']:.4f} → {agreement['top1_fooled']:.4f}, max "
        f"|Δlogit| {agreement['max_abs_diff']:.3g}, branch active on "
        f"{agreement['branch_active_images']} of {agreement['n_images']} images; taken over "
        f"(feature space): {fv['taken_over_fraction']:.0%} of units; fooled FV closer to the "
        f"target in pixels: {fv['share_closer_to_target']:.0%}; summary in "
        f"{out / 'summary.json'}"
    )


def _suggest(loaded, settings, units_per_layer: int, out: Path, quiet: bool) -> None:
    """``--suggest-layer``: rank the conv layers by the reach diagnostic; print and save it
    (bias from the first ``natural_limit`` natural images, 5,000 by default)."""
    import json

    from fvlab.data.dataset import head
    from fvlab.data.natural import open_dataset
    from fvlab.fool.silent.reach import suggest_layers

    limit = settings.natural_limit or 5000
    natural = head(open_dataset(loaded, settings.data, "train"), limit, "natural_limit")
    target = settings.target if settings.target is not None else settings.target_unit
    ranked = suggest_layers(
        loaded, target, natural, settings, units_per_layer=units_per_layer,
        fv_steps=settings.fv_steps, relu_redirect_steps=settings.fv_redirect_steps,
        show_progress=not quiet,
    )  # fmt: skip
    rows = [r.summary() for r in ranked]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "suggest.json"
    path.write_text(json.dumps({"natural_images": len(natural), "layers": rows}, indent=2))
    print(
        f"conv layers ranked by original FV / branch threshold (median over the first "
        f"{units_per_layer} units; bias from {len(natural)} natural images):"
    )
    for row in rows:
        if "error" in row:
            print(f"  {row['layer']:<18} unusable: {row['error'][:90]}")
            continue
        print(
            f"  {row['layer']:<18} FV/threshold {row['fv_over_threshold_median']:6.2f}  "
            f"FV/natural max {row['fv_over_natural_max_median']:6.2f}  "
            f"fires {row['fires_on_original_fv_share']:4.0%}  "
            f"own FV/natural max {row['own_fv_over_natural_max_median']:5.2f}"
            + ("  likely" if row["takeover_likely"] else "")
        )
    print(f"suggested: {rows[0]['layer']}; {path}")
