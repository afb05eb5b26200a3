"""``fvlab render``: feature visualizations of many units, written as PNGs + summary.json."""

from __future__ import annotations

from typing import Annotated

import typer

from fvlab.cli.common import (
    DeviceOpt,
    ModelOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    WeightsOpt,
    parse_int_list,
    write_summary,
)


def render(
    out: OutOpt,
    layer: Annotated[str, typer.Option(help="Layer name (see `fvlab layers`).")],
    units: Annotated[str, typer.Option(help="Units: '0-9', '3', '1,4,7'.")] = "0",
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    steps: Annotated[int | None, typer.Option(help="Updates (default 512).")] = None,
    size: Annotated[int | None, typer.Option(help="Image side in px (default: native).")] = None,
    param: Annotated[str, typer.Option(help="fft | pixel | maco.")] = "fft",
    transforms: Annotated[str, typer.Option(help="standard | lucid | none.")] = "standard",
    lr: Annotated[float | None, typer.Option(help="Learning rate (0.05; maco 1.0).")] = None,
    thresholds: Annotated[
        str | None, typer.Option(help="Keep snapshots after these updates, e.g. 1,2,4,8,512.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Units per optimisation (they share one batch).")
    ] = 64,
    relu_redirect: Annotated[
        int, typer.Option(help="Redirect ReLU gradients for the first N updates.")
    ] = 0,
    preset: Annotated[str, typer.Option(help="fvlab | lucid (lucid's exact schedule).")] = "fvlab",
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Render feature visualizations: one PNG per unit (and threshold), grid.png, summary.json.

    Example: fvlab render --model fmnist-cnn --layer fc --units 0-9 --out out/fc

    Units are rendered --batch-size at a time in ONE optimisation each (element b maximises
    unit b). summary.json holds, per unit, the final objective (spatial mean of the channel, or
    the logit) on the final untransformed image.
    """
    import fvlab
    from fvlab.errors import FvlabError
    from fvlab.report.images import save_grid, save_png

    if param not in ("fft", "pixel", "maco"):
        raise FvlabError(f"--param must be fft, pixel or maco, not {param!r}")
    if preset not in ("fvlab", "lucid"):
        raise FvlabError(f"--preset must be fvlab or lucid, not {preset!r}")
    loaded = fvlab.load(model, weights, device=device)
    unit_ids = parse_int_list(units)
    steps_list = parse_int_list(thresholds, "thresholds") if thresholds else None
    upscale = max(1, 112 // (size or loaded.spec.size))
    out.mkdir(parents=True, exist_ok=True)
    images, per_unit = [], []
    for first in range(0, len(unit_ids), batch_size):
        chunk = unit_ids[first : first + batch_size]
        result = fvlab.render(
            loaded,
            layer,
            chunk,
            steps=steps,
            size=size,
            param=param,
            transforms=transforms,
            lr=lr,
            seed=seed + first,
            thresholds=steps_list,
            relu_redirect_steps=relu_redirect,
            preset=preset,
            show_progress=not quiet,
        )
        for i, unit in enumerate(chunk):
            save_png(result.images[i], out / f"unit_{unit:04d}.png")
            for t, snap in result.snapshots.items():
                save_png(snap[i], out / f"unit_{unit:04d}_step{t:04d}.png")
            per_unit.append(
                {
                    "unit": unit,
                    "objective": float(result.objective[i]),
                    "file": f"unit_{unit:04d}.png",
                }
            )
        images.append(result.images)
        settings = result.settings
    import torch

    labels = [
        str(u)
        if not loaded.class_names or layer != _logits_layer(loaded)
        else f"{u} {loaded.class_names[u]}"
        for u in unit_ids
    ]
    save_grid(torch.cat(images), out / "grid.png", labels=labels, upscale=upscale)
    settings.pop("batch", None)
    summary = {"model": loaded.name, "layer": layer, "units": per_unit, "settings": settings}
    path = write_summary(out, summary)
    if not quiet:
        print(f"{len(unit_ids)} units rendered; {out / 'grid.png'}; {path}")


def _logits_layer(loaded) -> str | None:
    names = loaded.layer_names()
    return names[-1] if names else None
