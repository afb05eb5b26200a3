"""``fvlab check silent``: units that never (or almost never) fire on natural data."""

from __future__ import annotations

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
    write_summary,
)


def check_silent(
    out: OutOpt,
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    layer: Annotated[
        str | None,
        typer.Option(help="Comma-separated layers; default: every ReLU that runs once."),
    ] = None,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="Fashion-MNIST split: test or train.")] = "test",
    threshold: Annotated[
        float, typer.Option(help="A unit fires on an image when its spatial max exceeds this.")
    ] = 0.0,
    max_fraction: Annotated[
        float,
        typer.Option(help="Silent = fires on at most this fraction of images (0 = never)."),
    ] = 0.0,
    steps: Annotated[int, typer.Option(help="Render updates per visualization.")] = 256,
    max_render: Annotated[int, typer.Option(help="Silent units rendered per layer.")] = 32,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 500,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
) -> None:
    """List units whose activation on natural data never (or almost never) exceeds a threshold,
    with their natural maximum, the activation their visualization reaches, and PNGs of their
    visualizations (OUT/fv_<layer>.png); per-layer counts in OUT/summary.json.

    Example: fvlab check silent --model fmnist-cnn --out out/silent-check
    """
    import fvlab
    from fvlab.check.silent import natural_silence, relu_layers, render_silent
    from fvlab.cli.common import open_dataset
    from fvlab.errors import FvlabError
    from fvlab.report.images import save_grid

    if split not in ("test", "train"):
        raise FvlabError(f"--split must be 'test' or 'train', got {split!r}")
    loaded = fvlab.load(model, weights, device=device)
    layers = [n.strip() for n in layer.split(",") if n.strip()] if layer else relu_layers(loaded)
    dataset = open_dataset(loaded, data, split)
    report = natural_silence(
        loaded,
        layers,
        dataset,
        threshold=threshold,
        max_fraction=max_fraction,
        batch_size=batch_size,
        show_progress=not quiet,
    )
    render_silent(
        loaded, report, steps=steps, max_units=max_render, seed=seed, show_progress=not quiet
    )
    out.mkdir(parents=True, exist_ok=True)
    summary_layers = {}
    for name, entry in report.items():
        units = []
        for position, unit in enumerate(entry.silent):
            row = {
                "unit": unit,
                "natural_max": float(entry.natural_max[unit]),
                "active_fraction": float(entry.active_fraction[unit]),
            }
            if position < len(entry.rendered):
                row["fv_mean"] = float(entry.fv_mean[position])
                row["fv_max"] = float(entry.fv_max[position])
            units.append(row)
        png = None
        if entry.fv_images is not None:
            png = Path(f"fv_{name.replace('/', '_')}.png")
            save_grid(
                entry.fv_images,
                out / png,
                labels=[str(u) for u in entry.rendered],
                upscale=max(1, 112 // entry.fv_images.shape[-1]),
            )
        summary_layers[name] = {
            "n_units": entry.n_units,
            "n_silent": len(entry.silent),
            "silent_units": units,
            "fv_png": None if png is None else str(png),
        }
    summary = {
        "model": loaded.name,
        "split": split,
        "n_images": next(iter(report.values())).n_images,
        "threshold": threshold,
        "max_fraction": max_fraction,
        "render": {"steps": steps, "seed": seed, "max_units_per_layer": max_render},
        "counts": {name: entry["n_silent"] for name, entry in summary_layers.items()},
        "layers": summary_layers,
    }
    write_summary(out, summary)
    counts = ", ".join(
        f"{k}: {v}/{summary_layers[k]['n_units']}" for k, v in summary["counts"].items()
    )
    print(
        f"silent units ({summary['n_images']} {split} images, threshold {threshold}, "
        f"max fraction {max_fraction}): {counts}; summary in {out / 'summary.json'}"
    )
