"""The jobs behind ``fvlab check paths`` and ``fvlab audit`` (also used by the demo): load, run,
write every file, return the result."""

from __future__ import annotations

from pathlib import Path

from fvlab.int_lists import parse_int_list
from fvlab.report.summary import write_summary


def natural_dataset(loaded, data: Path | None, split: str, size: int | None):
    """The natural images for ``loaded``: a folder (at ``size`` px if given) or Fashion-MNIST."""
    from fvlab.data.folders import ImageFolder
    from fvlab.data.natural import open_dataset
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


def run_paths(
    *,
    out: Path,
    model: str = "fmnist-cnn",
    weights=None,
    data: Path | None = None,
    split: str = "test",
    classes: str = "0-9",
    images_per_class: int = 50,
    metric: str = "spearman",
    fv_seeds: int = 3,
    steps: int = 512,
    layers: str = "leaves",
    reduce: str = "flatten",
    logits_layer: str | None = None,
    logits: str | None = None,
    size: int | None = None,
    bootstrap: int = 1000,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    show_progress: bool = True,
):
    """Path similarity job (``fvlab check paths --help``): writes paths.png, paths.csv,
    fvs.png and summary.json into ``out``; returns the PathCurves."""
    import fvlab
    from fvlab.activations.sweep import REDUCTIONS
    from fvlab.check.paths import path_similarity, render_class_fvs
    from fvlab.check.report import paths_summary, plot_paths, write_csv
    from fvlab.check.similarity import check_metric
    from fvlab.data.dataset import select_per_class
    from fvlab.errors import FvlabError
    from fvlab.models.probe import choose_layers, forward_order
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
        show_progress=show_progress,
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
        show_progress=show_progress,
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
    write_summary(out, paths_summary(curves))
    return curves


def _fields(dataset) -> dict:
    from dataclasses import fields

    return {f.name: getattr(dataset, f.name) for f in fields(dataset) if f.init}


def run_audit(
    *,
    out: Path,
    layer: str,
    model: str = "fmnist-cnn",
    weights=None,
    units: str | None = None,
    data: Path | None = None,
    split: str = "test",
    images: int | None = None,
    steps: int = 256,
    top_k: int = 5,
    relu_redirect: int = 16,
    metric: str = "spearman",
    size: int | None = None,
    excess_threshold: float = 10.0,
    jump_threshold: float = 0.01,
    silent_threshold: float = 0.001,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "cpu",
    show_progress: bool = True,
):
    """Audit job (``fvlab audit --help``): writes audit.csv, audit.html and summary.json into
    ``out``; returns the AuditResult."""
    import fvlab
    from fvlab.check.audit import AuditThresholds
    from fvlab.check.audit import audit as run_audit
    from fvlab.check.report import write_audit_html, write_csv
    from fvlab.check.similarity import check_metric
    from fvlab.models.hooks import resolve_layers

    check_metric(metric)
    loaded = fvlab.load(model, weights, device=device)
    resolve_layers(loaded.module, [layer])
    dataset = natural_dataset(loaded, data, split, size)
    if images is not None and images < len(dataset):
        dataset = type(dataset)(**{**_fields(dataset), "stop": images})
    thresholds = AuditThresholds(excess_threshold, jump_threshold, silent_threshold)
    result = run_audit(
        loaded,
        layer,
        dataset,
        units=parse_int_list(units) if units else None,
        steps=steps,
        top_k=top_k,
        relu_redirect_steps=relu_redirect,
        metric=metric,
        thresholds=thresholds,
        seed=seed,
        batch_size=batch_size,
        show_progress=show_progress,
        size=size,
    )
    out.mkdir(parents=True, exist_ok=True)
    columns = [k for k in result.rows[0] if k != "top_exemplars"] + ["top_exemplars"]
    write_csv(out / "audit.csv", [{k: row[k] for k in columns} for row in result.rows])
    write_audit_html(result, out / "audit.html")
    summary = result.summary()
    write_summary(out, summary)
    return result
