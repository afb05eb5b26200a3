"""``fvlab check silent``: units that never (or almost never) fire on natural data."""

from __future__ import annotations

from typing import Annotated

import typer

from fvlab.cli import common as c


def check_silent(
    out: c.OutOpt,
    model: c.ModelOpt = "fmnist-cnn",
    weights: c.WeightsOpt = None,
    layer: Annotated[
        str | None,
        typer.Option(help="Comma-separated layers; default: every ReLU that runs once."),
    ] = None,
    data: c.DataOpt = None,
    split: c.SplitOpt = "test",
    threshold: Annotated[
        float, typer.Option(help="A unit fires on an image when its spatial max exceeds this.")
    ] = 0.0,
    max_fraction: Annotated[
        float,
        typer.Option(help="Silent = fires on at most this fraction of images (0 = never)."),
    ] = 0.0,
    steps: Annotated[int, typer.Option(help="Render updates per visualization.")] = 256,
    max_render: Annotated[int, typer.Option(help="Silent units rendered per layer.")] = 32,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Images per forward pass and units per render.")
    ] = 500,
    shard_images: c.ShardImagesOpt = 5000,
    seed: c.SeedOpt = 0,
    device: c.DeviceOpt = "cpu",
    engine: c.EngineOpt = "local",
    ray_address: c.RayAddressOpt = None,
    resume: c.ResumeOpt = False,
    quiet: c.QuietOpt = False,
) -> None:
    """List units whose activation on natural data never (or almost never) exceeds a threshold,
    with their natural maximum, the activation their visualization reaches, and PNGs of their
    visualizations (OUT/fv_<layer>.png); per-layer counts in OUT/summary.json.

    Example: fvlab check silent --model fmnist-cnn --out out/silent-check

    The sweep (slices of --shard-images) and the renders are shards: --engine ray runs them
    as Ray tasks; each finished shard is kept in OUT/shards for --resume (docs/scale.md).
    """
    import fvlab
    from fvlab.check.natural_silence import SilentCheckSettings, run_silent_check

    settings = SilentCheckSettings(
        layers=layer, data=data, split=split, threshold=threshold, max_fraction=max_fraction,
        steps=steps, max_render=max_render, batch_size=batch_size, shard_images=shard_images,
        seed=seed,
    )  # fmt: skip
    runner = c.engine_from_options(engine, ray_address)
    loaded = fvlab.load(model, weights, device=device)
    result = run_silent_check(
        loaded, settings, out, show_progress=not quiet, engine=runner, resume=resume
    )
    summary = result.summary()
    counts = ", ".join(
        f"{k}: {v}/{summary['layers'][k]['n_units']}" for k, v in summary["counts"].items()
    )
    print(
        f"silent units ({summary['n_images']} {split} images, threshold {threshold}, "
        f"max fraction {max_fraction}): {counts}; summary in {out / 'summary.json'}"
    )
