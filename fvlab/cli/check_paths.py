"""``fvlab check paths``: do FVs take the same path through the network as natural images?"""

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
    parse_int_list,
    write_summary,
)


def natural_dataset(loaded, data: Path | None, split: str, size: int | None):
    """The natural images for ``loaded``: a folder (at ``size`` px if given) or Fashion-MNIST."""
    from fvlab.cli.common import open_dataset
    from fvlab.data.folders import ImageFolder
    from fvlab.errors import FvlabError

    if split not in ("test", "train"):
        raise FvlabError(f"--split must be 'test' or 'train', got {split!r}")
    if size is not None and data is not None and data.is_dir():
        return ImageFolder(data, size=size, channels=loaded.spec.channels)
    dataset = open_dataset(loaded, data, split)
    if size is not None and size != loaded.spec.size:
        raise FvlabError(
            f"--size {size} differs from the model's native {loaded.spec.size} px; Fashion-MNIST "
            "images are 28 px, so --size needs an image folder (--data ROOT)"
        )
    return dataset


def check_paths(
    out: OutOpt,
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="Fashion-MNIST split: test or train.")] = "test",
    classes: Annotated[str, typer.Option(help="Classes: '0-9', '1,4,7'.")] = "0-9",
    images_per_class: Annotated[
        int, typer.Option(min=2, help="Natural images per class (the first in dataset order).")
    ] = 50,
    metric: Annotated[str, typer.Option(help="spearman | pearson | cosine.")] = "spearman",
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
    size: Annotated[
        int | None, typer.Option(help="Image side in px for FVs and folder images.")
    ] = None,
    bootstrap: Annotated[int, typer.Option(min=10, help="Bootstrap resamples.")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 64,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
) -> None:
    """Path similarity of class FVs vs natural images at every layer: OUT/paths.png (raw curves
    and the normalised curve with bootstrap bands), OUT/paths.csv, OUT/summary.json, OUT/fvs.png.

    Example: fvlab check paths --model fmnist-cnn --classes 0-9 --out out/paths

    Normalised = (FV vs same class − natural different classes) / (natural same class −
    natural different classes): 0 = the FV is no closer to its class than other classes are,
    1 = as close as natural images of the class. For ImageNet models pass --data with the
    validation set in class folders, --size, and --logits when folder order differs from the
    model's logit order (see docs/check.md).
    """
    import fvlab
    from fvlab.check.layers import choose_layers, forward_order
    from fvlab.check.paths import path_similarity, render_class_fvs
    from fvlab.check.report import paths_summary, plot_paths, write_csv
    from fvlab.check.similarity import check_metric
    from fvlab.check.sweep import REDUCTIONS, select_per_class
    from fvlab.errors import FvlabError
    from fvlab.report.images import save_grid

    check_metric(metric)
    if reduce not in REDUCTIONS:
        raise FvlabError(f"--reduce must be one of {', '.join(REDUCTIONS)}, not {reduce!r}")
    loaded = fvlab.load(model, weights, device=device)
    class_ids = parse_int_list(classes, "classes")
    logit_ids = parse_int_list(logits, "logits") if logits else None
    dataset = natural_dataset(loaded, data, split, size)
    layer_list = choose_layers(loaded, layers, size)
    head = logits_layer or forward_order(loaded, size)[-1]
    natural = select_per_class(dataset, class_ids, images_per_class, batch_size)
    fvs, fv_labels = render_class_fvs(
        loaded,
        class_ids,
        fv_seeds,
        logits_layer=head,
        logit_ids=logit_ids,
        steps=steps,
        size=natural.images.shape[-1],
        seed=seed,
        show_progress=not quiet,
    )
    curves = path_similarity(
        loaded,
        natural,
        fvs,
        fv_labels,
        layer_list,
        metric=metric,
        reduction=reduce,
        n_boot=bootstrap,
        seed=seed,
        batch_size=batch_size,
        show_progress=not quiet,
    )
    curves.settings = {
        "model": loaded.name,
        "logits_layer": head,
        "logit_ids": logit_ids or class_ids,
        "steps": steps,
        "seed": seed,
        "size": int(natural.images.shape[-1]),
        "natural_images": "first images of each class in dataset order",
    }
    out.mkdir(parents=True, exist_ok=True)
    plot_paths(curves, out / "paths.png")
    write_csv(out / "paths.csv", curves.rows())
    names = getattr(dataset, "class_names", None)
    labels = [f"{c} {names[c]}" if names and c < len(names) else str(c) for c in fv_labels.tolist()]
    save_grid(
        fvs, out / "fvs.png", labels=labels, ncol=fv_seeds, upscale=max(1, 84 // fvs.shape[-1])
    )
    path = write_summary(out, paths_summary(curves))
    if not quiet:
        late = curves.values["normalised"][-1]
        print(
            f"{len(layer_list)} layers; normalised FV similarity at the last layer {late:.2f}; "
            f"{out / 'paths.png'}; {path}"
        )


def register(group: typer.Typer) -> None:
    group.command("paths")(check_paths)
