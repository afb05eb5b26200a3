"""``fvlab fool silent``: silent units — orthogonal filters that never fire on natural data."""

from __future__ import annotations

import dataclasses
from pathlib import Path
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


def _limit(dataset, count: int | None):
    if count is None:
        return dataset
    from fvlab.errors import FvlabError

    if count < 1:
        raise FvlabError(f"an image limit must be >= 1, got {count}")
    start = int(getattr(dataset, "start", 0) or 0)
    return dataclasses.replace(dataset, stop=min(start + count, start + len(dataset)))


def fool_silent(
    layer: Annotated[str, typer.Option(help="Conv layer to fool, e.g. conv3 or layer4.1.conv2.")],
    out: OutOpt,
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    target: Annotated[
        Path | None, typer.Option(help="Target image file the visualizations should show.")
    ] = None,
    target_unit: Annotated[
        str | None, typer.Option(help="Target = the visualization of this unit, LAYER:IDX.")
    ] = None,
    units: Annotated[
        str | None, typer.Option(help="Units to fool: '0-9', '1,4,7'; default all.")
    ] = None,
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
    data: DataOpt = None,
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
    fv_steps: Annotated[int, typer.Option(help="Render updates for the comparison.")] = 256,
    target_steps: Annotated[
        int, typer.Option(help="Render updates for a --target-unit visualization.")
    ] = 256,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 500,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
) -> None:
    """Add silent units to a conv layer: a parallel filter per unit, orthogonal to the unit's
    own, biased to stay below its maximum over the natural images, so the model is unchanged
    on natural data while activation maximisation may be pulled to the target.

    Example: fvlab fool silent --layer conv3 --target-unit relu4:0 --out out/silent

    Writes OUT/model/ (reload with fvlab.load), OUT/grid.png (per unit: original FV | fooled
    FV | target) and OUT/summary.json (natural top-1 of both models, max |logit difference|,
    images on which any branch fired, per-unit FV correlations).
    """
    import torch

    import fvlab
    from fvlab.cli.common import open_dataset
    from fvlab.errors import FvlabError
    from fvlab.fool.silent import silent
    from fvlab.fool.silent_eval import compare_visualizations, natural_agreement
    from fvlab.report.images import save_grid

    if (target is None) == (target_unit is None):
        raise FvlabError("give exactly one of --target IMAGE or --target-unit LAYER:IDX")
    if target is not None and not target.is_file():
        raise FvlabError(f"target image {target} does not exist")
    loaded = fvlab.load(model, weights, device=device)
    unit_list = parse_int_list(units) if units else None
    natural = _limit(open_dataset(loaded, data, "train"), natural_limit)
    evaluation = _limit(open_dataset(loaded, eval_data or data, "test"), eval_limit)
    show = not quiet
    result = silent(
        loaded,
        layer,
        str(target) if target is not None else target_unit,
        natural,
        units=unit_list,
        lam=lam,
        weight_factor=weight_factor,
        attach=attach,
        margin=margin,
        pooling=pooling,
        direction_objective=direction,
        target_steps=target_steps,
        batch_size=batch_size,
        seed=seed,
        show_progress=show,
    )
    out.mkdir(parents=True, exist_ok=True)
    result.save(out / "model")
    agreement = natural_agreement(
        loaded, result.model, evaluation, batch_size, show, margin_shift=result.margin_shift
    )
    comparison = compare_visualizations(
        loaded,
        result.model,
        result.attach,
        result.units,
        result.target,
        steps=fv_steps,
        seed=seed,
        show_progress=show,
    )
    n = len(result.units)
    triplets = torch.stack(
        [
            comparison["original_fv"],
            comparison["fooled_fv"],
            result.target.expand(n, -1, -1, -1).to(comparison["fooled_fv"]),
        ],
        dim=1,
    ).flatten(0, 1)
    labels = [f"{u} {kind}" for u in result.units for kind in ("orig", "fooled", "target")]
    size = triplets.shape[-1]
    save_grid(
        triplets, out / "grid.png", ncol=3 * min(n, 6), labels=labels, upscale=max(1, 84 // size)
    )
    closer = comparison["corr_target"] > comparison["corr_original"]
    closer_shifted = comparison["shifted_corr_target"] > comparison["shifted_corr_original"]
    per_unit = [
        {
            "unit": unit,
            "corr_target": float(comparison["corr_target"][i]),
            "corr_original": float(comparison["corr_original"][i]),
            "original_corr_target": float(comparison["original_corr_target"][i]),
            "shifted_corr_target": float(comparison["shifted_corr_target"][i]),
            "shifted_corr_original": float(comparison["shifted_corr_original"][i]),
            "objective_original": float(comparison["original_objective"][i]),
            "objective_fooled": float(comparison["fooled_objective"][i]),
            "branch_fires_in_fv": bool(comparison["branch_fires"][i]),
        }
        for i, unit in enumerate(result.units)
    ]
    summary = {
        "model": loaded.name,
        "layer": result.layer,
        "attach": result.attach,
        "construction": result.params,
        "natural": {"bias_images": result.natural.n_images, **agreement},
        "fv": {
            "layer": result.attach,
            "steps": fv_steps,
            "seed": seed,
            "comparison": "Pearson correlation over all pixels of the fooled FV with the target "
            "and with the unit's original FV, all at the model's input size and channels "
            "(corr_*); shifted_corr_*: the largest such correlation over circular shifts",
            "share_closer_to_target": float(closer.float().mean()),
            "share_closer_to_target_shifted": float(closer_shifted.float().mean()),
            "branch_fires_share": float(comparison["branch_fires"].float().mean()),
            "units": per_unit,
        },
        "files": {"model": "model", "grid": "grid.png"},
    }
    write_summary(out, summary)
    print(
        f"{n} silent units at {layer} (attached after {result.attach}); natural: top-1 "
        f"{agreement['top1_original']:.4f} → {agreement['top1_fooled']:.4f}, max |Δlogit| "
        f"{agreement['max_abs_diff']:.3g}, branch active on {agreement['branch_active_images']} "
        f"of {agreement['n_images']} images; fooled FV closer to the target for "
        f"{summary['fv']['share_closer_to_target']:.0%} of units; summary in "
        f"{out / 'summary.json'}"
    )


def register(group: typer.Typer) -> None:
    group.command("silent")(fool_silent)
