"""``fvlab study build``: the stimuli of a causal-understanding study (PNG + manifest.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fvlab.cli import common as c
from fvlab.cli.common import settings_options
from fvlab.study.settings import StudySettings

BUILD_OPTIONS = {
    "split": "Fashion-MNIST split to draw exemplars from: train or test.",
    "max_images": "Stream only the first N images (default: all).",
    "top_k": "Natural exemplars kept per unit.",
    "bins": "Rank bins: bin 1 = queries, the others one natural reference each.",
    "sets_per_unit": "Image sets per unit (<= top-k / bins).",
    "occluder_fraction": "Occluder side as a fraction of the image side.",
    "stride": "Occluder grid step in px.",
    "blur_stride": "Grid step (px) of the blur-window search.",
    "blur_kernel": "Odd Gaussian kernel size (default: 21 px scaled).",
    "blur_sigma": "Gaussian sigma in px (default: from the kernel).",
    "fv_steps": "Updates per feature visualization.",
    "diversity": "Diversity weight λ (activation measured in units of its std).",
    "catch_units": ("--catch", "Catch units (picked automatically)."),
    "practice_units": ("--practice", "Practice units (picked automatically)."),
    "batch_size": "Images per forward pass (and FV references per shard).",
    "shard_images": "Images per shard of the exemplar sweep (docs/scale.md).",
    "seed": "Random seed; the same seed gives the same stimuli.",
}


@settings_options(StudySettings, BUILD_OPTIONS)
def build(
    out: c.OutOpt,
    units: Annotated[
        str | None,
        typer.Option(
            help="Units as LAYER:UNITS, e.g. 'bn2:0-3,bn3:5,bn4:1-2' (a bare number continues "
            "the previous layer), or plain '0-5' applied to every --layer. Default: units 0-5 "
            "of the model's last three batch-norm layers (fmnist-cnn: bn3:0-5,bn4:0-5,bn5:0-5).",
        ),
    ] = None,
    layer: Annotated[
        str | None,
        typer.Option(help="Layer(s) for plain --units, comma-separated, e.g. 'bn3,bn4,bn5'."),
    ] = None,
    model: c.ModelOpt = "fmnist-cnn",
    weights: c.WeightsOpt = None,
    data: c.DataOpt = None,
    device: c.DeviceOpt = "auto",
    engine: c.EngineOpt = "local",
    ray_address: c.RayAddressOpt = None,
    resume: c.ResumeOpt = False,
    quiet: c.QuietOpt = False,
    **options: Any,
) -> None:
    """Build the stimuli of a study: exemplars, occlusions and references, as PNG + manifest.

    Example: fvlab study build --units bn3:0-5,bn4:0-5,bn5:0-5 --out study

    Quick small build: fvlab study build --units bn2:0-1,bn3:0-1,bn4:0-1
    --split test --max-images 2000 --top-k 40 --sets-per-unit 2 --out tiny

    1. One streaming pass over the dataset keeps every unit's top-k natural
    exemplars (activation = spatial mean of the channel; use pre-ReLU layers,
    e.g. the bn* layers of fmnist-cnn).

    2. The top-k split into rank bins: bin 1 (ranks 1-20 by default) gives
    each image set its query, bins 2-10 one natural reference each (9).

    3. The query is occluded by a square (40 % of the side, filled with the
    patch's mean colour) at every position of a stride grid: occluded_max keeps
    the activation highest (the correct answer), occluded_min lowers it most.

    4. References per set: synthetic (9 diverse feature visualizations),
    natural (9), mixed (5 natural + 4 synthetic), blur (the natural ones
    blurred outside the window that maximises the activation), none.

    5. Catch and practice units: other units of the same layers with the
    largest occlusion effect on their top exemplar.

    manifest.json (see docs/study.md) holds all paths and the ground-truth
    activations, measured on the saved 8-bit PNGs.

    The exemplar sweep and the FV references run as shards: --engine ray runs
    them as Ray tasks; finished shards are kept in OUT/shards for --resume.
    """
    import fvlab
    from fvlab.study.settings import parse_units
    from fvlab.study.stimuli import default_units, run_build_study

    layers = [name.strip() for name in (layer or "").split(",") if name.strip()]
    chosen = parse_units(units, layers) if units is not None else None
    runner = c.engine_from_options(engine, ray_address)
    loaded = fvlab.load(model, weights, device=device)
    settings = StudySettings(
        units=chosen if chosen is not None else default_units(loaded),
        data=data,
        model_source=str(Path(model).resolve()) if Path(model).is_dir() else model,
        **options,
    )
    result = run_build_study(
        loaded, settings, out, show_progress=not quiet, engine=runner, resume=resume
    )
    if not quiet:
        counts = ", ".join(f"{n} {kind}" for kind, n in result.unit_counts().items())
        print(f"study stimuli for {counts} units written to {out / 'manifest.json'}")
