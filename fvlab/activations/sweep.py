"""Activation sweep: stream a dataset through a model and summarise many layers at once.

One forward pass per batch captures every requested layer; each layer's output is reduced to
one vector per image inside the capture hook (``capture(..., map_output=...)``), so the large
output is freed as soon as the next layer has used it, as in a plain forward pass. The reduced
vectors of all layers are concatenated column-wise and fed to one set of bounded accumulators
(:mod:`fvlab.activations.accumulators`), split back per layer at the end. Memory is therefore
O(batch × activations + units × (k + m)), independent of the number of images. Reductions of
a (B, C, H, W) output:

* ``flatten``       (B, C·H·W) — every position of every channel is a unit
* ``spatial_mean``  (B, C), (1/HW) Σ_{h,w} a[b, c, h, w] — the quantity FV objectives maximise
* ``spatial_max``   (B, C), max_{h,w} a[b, c, h, w] — "does the channel fire anywhere?"
* ``spatial_min``   (B, C), min_{h,w} a[b, c, h, w]

A (B, F) output (a linear layer) is its own reduction. Shards: sweep ``dataset`` slices
(``FashionMNIST(start=a, stop=b)``) independently — image indices are global (``dataset.start``
+ position) — and combine the results with :func:`merge_sweeps`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch

from fvlab.activations.accumulators import Moments, Sample, TopK
from fvlab.errors import FvlabError
from fvlab.models.hooks import capture, resolve_layers
from fvlab.progress import progress_bar

if TYPE_CHECKING:
    from fvlab.data.dataset import Dataset
    from fvlab.models.zoo import LoadedModel

Reduction = Literal["flatten", "spatial_mean", "spatial_max", "spatial_min"]
REDUCTIONS: tuple[str, ...] = ("flatten", "spatial_mean", "spatial_max", "spatial_min")
#: consumer(indices (B,), labels (B,), {layer: reduced (B, U)}) — sees every batch, keeps nothing
Consumer = Callable[[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]], None]


def reduce_activation(x: torch.Tensor, how: str) -> torch.Tensor:
    """Reduce a layer output (B, C, ...) to (B, U); see the module docstring."""
    if how not in REDUCTIONS:
        raise FvlabError(f"unknown reduction {how!r}; valid: {', '.join(REDUCTIONS)}")
    if x.ndim <= 2:
        return x.reshape(x.shape[0], -1)
    if how == "flatten":
        return x.flatten(1)
    if how == "spatial_mean":
        return x.flatten(2).mean(2)
    if how == "spatial_min":
        return x.flatten(2).amin(2)
    return x.flatten(2).amax(2)


@dataclass
class LayerStats:
    """Accumulated statistics of one (layer, reduction) pair."""

    layer: str
    reduction: str
    moments: Moments | None = None
    top: TopK | None = None
    sample: Sample | None = None

    def update(self, values: torch.Tensor, indices: torch.Tensor) -> None:
        for acc in self._accumulators():
            if acc is not None:
                acc.update(values, indices)

    def columns(self, layer: str, reduction: str, cols: slice) -> LayerStats:
        """Units ``cols`` of these statistics, as the statistics of ``(layer, reduction)``."""
        return LayerStats(
            layer,
            reduction,
            *(None if acc is None else acc.columns(cols) for acc in self._accumulators()),
        )

    def _accumulators(self) -> tuple:
        return (self.moments, self.top, self.sample)

    def merge(self, other: LayerStats) -> LayerStats:
        if (other.layer, other.reduction) != (self.layer, self.reduction):
            raise ValueError(f"cannot merge {other.layer}/{other.reduction} into {self.layer}")
        for name in ("moments", "top", "sample"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if (mine is None) != (theirs is None):
                raise ValueError(f"cannot merge sweeps with and without {name}")
            if mine is not None:
                mine.merge(theirs)
        return self


@dataclass
class SweepResult:
    """Statistics per ``(layer, reduction)`` key, and the dataset ranges that were swept."""

    stats: dict[tuple[str, str], LayerStats]
    ranges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return sum(stop - start for start, stop in self.ranges)

    def __getitem__(self, key: str | tuple[str, str]) -> LayerStats:
        if isinstance(key, str):
            matches = [v for (layer, _), v in self.stats.items() if layer == key]
            if len(matches) != 1:
                raise KeyError(f"{key!r} has {len(matches)} reductions; index with (layer, how)")
            return matches[0]
        return self.stats[key]


def merge_sweeps(results: Iterable[SweepResult]) -> SweepResult:
    """Merge shard results (disjoint dataset ranges) into one."""
    results = list(results)
    if not results:
        raise ValueError("nothing to merge")
    ranges = sorted(r for res in results for r in res.ranges)
    for (a0, a1), (b0, _) in zip(ranges, ranges[1:], strict=False):
        if b0 < a1:
            raise ValueError(f"shards overlap: [{a0}, {a1}) and [{b0}, …)")
    keys = list(results[0].stats)
    if any(list(res.stats) != keys for res in results):
        raise ValueError("shards were swept with different layers or reductions")
    merged = {k: LayerStats(k[0], k[1]) for k in keys}
    for key, target in merged.items():
        first = results[0].stats[key]
        target.moments = Moments() if first.moments is not None else None
        target.top = TopK(first.top.k) if first.top is not None else None
        target.sample = Sample(first.sample.m, first.sample.seed) if first.sample else None
        for res in results:
            target.merge(res.stats[key])
    return SweepResult(merged, ranges)


def _plan(
    layers: Sequence[str] | Mapping[str, str | Sequence[str]], default: str | Sequence[str]
) -> list[tuple[str, str]]:
    def as_list(how: str | Sequence[str]) -> list[str]:
        return [how] if isinstance(how, str) else list(how)

    if isinstance(layers, Mapping):
        plan = [(layer, how) for layer, hows in layers.items() for how in as_list(hows)]
    else:
        plan = [(layer, how) for layer in layers for how in as_list(default)]
    for _, how in plan:
        if how not in REDUCTIONS:
            raise FvlabError(f"unknown reduction {how!r}; valid: {', '.join(REDUCTIONS)}")
    return plan


def sweep(
    model: LoadedModel,
    dataset: Dataset,
    layers: Sequence[str] | Mapping[str, str | Sequence[str]],
    *,
    reduce: str | Sequence[str] = "spatial_mean",
    moments: bool = True,
    top_k: int = 0,
    sample: int = 0,
    seed: int = 0,
    batch_size: int = 256,
    consumer: Consumer | None = None,
    show_progress: bool = True,
) -> SweepResult:
    """Stream ``dataset`` (a :class:`~fvlab.data.dataset.Dataset`: image indices are global,
    from ``dataset.start``) through ``model`` and accumulate per-unit statistics for every
    (layer, reduction).

    ``layers``: names (each reduced with ``reduce``, one or several reductions), or a mapping
    layer → reduction(s). ``moments``: mean/var/min/max/active count; ``top_k``: exact top-k
    values and image indices per unit; ``sample``: a uniform sample of that many images (for
    quantiles; ``seed`` picks it). ``consumer`` additionally receives every batch's reduced
    activations (keyed by layer; with several reductions, by ``"layer/reduction"``).
    """
    if batch_size < 1:
        raise FvlabError(f"batch_size must be >= 1, got {batch_size}")
    plan = _plan(layers, reduce)
    names = list(dict.fromkeys(layer for layer, _ in plan))
    resolve_layers(model.module, names)
    several = len(plan) != len(names)
    start = dataset.start
    position = start
    device = model.device
    total = len(dataset)
    # every (layer, reduction) is a block of columns of one fused accumulator: one device→host
    # copy and one accumulator update per batch instead of one per layer
    fused = LayerStats(
        "*",
        "*",
        Moments() if moments else None,
        TopK(top_k) if top_k > 0 else None,
        Sample(sample, seed) if sample > 0 else None,
    )
    widths: list[int] = []
    keys = [f"{layer}/{how}" if several else layer for layer, how in plan]
    reductions: dict[str, list[str]] = {}
    for layer, how in plan:
        reductions.setdefault(layer, []).append(how)

    def reduce_in_hook(layer: str, output: torch.Tensor) -> dict[str, torch.Tensor]:
        # reduced while the forward pass runs, so no large layer output outlives its use
        return {how: reduce_activation(output, how) for how in reductions[layer]}

    with (
        torch.no_grad(),
        capture(model.module, names, detach=True, map_output=reduce_in_hook) as cap,
        progress_bar("activation sweep", total, show_progress) as advance,
    ):
        for images, labels in dataset.batches(batch_size):
            model(images.to(device, non_blocking=True))
            indices = torch.arange(position, position + images.shape[0])
            position += images.shape[0]
            parts = [cap[layer][how] for layer, how in plan]
            widths = [part.shape[1] for part in parts]
            values = torch.cat(parts, 1).cpu()
            fused.update(values, indices)
            if consumer is not None:
                consumer(indices, labels, dict(zip(keys, values.split(widths, 1), strict=True)))
            advance(images.shape[0])
    stats = {}
    offset = 0
    for (layer, how), width in zip(plan, widths or [0] * len(plan), strict=True):
        stats[(layer, how)] = fused.columns(layer, how, slice(offset, offset + width))
        offset += width
    return SweepResult(stats, [(start, position)])
