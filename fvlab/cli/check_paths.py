"""``fvlab check paths``: do FVs take the same path through the network as natural images?"""

from __future__ import annotations

from typing import Annotated

import typer

from fvlab.cli import common as c


def check_paths(
    out: c.OutOpt,
    model: c.ModelOpt = "fmnist-cnn",
    weights: c.WeightsOpt = None,
    data: c.DataOpt = None,
    split: c.SplitOpt = "test",
    classes: Annotated[str, typer.Option(help="Classes: '0-9', '1,4,7'.")] = "0-9",
    images_per_class: Annotated[
        int, typer.Option(min=2, help="Natural images per class (the first in dataset order).")
    ] = 50,
    metric: c.MetricOpt = "spearman",
    fv_seeds: Annotated[int, typer.Option(min=1, help="FVs per class (distinct starts).")] = 3,
    steps: Annotated[int, typer.Option(min=1, help="Render updates per FV.")] = 512,
    layers: Annotated[
        str,
        typer.Option(help="'leaves' (every leaf module in forward order) or names a,b,c."),
    ] = "leaves",
    reduce: Annotated[
        str, typer.Option(help="Activation vector per layer: flatten | spatial_mean.")
    ] = "flatten",
    logits_layer: Annotated[
        str | None, typer.Option(help="Layer whose outputs are the class logits (default: last).")
    ] = None,
    logits: Annotated[
        str | None,
        typer.Option(help="Logit index of each class, if it differs from the class index."),
    ] = None,
    size: c.SizeOpt = None,
    bootstrap: Annotated[int, typer.Option(min=10, help="Bootstrap resamples.")] = 1000,
    batch_size: c.BatchSizeOpt = 64,
    shard_images: c.ShardImagesOpt = 2048,
    shard_classes: Annotated[
        int,
        typer.Option(min=1, help="Classes per FV render shard (--fv-seeds FVs each; Ray task)."),
    ] = 16,
    seed: c.SeedOpt = 0,
    device: c.DeviceOpt = "cpu",
    engine: c.EngineOpt = "local",
    ray_address: c.RayAddressOpt = None,
    resume: c.ResumeOpt = False,
    quiet: c.QuietOpt = False,
) -> None:
    """Path similarity of class FVs vs natural images at every layer: OUT/paths.png (raw curves
    and the normalised curve with bootstrap bands), OUT/paths.csv, OUT/summary.json, OUT/fvs.png.

    Example: fvlab check paths --model fmnist-cnn --classes 0-9 --out out/paths

    Normalised = (FV vs same class − natural different classes) / (natural same class −
    natural different classes): 0 = the FV is no closer to its class than other classes are,
    1 = as close as natural images of the class. For ImageNet models pass --data with the
    validation set in class folders, --size, and --logits when folder order differs from the
    model's logit order (see docs/check.md).

    The class FVs render in shards of --shard-classes classes and the natural images' sweeps run
    in slices of --shard-images: --engine ray runs them as Ray tasks; finished shards are kept in
    OUT/shards for --resume (docs/scale.md).
    """
    import fvlab
    from fvlab.check.paths import PathsSettings, run_paths

    settings = PathsSettings(
        data=data, split=split, size=size, layers=layers, logits_layer=logits_layer,
        classes=c.parse_int_list(classes, "classes"),
        logits=c.parse_int_list(logits, "logits") if logits else None,
        images_per_class=images_per_class, fv_seeds=fv_seeds, steps=steps, metric=metric,
        reduce=reduce, bootstrap=bootstrap, batch_size=batch_size, shard_images=shard_images,
        shard_classes=shard_classes, seed=seed,
    )  # fmt: skip
    runner = c.engine_from_options(engine, ray_address)
    curves = run_paths(
        fvlab.load(model, weights, device=device), settings, out, show_progress=not quiet,
        engine=runner, resume=resume,
    )  # fmt: skip
    if not quiet:
        late = curves.values["normalised"][-1]
        print(
            f"{len(curves.layers)} layers; normalised FV similarity at the last layer {late:.2f}; "
            f"{out / 'paths.png'}; {out / 'summary.json'}"
        )
