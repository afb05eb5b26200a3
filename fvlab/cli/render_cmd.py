"""``fvlab render``: feature visualizations of many units, written as PNGs + summary.json."""

from __future__ import annotations

from typing import Annotated

import typer

from fvlab.cli.common import (
    DeviceOpt,
    EngineOpt,
    ModelOpt,
    OutOpt,
    QuietOpt,
    RayAddressOpt,
    ResumeOpt,
    SeedOpt,
    WeightsOpt,
)
from fvlab.int_lists import parse_int_list


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
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    resume: ResumeOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Render feature visualizations: one PNG per unit (and threshold), grid.png, summary.json.

    Example: fvlab render --model fmnist-cnn --layer fc --units 0-9 --out out/fc

    Units are rendered --batch-size at a time in ONE optimisation each (element b maximises
    unit b). summary.json holds, per unit, the final objective (spatial mean of the channel, or
    the logit) on the final untransformed image. A unit's image depends only on the seed, the
    unit and the settings — not on --batch-size, its batch-mates or the engine. Each batch is a
    shard: --engine ray runs them as Ray tasks, and each finished shard is kept in OUT/shards
    so --resume can finish an interrupted run. The work is fvlab.optvis.job.run_render.
    """
    import fvlab
    from fvlab.cli.common import engine_from_options
    from fvlab.optvis.job import RenderJobSettings, run_render
    from fvlab.optvis.settings import RenderSettings

    steps_list = parse_int_list(thresholds, "thresholds") if thresholds else ()
    changes = dict(steps=steps, size=size, param=param, transforms=transforms, lr=lr, seed=seed)
    how = RenderSettings.from_preset(
        preset, thresholds=steps_list, relu_redirect_steps=relu_redirect, **changes
    )
    settings = RenderJobSettings(
        layer=layer, units=tuple(parse_int_list(units)), batch_size=batch_size, render=how
    )
    runner = engine_from_options(engine, ray_address)
    loaded = fvlab.load(model, weights, device=device)
    result = run_render(
        loaded, settings, out, show_progress=not quiet, engine=runner, resume=resume
    )
    if not quiet:
        print(f"{len(result.units)} units rendered; {out / 'grid.png'}; {out / 'summary.json'}")
