"""The whole ``fvlab fool silent`` job (also used by the demo): build silent units, check the
natural behaviour, compare visualizations, save the model, the grid and summary.json."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fvlab.int_lists import parse_int_list
from fvlab.report.summary import write_summary


def _limit(dataset, count: int | None):
    if count is None:
        return dataset
    from fvlab.errors import FvlabError

    if count < 1:
        raise FvlabError(f"an image limit must be >= 1, got {count}")
    start = int(getattr(dataset, "start", 0) or 0)
    return dataclasses.replace(dataset, stop=min(start + count, start + len(dataset)))


def run_silent(
    *,
    model: str,
    weights,
    layer: str,
    out: Path,
    target: Path | str | None = None,
    target_unit: str | None = None,
    units: str | None = None,
    lam: float = 3.0,
    weight_factor: float = 100.0,
    margin: float = 0.25,
    pooling: str = "none",
    attach: str = "auto",
    direction: str = "sum",
    data: Path | None = None,
    eval_data: Path | None = None,
    natural_limit: int | None = None,
    eval_limit: int | None = None,
    fv_steps: int = 256,
    target_steps: int = 256,
    batch_size: int = 500,
    seed: int = 0,
    device: str = "cpu",
    show_progress: bool = True,
) -> dict:
    """Run the job into ``out`` and return its summary (see ``fvlab fool silent --help``)."""
    import torch

    import fvlab
    from fvlab.data.natural import open_dataset
    from fvlab.errors import FvlabError
    from fvlab.fool.silent import silent
    from fvlab.fool.silent_eval import compare_visualizations, natural_agreement
    from fvlab.report.images import save_grid

    if (target is None) == (target_unit is None):
        raise FvlabError(
            "give exactly one of --target IMAGE|builtin:NAME or --target-unit LAYER:IDX"
        )
    if target is not None and not str(target).startswith("builtin:"):
        from fvlab.fool.targets import BUILTINS

        target = Path(target)
        if not target.is_file():
            raise FvlabError(
                f"target image {target} does not exist; give an image file or "
                f"builtin:{'|'.join(BUILTINS)}"
            )
    loaded = fvlab.load(model, weights, device=device)
    unit_list = parse_int_list(units) if units else None
    natural = _limit(open_dataset(loaded, data, "train"), natural_limit)
    evaluation = _limit(open_dataset(loaded, eval_data or data, "test"), eval_limit)
    show = show_progress
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
    return summary
