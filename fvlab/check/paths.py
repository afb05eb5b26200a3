"""Path similarity: do feature visualizations travel the same path through a network as
natural images of the class they visualize? (P1's sanity check, REFERENCE §4.)

For classes c and every layer l (see :mod:`fvlab.models.probe`), each image's activation at l is
reduced to one vector (``flatten`` by default) and compared with the chosen metric
(:mod:`fvlab.check.similarity`; a similarity is a dot product of unit vectors z). Per layer:

* ``nat_same``   mean similarity of two different natural images of the same class
* ``nat_other``  mean similarity of natural images of different classes
* ``fv_same``    mean similarity of an FV of class c with natural images of class c
* ``fv_other``   mean similarity of an FV of class c with natural images of other classes
* ``normalised`` (fv_same − nat_other) / (nat_same − nat_other): 0 = as similar as natural
                 images of different classes, 1 = as similar as natural images of one class

Averages are over classes (each class weighs the same), then over pairs. Memory stays bounded
by streaming: pass 1 accumulates per-class sums Σ z and each natural image's similarity to every
FV; pass 2 gives each image its mean similarity to every class, ⟨z_i, Σ_{j∈c} z_j⟩ (its own
term removed). Pass 2 reuses pass 1's vectors when they fit a memory budget, else it streams
the images again, so nothing of size N × activations is needed.

Confidence bands: a vectorised, class-stratified percentile bootstrap over natural images
(resampled within each class) and over FV seeds (resampled within each class), applied to the
per-image mean similarities — the partner sets of each image are held fixed, a standard
approximation that keeps the bootstrap O(resamples × images) instead of recomputing pairs.

:func:`run_paths` is the job (``fvlab check paths``): class FVs, natural images, the curves, and
:meth:`PathCurves.save` writes paths.png, paths.csv, fvs.png and summary.json.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fvlab.activations.sweep import reduce_activation, sweep
from fvlab.check.report import plot_paths, write_csv
from fvlab.check.settings import PathsSettings
from fvlab.check.similarity import Metric, check_metric, unit_vectors
from fvlab.data.dataset import InMemoryImages, select_per_class
from fvlab.errors import FvlabError
from fvlab.jobs import OutDir, finish
from fvlab.models.hooks import capture
from fvlab.models.probe import choose_layers, forward_order
from fvlab.report.images import save_grid
from fvlab.report.summary import write_summary

if TYPE_CHECKING:
    from fvlab.engine.base import Engine
    from fvlab.engine.store import ShardStore
    from fvlab.models.zoo import LoadedModel

STATISTICS: tuple[str, ...] = ("fv_same", "fv_other", "nat_same", "nat_other", "normalised")


@dataclass
class PathCurves:
    """Per-layer path similarities (arrays of length L) with bootstrap intervals (L, 2).

    ``settings``: how the curves were made (model, logits layer, render steps, …; filled in by
    :func:`run_paths`); ``fv_images`` / ``fv_labels`` / ``class_names``: the FVs compared, their
    classes and the dataset's class names (for ``fvs.png``)."""

    layers: list[str]
    metric: str
    reduction: str
    classes: list[int]
    images_per_class: int
    fvs_per_class: int
    values: dict[str, np.ndarray]
    ci: dict[str, np.ndarray]
    confidence: float
    n_boot: int
    settings: dict = field(default_factory=dict)
    fv_images: torch.Tensor | None = field(default=None, repr=False)
    fv_labels: torch.Tensor | None = field(default=None, repr=False)
    class_names: tuple[str, ...] | None = None

    def rows(self) -> list[dict]:
        """One dict per layer: index, name, and value/low/high of every statistic."""
        rows = []
        for i, layer in enumerate(self.layers):
            row: dict = {"index": i, "layer": layer}
            for name in STATISTICS:
                row[name] = float(self.values[name][i])
                row[f"{name}_low"] = float(self.ci[name][i, 0])
                row[f"{name}_high"] = float(self.ci[name][i, 1])
            rows.append(row)
        return rows

    def summary(self) -> dict:
        """JSON-ready summary: settings and, per layer, every statistic with its interval."""
        return {
            "metric": self.metric,
            "reduction": self.reduction,
            "classes": self.classes,
            "images_per_class": self.images_per_class,
            "fvs_per_class": self.fvs_per_class,
            "bootstrap": {
                "method": "class-stratified percentile bootstrap over natural images and FV seeds",
                "resamples": self.n_boot,
                "confidence": self.confidence,
            },
            "statistics": list(STATISTICS),
            "same_above_other_at_every_layer": bool(
                np.all(self.values["nat_same"] > self.values["nat_other"])
            ),
            "layers": [
                {
                    "index": row["index"],
                    "layer": row["layer"],
                    **{
                        name: {"value": row[name], "ci": [row[f"{name}_low"], row[f"{name}_high"]]}
                        for name in STATISTICS
                    },
                }
                for row in self.rows()
            ],
            "settings": self.settings,
        }

    def save(self, out: Path) -> Path:
        """``paths.png`` (raw and normalised curves with bands), ``paths.csv`` (one row per
        layer), ``fvs.png`` (the FVs, one row per class) and ``summary.json`` into ``out``."""
        out = Path(out)
        plot_paths(self, out / "paths.png")
        write_csv(out / "paths.csv", self.rows())
        if self.fv_images is not None and self.fv_labels is not None:
            names = self.class_names
            labels = [
                f"{c} {names[c]}" if names and c < len(names) else str(c)
                for c in self.fv_labels.tolist()
            ]
            upscale = max(1, 84 // self.fv_images.shape[-1])
            save_grid(
                self.fv_images, out / "fvs.png", labels=labels, ncol=self.fvs_per_class,
                upscale=upscale,
            )  # fmt: skip
        return write_summary(out, self.summary())


def _sha256(tensor: torch.Tensor) -> str:
    import hashlib

    data = tensor.detach().cpu().contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


def _layer_vectors(
    model, images: torch.Tensor, layers: Sequence[str], reduction: str, metric: Metric
) -> list[torch.Tensor]:
    """Unit vectors (float64) of ``images`` at every layer."""
    with torch.no_grad(), capture(model.module, layers, detach=True) as cap:
        model(images.to(model.device))
        return [
            unit_vectors(reduce_activation(cap[layer], reduction).cpu(), metric, torch.float64)
            for layer in layers
        ]


@dataclass(frozen=True)
class _Design:
    """Which class each natural image (N) and each FV (M) belongs to; K classes, R FVs each."""

    classes: list[int]
    groups: list[np.ndarray]  # natural image indices of each class
    image_class: np.ndarray  # (N,) class position 0…K−1 of each natural image
    fv_class: np.ndarray  # (M,) class position of each FV
    n_seeds: int  # R

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(g) for g in self.groups])


def _design(natural: InMemoryImages, fv_images: torch.Tensor, fv_labels: torch.Tensor) -> _Design:
    """Step 1: group natural images and FVs by class, checking the inputs."""
    labels = natural.labels.numpy()
    classes = list(dict.fromkeys(labels.tolist()))
    groups = [np.flatnonzero(labels == c) for c in classes]
    if len(classes) < 2 or min(len(g) for g in groups) < 2:
        raise FvlabError("path similarity needs >= 2 classes with >= 2 natural images each")
    fv_lab = fv_labels.numpy()
    fv_groups = [np.flatnonzero(fv_lab == c) for c in classes]
    n_seeds = len(fv_groups[0])
    if n_seeds == 0 or any(len(g) != n_seeds for g in fv_groups):
        raise FvlabError(
            "give the same number (>= 1) of FVs for every class; FVs per class: "
            + ", ".join(f"{c}: {len(g)}" for c, g in zip(classes, fv_groups, strict=True))
        )
    if fv_images.shape[1:] != natural.images.shape[1:]:
        raise FvlabError(
            f"FVs have shape {tuple(fv_images.shape[1:])} but natural images "
            f"{tuple(natural.images.shape[1:])}; render the FVs at the natural images' size"
        )
    class_of = {c: k for k, c in enumerate(classes)}
    image_class = np.array([class_of[c] for c in labels])
    fv_class = np.array([class_of[c] for c in fv_lab])
    return _Design(classes, groups, image_class, fv_class, n_seeds)


@dataclass
class _Similarities:
    """Per layer (L), natural image (N): similarity to every FV (L, N, M), to itself (L, N),
    and summed over the natural images of every class, ⟨z_i, Σ_{j∈c} z_j⟩ (L, N, K)."""

    fv: np.ndarray
    squared_norm: np.ndarray  # ⟨z_i, z_i⟩: 1, or 0 for a zero vector
    class_sums: np.ndarray


def _stream(model, images, layers: list[str], reduction: str, batch_size: int, consumer) -> None:
    sweep(
        model, images, dict.fromkeys(layers, reduction), moments=False, batch_size=batch_size,
        consumer=consumer, show_progress=False,
    )  # fmt: skip


def first_pass_shard(model, shard: tuple) -> dict:
    """Pass 1 on one slice of the natural images: ``(images, image_class, n_classes, z_fv,
    layers, metric, reduction, batch_size, keep)`` → per layer its rows of the similarity to
    every FV (L, n, M) and to itself (L, n), its part of the per-class sums Σ z (L: K × D) and,
    with ``keep``, its unit vectors (float32) for pass 2."""
    images, image_class, n_classes, z_fv, layers, metric, reduction, batch_size, keep = shard
    n, first = len(images), images.start
    fv_sims = np.zeros((len(layers), n, z_fv[0].shape[0]))
    self_sims = np.zeros((len(layers), n))
    class_sums: list[torch.Tensor | None] = [None] * len(layers)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(image_class), n_classes).double()
    kept: list[list[torch.Tensor]] = [[] for _ in layers]

    def consume(indices, _labels, reduced):
        idx = indices.numpy() - first
        for li, layer in enumerate(layers):
            z = unit_vectors(reduced[layer], metric, torch.float64)
            fv_sims[li, idx] = (z @ z_fv[li].T).numpy()
            self_sims[li, idx] = (z * z).sum(1).numpy()
            part = onehot[idx].T @ z
            class_sums[li] = part if class_sums[li] is None else class_sums[li] + part
            if keep:
                kept[li].append(z.float())

    _stream(model, images, layers, reduction, batch_size, consume)
    return {
        "fv": torch.from_numpy(fv_sims),
        "self": torch.from_numpy(self_sims),
        "class_sums": class_sums,
        "z": [torch.cat(z) for z in kept] if keep else None,
    }


def second_pass_shard(model, shard: tuple) -> torch.Tensor:
    """Pass 2 on one slice: ``(images, class_sums, layers, metric, reduction, batch_size)`` →
    each image's summed similarity to every class, ⟨z_i, Σ_{j∈c} z_j⟩ (L, n, K)."""
    images, class_sums, layers, metric, reduction, batch_size = shard
    first = images.start
    out = np.zeros((len(layers), len(images), class_sums[0].shape[0]))

    def consume(indices, _labels, reduced):
        idx = indices.numpy() - first
        for li, layer in enumerate(layers):
            z = unit_vectors(reduced[layer], metric, torch.float64)
            out[li, idx] = (z @ class_sums[li].T).numpy()

    _stream(model, images, layers, reduction, batch_size, consume)
    return torch.from_numpy(out)


def _similarities(
    model,
    natural: InMemoryImages,
    z_fv: list[torch.Tensor],
    layers: list[str],
    design: _Design,
    *,
    metric: Metric,
    reduction: str,
    batch_size: int,
    cache_bytes: int,
    show_progress: bool,
    shard_images: int | None = None,
    engine: Engine | None = None,
    stores: tuple[ShardStore | None, ShardStore | None] = (None, None),
) -> _Similarities:
    """Step 2: the similarity matrices, streamed (module docstring: pass 1, then pass 2 from the
    cached vectors or a second stream of the images). Each pass runs on slices of
    ``shard_images`` images (default: all; rounded up to whole batches), the shards of
    ``engine`` (default: this process), kept in ``stores`` (pass 1's, pass 2's); the per-class
    sums are added up in slice order, so the result depends on the slice plan, never on the
    engine (against one slice: equal to float64 rounding)."""
    from fvlab.activations.sharded import slice_plan
    from fvlab.engine.run import run_shards

    n_images, n_classes = len(natural), len(design.classes)
    plan = slice_plan(n_images, shard_images or max(n_images, 1), batch_size)
    # keep the natural images' unit vectors (float32) if they fit, else compute them twice
    keep = n_images * sum(z.shape[1] for z in z_fv) * 4 <= cache_bytes
    shards = [
        (natural.slice(a, b), design.image_class[a:b], n_classes, z_fv, layers, metric,
         reduction, batch_size, keep)
        for a, b in plan
    ]  # fmt: skip
    names = [f"pass1-{k:05d}" for k in range(len(plan))]
    first = run_shards(
        first_pass_shard, model, shards, names, engine=engine, store=stores[0],
        show_progress=show_progress, description=f"path similarity: {n_images} images",
    )  # fmt: skip
    fv_sims = np.concatenate([p["fv"].numpy() for p in first], axis=1)
    self_sims = np.concatenate([p["self"].numpy() for p in first], axis=1)
    class_sums = []
    for li in range(len(layers)):  # added up in slice order
        total = first[0]["class_sums"][li]
        for part in first[1:]:
            total = total + part["class_sums"][li]
        class_sums.append(total)
    if keep:
        class_sims = np.zeros((len(layers), n_images, n_classes))
        for li in range(len(layers)):
            z = torch.cat([p["z"][li] for p in first]).double()
            class_sims[li] = (z @ class_sums[li].T).numpy()
    else:
        shards = [
            (natural.slice(a, b), class_sums, layers, metric, reduction, batch_size)
            for a, b in plan
        ]
        second = run_shards(
            second_pass_shard, model, shards, [f"pass2-{k:05d}" for k in range(len(plan))],
            engine=engine, store=stores[1], show_progress=show_progress,
            description=f"path similarity, pass 2: {n_images} images",
        )  # fmt: skip
        class_sims = np.concatenate([p.numpy() for p in second], axis=1)
    return _Similarities(fv_sims, self_sims, class_sims)


@dataclass
class _PerImage:
    """Step 3's per-natural-image mean similarities (L, N); ``fv_same`` keeps each of the R FVs
    of the image's own class (L, N, R) for the seed bootstrap."""

    nat_same: np.ndarray
    nat_other: np.ndarray
    fv_same: np.ndarray
    fv_other: np.ndarray


def _per_image(sims: _Similarities, design: _Design) -> _PerImage:
    """Step 3: each natural image's mean similarity to the other images of its class, to images
    of other classes, to the FVs of its class and to the FVs of other classes."""
    n_images = sims.squared_norm.shape[1]
    counts, image_class = design.counts, design.image_class
    own = sims.class_sums[:, np.arange(n_images), image_class]  # (L, N)
    nat_same = (own - sims.squared_norm) / (counts[image_class] - 1)
    nat_other = (sims.class_sums.sum(2) - own) / (n_images - counts[image_class])
    own_fv = np.stack([np.flatnonzero(design.fv_class == image_class[i]) for i in range(n_images)])
    fv_same = np.take_along_axis(sims.fv, own_fv[None], axis=2)  # (L, N, R)
    n_fvs = sims.fv.shape[2]
    fv_other = (sims.fv.sum(2) - fv_same.sum(2)) / (n_fvs - design.n_seeds)
    return _PerImage(nat_same, nat_other, fv_same, fv_other)


def _curves(per_image: _PerImage, groups: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Step 4: the point estimates — per-image means averaged within, then over, classes."""

    def class_mean(values: np.ndarray) -> np.ndarray:
        return np.mean([values[:, g].mean(1) for g in groups], axis=0)

    point = {
        "fv_same": class_mean(per_image.fv_same.mean(2)),
        "fv_other": class_mean(per_image.fv_other),
        "nat_same": class_mean(per_image.nat_same),
        "nat_other": class_mean(per_image.nat_other),
    }
    point["normalised"] = _normalise(point["fv_same"], point["nat_same"], point["nat_other"])
    return point


def _stratified_bootstrap(
    per_image: dict[str, np.ndarray],
    fv_same: np.ndarray,
    groups: list[np.ndarray],
    n_boot: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Bootstrap distributions (L, n_boot) of the class-averaged statistics.

    ``per_image[name]``: (L, N) per-image means; ``fv_same``: (L, N, R) similarity of image i to
    each of the R FVs of its own class; ``groups``: image indices per class."""
    n_layers = fv_same.shape[0]
    sums = {name: np.zeros((n_layers, n_boot)) for name in ("fv_same", *per_image)}
    n_seeds = fv_same.shape[2]
    for members in groups:
        pick = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
        for name, values in per_image.items():
            sums[name] += values[:, pick].mean(axis=2)
        seeds = rng.integers(0, n_seeds, size=(n_boot, 1, n_seeds))
        chosen = fv_same[:, pick]  # (L, B, n, R)
        sums["fv_same"] += np.take_along_axis(chosen, seeds[None], axis=3).mean(axis=(2, 3))
    return {name: total / len(groups) for name, total in sums.items()}


def _bands(
    per_image: _PerImage, groups: list[np.ndarray], n_boot: int, confidence: float, seed: int
) -> dict[str, np.ndarray]:
    """Step 5: percentile bootstrap intervals (L, 2) of every statistic (module docstring)."""
    boot = _stratified_bootstrap(
        {
            "fv_other": per_image.fv_other,
            "nat_same": per_image.nat_same,
            "nat_other": per_image.nat_other,
        },
        per_image.fv_same,
        groups,
        n_boot,
        np.random.default_rng(seed),
    )
    boot["normalised"] = _normalise(boot["fv_same"], boot["nat_same"], boot["nat_other"])
    tail = (1 - confidence) / 2 * 100
    n_layers = per_image.fv_same.shape[0]
    with warnings.catch_warnings():  # a layer where a statistic is undefined gets a NaN band
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            name: np.nanpercentile(boot[name], [tail, 100 - tail], axis=1).T
            if np.isfinite(boot[name]).any()
            else np.full((n_layers, 2), np.nan)
            for name in STATISTICS
        }


def _normalise(fv_same, nat_same, nat_other) -> np.ndarray:
    span = nat_same - nat_other
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(span) > 1e-12, (fv_same - nat_other) / span, np.nan)


def path_similarity(
    model: LoadedModel,
    natural: InMemoryImages,
    fv_images: torch.Tensor,
    fv_labels: torch.Tensor,
    layers: Sequence[str],
    *,
    metric: Metric = "spearman",
    reduction: str = "flatten",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    batch_size: int = 64,
    cache_bytes: int = 2**31,
    show_progress: bool = True,
    shard_images: int | None = None,
    engine: Engine | None = None,
    stores: tuple[ShardStore | None, ShardStore | None] = (None, None),
) -> PathCurves:
    """Path similarity curves of FVs vs natural images (see the module docstring).

    ``natural``: images grouped by class (e.g. :func:`fvlab.data.dataset.select_per_class`) with
    at least 2 images per class and 2 classes; ``fv_images`` (M, C, H, W) in [0, 1] with
    ``fv_labels`` (M,) naming each FV's class, the same number of FVs for every class.
    The natural images' unit vectors are kept in memory (float32) if they need at most
    ``cache_bytes``; otherwise the images are streamed through the model a second time.
    Steps: (1) group by class, (2) activation vectors of the FVs and streamed similarity
    matrices, (3) per-image means, (4) class-averaged curves, (5) bootstrap bands. Step 2's
    passes run in slices of ``shard_images`` natural images (default: one slice), the shards of
    ``engine``, kept in ``stores`` (:func:`_similarities`).
    """
    check_metric(metric)
    if not 0 < confidence < 1:
        raise FvlabError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 10:
        raise FvlabError(f"use at least 10 bootstrap resamples, got {n_boot}")
    design = _design(natural, fv_images, fv_labels)
    layers = list(layers)
    z_fv = _layer_vectors(model, fv_images, layers, reduction, metric)
    sims = _similarities(
        model, natural, z_fv, layers, design, metric=metric, reduction=reduction,
        batch_size=batch_size, cache_bytes=cache_bytes, show_progress=show_progress,
        shard_images=shard_images, engine=engine, stores=stores,
    )  # fmt: skip
    per_image = _per_image(sims, design)
    counts = design.counts
    return PathCurves(
        layers=layers,
        metric=metric,
        reduction=reduction,
        classes=[int(c) for c in design.classes],
        images_per_class=int(counts.min()) if counts.min() == counts.max() else -1,
        fvs_per_class=design.n_seeds,
        values=_curves(per_image, design.groups),
        ci=_bands(per_image, design.groups, n_boot, confidence, seed),
        confidence=confidence,
        n_boot=n_boot,
        fv_images=fv_images,
        fv_labels=fv_labels,
        class_names=natural.class_names,
    )


def render_class_fvs(
    model,
    classes: Sequence[int],
    fvs_per_class: int,
    *,
    logits_layer: str,
    logit_ids: Sequence[int] | None = None,
    steps: int = 512,
    size: int | None = None,
    seed: int = 0,
    show_progress: bool = True,
    shard_classes: int | None = None,
    engine: Engine | None = None,
    store: ShardStore | None = None,
    **render_kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FVs of class logits: ``fvs_per_class`` per class (each element starts from its own random
    image, so repeats of a unit are distinct FVs), in one batched optimisation — or, with
    ``shard_classes``, in render shards of that many whole classes through ``engine`` (kept in
    ``store``: :func:`fvlab.optvis.job.render_shards`). A FV depends only on (seed, logit, which
    repeat, settings), so both give the same images (to float rounding; PNG levels equal).

    ``logit_ids[k]`` is the logit of ``classes[k]`` (default: the class index itself).
    Returns images (K·n, C, H, W) and their class labels (K·n,)."""
    import fvlab

    if fvs_per_class < 1:
        raise FvlabError(f"FVs per class must be >= 1, got {fvs_per_class}")
    ids = list(classes) if logit_ids is None else list(logit_ids)
    if len(ids) != len(classes):
        raise FvlabError(f"got {len(ids)} logit ids for {len(classes)} classes; give one each")
    units = [int(u) for u in ids for _ in range(fvs_per_class)]
    labels = torch.tensor([int(c) for c in classes for _ in range(fvs_per_class)])
    if shard_classes is None and engine is None and store is None:
        result = fvlab.render(model, logits_layer, units, steps=steps, size=size, seed=seed,
                              show_progress=show_progress, **render_kwargs)  # fmt: skip
        return result.images, labels
    from fvlab.optvis.job import render_shards
    from fvlab.optvis.settings import RenderSettings

    how = RenderSettings(steps=steps, size=size, seed=seed, **render_kwargs)
    per_shard = (shard_classes or len(ids)) * fvs_per_class  # whole classes: repeats 0…n−1
    chunks = [(logits_layer, units[i : i + per_shard]) for i in range(0, len(units), per_shard)]
    images = render_shards(model, chunks, how, engine=engine, store=store,
                           show_progress=show_progress, description="rendering class FVs",
                           on_result=lambda _, payload: payload["images"])  # fmt: skip
    return torch.cat(images), labels


@dataclass
class ExemplarPaths:
    """Per layer (L) and unit (U): FV vs the unit's own exemplars, normalised (see
    :func:`exemplar_path_similarity`)."""

    layers: list[str]
    fv_exemplar: np.ndarray  # (L, U)
    exemplar_exemplar: np.ndarray  # (L, U)
    exemplar_reference: np.ndarray  # (L, U)

    @property
    def normalised(self) -> np.ndarray:
        return _normalise(self.fv_exemplar, self.exemplar_exemplar, self.exemplar_reference)


def exemplar_path_similarity(
    model,
    fv_images: torch.Tensor,
    exemplars: torch.Tensor,
    reference: torch.Tensor,
    layers: Sequence[str],
    *,
    metric: Metric = "spearman",
    reduction: str = "flatten",
    units_per_batch: int = 8,
    batch_size: int | None = None,
) -> ExemplarPaths:
    """Path similarity of each unit's FV with the unit's own top natural exemplars.

    ``fv_images`` (U, C, H, W); ``exemplars`` (U, k, C, H, W) with k >= 2; ``reference``
    (R, C, H, W) random natural images. Per layer and unit: fv_exemplar = mean similarity of
    the FV with the k exemplars, exemplar_exemplar = mean over pairs of different exemplars
    (level 1), exemplar_reference = mean similarity of exemplars with the reference images
    (level 0). ``batch_size`` (default: no limit) caps the images of one forward pass:
    ``units_per_batch`` is lowered to fit it and the reference images are read in chunks."""
    check_metric(metric)
    n_units, k = exemplars.shape[:2]
    if k < 2 or fv_images.shape[0] != n_units:
        raise FvlabError(
            f"need one FV and >= 2 exemplars per unit; got {fv_images.shape[0]} FVs and "
            f"exemplars of shape {tuple(exemplars.shape)}"
        )
    layers = list(layers)
    if batch_size is not None:
        units_per_batch = max(1, min(units_per_batch, batch_size // (k + 1)))
    step = batch_size or max(len(reference), 1)
    ref_sums = None
    for first in range(0, len(reference), step):
        part = _layer_vectors(model, reference[first : first + step], layers, reduction, metric)
        sums = [z.sum(0) for z in part]
        ref_sums = (
            sums if ref_sums is None else [a + b for a, b in zip(ref_sums, sums, strict=True)]
        )
    ref_mean = [z / len(reference) for z in ref_sums]
    shape = (len(layers), n_units)
    fv_ex, ex_ex, ex_ref = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for first in range(0, n_units, units_per_batch):
        sl = slice(first, min(first + units_per_batch, n_units))
        n = sl.stop - sl.start
        images = torch.cat([fv_images[sl], exemplars[sl].flatten(0, 1)])
        z_all = _layer_vectors(model, images, layers, reduction, metric)
        for li, z in enumerate(z_all):
            z_fv, z_ex = z[:n], z[n:].view(n, k, -1)
            fv_ex[li, sl] = torch.einsum("ud,ukd->uk", z_fv, z_ex).mean(1).numpy()
            gram = torch.einsum("ujd,ukd->ujk", z_ex, z_ex)
            off_diagonal = gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(1)
            ex_ex[li, sl] = (off_diagonal / (k * (k - 1))).numpy()
            ex_ref[li, sl] = (z_ex.mean(1) @ ref_mean[li]).numpy()
    return ExemplarPaths(layers, fv_ex, ex_ex, ex_ref)


def run_paths(
    model: LoadedModel,
    settings: PathsSettings,
    out: OutDir = None,
    *,
    show_progress: bool = True,
    engine: Engine | None = None,
    resume: bool = False,
) -> PathCurves:
    """The path check (``fvlab check paths``): the first ``images_per_class`` natural images of
    each class, ``fv_seeds`` FVs of each class logit, the curves at every layer of
    ``settings.layers``; saved into ``out`` (:meth:`PathCurves.save`) when given. The FVs render
    in shards of ``shard_classes`` classes and the sweeps of the natural images run in slices of
    ``shard_images``: the shards of ``engine`` (default: this process), kept in
    ``out/shards/{fvs,pass1,pass2}``; ``resume`` reuses the intact shards of an earlier run of
    the same check."""
    from fvlab.engine.jobs import shard_store

    s = settings
    dataset = s.dataset(model)
    layers = choose_layers(model, s.layers, s.size)
    logits_layer = s.logits_layer or forward_order(model, s.size)[-1]
    natural = select_per_class(dataset, s.classes, s.images_per_class, s.batch_size)
    size = natural.images.shape[-1]
    fv_store = shard_store(model, "paths", {"settings": s.to_dict(), "logits_layer": logits_layer,
                           "size": size}, [s.shard_classes], out, resume, part="fvs")  # fmt: skip
    fvs, fv_labels = render_class_fvs(
        model, s.classes, s.fv_seeds, logits_layer=logits_layer, logit_ids=s.logits,
        steps=s.steps, size=size, seed=s.seed, show_progress=show_progress,
        shard_classes=s.shard_classes, engine=engine, store=fv_store,
    )  # fmt: skip
    # the FVs are part of what a sweep shard computes with: fingerprint them by content
    what = {"settings": s.to_dict(), "layers": layers, "fvs": _sha256(fvs)}
    plan = [len(natural), s.shard_images, s.batch_size]
    stores = tuple(
        shard_store(model, "paths", what, plan, out, resume, part=part)
        for part in ("pass1", "pass2")
    )
    curves = path_similarity(
        model, natural, fvs, fv_labels, layers, metric=s.metric, reduction=s.reduce,
        n_boot=s.bootstrap, seed=s.seed, batch_size=s.batch_size, show_progress=show_progress,
        shard_images=s.shard_images, engine=engine, stores=stores,
    )  # fmt: skip
    curves.settings = {
        "model": model.name,
        "logits_layer": logits_layer,
        "logit_ids": list(s.logits or s.classes),
        "steps": s.steps,
        "seed": s.seed,
        "size": int(natural.images.shape[-1]),
        "natural_images": "first images of each class in dataset order",
    }
    return finish(curves, out)
