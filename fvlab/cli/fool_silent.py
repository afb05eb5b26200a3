"""``fvlab fool silent``: silent units — orthogonal filters that never fire on natural data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fvlab.cli import common as c


def fool_silent(
    layer: Annotated[str, typer.Option(help="Conv layer to fool, e.g. conv3 or layer4.1.conv2.")],
    out: c.OutOpt,
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
        str, typer.Option(help="Target direction objective: sum (paper), centre, contrast.")
    ] = "sum",
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
    images on which any branch fired, per-unit FV correlations).
    """
    import fvlab
    from fvlab.fool.silent import SilentSettings, run_silent
    from fvlab.int_lists import parse_int_list

    settings = SilentSettings(
        layer=layer, target=target, target_unit=target_unit, lam=lam, margin=margin,
        units=parse_int_list(units, "units") if units else None, weight_factor=weight_factor,
        pooling=pooling, attach=attach, direction_objective=direction, data=data,
        eval_data=eval_data, natural_limit=natural_limit, eval_limit=eval_limit,
        fv_steps=fv_steps, target_steps=target_steps, batch_size=batch_size, seed=seed,
    )  # fmt: skip
    loaded = fvlab.load(model, weights, device=device)
    summary = run_silent(loaded, settings, out, show_progress=not quiet).summary()
    agreement, fv = summary["natural"], summary["fv"]
    print(
        f"{len(fv['units'])} silent units at {layer} (attached after {summary['attach']}); "
        f"natural: top-1 {agreement['top1_original']:.4f} → {agreement['top1_fooled']:.4f}, max "
        f"|Δlogit| {agreement['max_abs_diff']:.3g}, branch active on "
        f"{agreement['branch_active_images']} of {agreement['n_images']} images; fooled FV "
        f"closer to the target for {fv['share_closer_to_target']:.0%} of units; summary in "
        f"{out / 'summary.json'}"
    )
