"""``fvlab study build``: the stimuli of a causal-understanding study (PNG + manifest.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fvlab.cli.common import DataOpt, DeviceOpt, ModelOpt, OutOpt, QuietOpt, SeedOpt, WeightsOpt


def build(
    out: OutOpt,
    units: Annotated[
        str,
        typer.Option(
            help="Units as LAYER:UNITS, e.g. 'bn2:0-3,bn3:5,bn4:1-2' (a bare number continues "
            "the previous layer), or plain '0-5' applied to every --layer.",
        ),
    ],
    layer: Annotated[
        str | None,
        typer.Option(help="Layer(s) for plain --units, comma-separated, e.g. 'bn3,bn4,bn5'."),
    ] = None,
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="Fashion-MNIST split to draw exemplars from.")] = (
        "train"
    ),
    max_images: Annotated[
        int | None, typer.Option(min=1, help="Stream only the first N images (default: all).")
    ] = None,
    sets_per_unit: Annotated[
        int, typer.Option(min=1, help="Image sets per unit (<= top-k / bins).")
    ] = 10,
    top_k: Annotated[int, typer.Option(min=2, help="Natural exemplars kept per unit.")] = 200,
    bins: Annotated[
        int,
        typer.Option(
            min=2, help="Rank bins: bin 1 = queries, the others one natural reference each."
        ),
    ] = 10,
    occluder_fraction: Annotated[
        float, typer.Option(help="Occluder side as a fraction of the image side.")
    ] = 0.4,
    stride: Annotated[int, typer.Option(min=1, help="Occluder grid step in px.")] = 2,
    blur_stride: Annotated[
        int, typer.Option(min=1, help="Grid step (px) of the blur-window search.")
    ] = 4,
    blur_kernel: Annotated[
        int | None, typer.Option(help="Odd Gaussian kernel size (default: 21 px scaled).")
    ] = None,
    blur_sigma: Annotated[
        float | None, typer.Option(help="Gaussian sigma in px (default: from the kernel).")
    ] = None,
    fv_steps: Annotated[int, typer.Option(min=1, help="Updates per feature visualization.")] = 256,
    diversity: Annotated[
        float,
        typer.Option(help="Diversity weight λ (activation measured in units of its std)."),
    ] = 1.0,
    catch: Annotated[int, typer.Option(min=0, help="Catch units (picked automatically).")] = 3,
    practice: Annotated[
        int, typer.Option(min=0, help="Practice units (picked automatically).")
    ] = 2,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 500,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
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
    """
    from fvlab.cli.common import open_dataset
    from fvlab.errors import FvlabError
    from fvlab.models.zoo import load
    from fvlab.study.stimuli import BuildSettings, build_study, parse_units

    if split not in ("train", "test"):
        raise FvlabError(f"--split must be train or test, not {split!r}")
    layers = [name.strip() for name in (layer or "").split(",") if name.strip()]
    pairs = parse_units(units, layers)
    loaded = load(model, weights, device=device)
    dataset = open_dataset(loaded, data, split)
    settings = BuildSettings(
        top_k=top_k,
        bins=bins,
        sets_per_unit=sets_per_unit,
        occluder_fraction=occluder_fraction,
        stride=stride,
        blur_stride=blur_stride,
        fv_steps=fv_steps,
        diversity=diversity,
        catch_units=catch,
        practice_units=practice,
        blur_kernel=blur_kernel,
        blur_sigma=blur_sigma,
        split=split,
        max_images=max_images,
        batch_size=batch_size,
        seed=seed,
    )
    manifest = build_study(
        loaded,
        dataset,
        pairs,
        out,
        settings,
        dataset_name=str(data) if data is not None else "fashion-mnist",
        model_name=str(Path(model).resolve()) if Path(model).is_dir() else model,
        show_progress=not quiet,
    )
    if not quiet:
        kinds: dict[str, int] = {}
        for unit in manifest["units"]:
            kinds[unit["kind"]] = kinds.get(unit["kind"], 0) + 1
        counts = ", ".join(f"{n} {k}" for k, n in kinds.items())
        print(f"study stimuli for {counts} units written to {out / 'manifest.json'}")
