"""Top-k natural exemplars per unit from ONE streaming, batched pass over a dataset.

Activation of unit ``u`` of layer ``L`` on image ``x`` (the convention of P2):

    a_u(x) = (1 / HW) Σ_{h,w} L(x)[u, h, w]

the spatial mean of the channel of the layer's raw output — pre-ReLU when ``L`` is a conv or
BatchNorm module (for ``fmnist-cnn`` use the ``bn*`` layers). A linear layer's output is used as
is. Every unit of every requested layer is tracked at once: per batch, one ``torch.topk`` over
``[current top-k ∪ batch]`` of shape (units, k + B). Running sums give each unit's mean and standard
deviation over the stream. States of two dataset shards merge exactly (:meth:`RunningTopK.merge`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from fvlab.errors import FvlabError
from fvlab.models.hooks import Capture, resolve_layers
from fvlab.progress import progress_bar


def layer_means(loaded, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Spatial-mean activations ``{layer: (B, C)}`` of images in [0, 1] (one forward, no grad;
    the forward stops once every requested layer has run)."""
    with torch.no_grad(), Capture(loaded.module, layers, detach=True, stop_early=True) as cap:
        cap.run(loaded, images.to(loaded.device))
        out = {}
        for name in layers:
            act = cap[name]
            out[name] = act.flatten(2).mean(-1) if act.ndim > 2 else act.flatten(1)
    return out


@dataclass
class RunningTopK:
    """The ``k`` largest activations per unit seen so far, with the dataset index of each image,
    plus running sums for the mean and standard deviation per unit.

    ``values``/``indices``: (U, k') sorted descending, k' = min(k, images seen).
    """

    k: int
    values: torch.Tensor
    indices: torch.Tensor
    count: int
    total: torch.Tensor
    total_sq: torch.Tensor

    @classmethod
    def empty(cls, n_units: int, k: int) -> RunningTopK:
        if k < 1:
            raise FvlabError(f"top-k must be >= 1, got {k}")
        return cls(
            k,
            torch.empty(n_units, 0),
            torch.empty(n_units, 0, dtype=torch.long),
            0,
            torch.zeros(n_units, dtype=torch.float64),
            torch.zeros(n_units, dtype=torch.float64),
        )

    def update(self, activations: torch.Tensor, indices: torch.Tensor) -> None:
        """Add a batch: ``activations`` (B, U) for images with dataset ``indices`` (B,)."""
        acts = activations.detach().float().cpu()
        idx = torch.as_tensor(indices, dtype=torch.long).cpu()
        values = torch.cat([self.values, acts.T], dim=1)
        index = torch.cat([self.indices, idx.expand(acts.shape[1], -1)], dim=1)
        top, where = torch.topk(values, min(self.k, values.shape[1]), dim=1)
        self.values, self.indices = top, index.gather(1, where)
        self.count += acts.shape[0]
        acts64 = acts.double()
        self.total += acts64.sum(0)
        self.total_sq += (acts64 * acts64).sum(0)

    def merge(self, other: RunningTopK) -> RunningTopK:
        """The state of the union of two disjoint streams (e.g. two dataset shards)."""
        merged = RunningTopK(
            self.k,
            self.values,
            self.indices,
            self.count,
            self.total.clone(),
            self.total_sq.clone(),
        )
        values = torch.cat([self.values, other.values], dim=1)
        index = torch.cat([self.indices, other.indices], dim=1)
        top, where = torch.topk(values, min(self.k, values.shape[1]), dim=1)
        merged.values, merged.indices = top, index.gather(1, where)
        merged.count += other.count
        merged.total += other.total
        merged.total_sq += other.total_sq
        return merged

    @property
    def mean(self) -> torch.Tensor:
        return self.total / max(self.count, 1)

    @property
    def std(self) -> torch.Tensor:
        var = self.total_sq / max(self.count, 1) - self.mean**2
        return var.clamp_min(0).sqrt()


def top_exemplars(
    loaded,
    dataset,
    layers: Sequence[str],
    k: int = 200,
    *,
    batch_size: int = 500,
    max_images: int | None = None,
    first_index: int = 0,
    show_progress: bool = True,
) -> dict[str, RunningTopK]:
    """Stream ``dataset`` once and keep the top ``k`` images of every unit of every layer.

    ``dataset`` has ``.batches(batch_size)`` yielding (images in [0, 1], labels) in a fixed order;
    dataset index = ``first_index`` + position in that order (give a shard its global offset
    so that shard states merge). ``max_images`` stops the stream early.
    """
    layers = list(dict.fromkeys(layers))
    resolve_layers(loaded.module, layers)
    total = len(dataset) if max_images is None else min(len(dataset), max_images)
    if total < k:
        raise FvlabError(
            f"top-k={k} needs at least {k} images, but the dataset stream has {total}; "
            "lower --top-k or use more images (--max-images / --split train)"
        )
    states: dict[str, RunningTopK] = {}
    seen = 0
    with progress_bar("top-k exemplars", total, show_progress) as advance:
        for images, _ in dataset.batches(batch_size):
            if seen >= total:
                break
            images = images[: total - seen]
            means = layer_means(loaded, images, layers)
            index = torch.arange(seen, seen + images.shape[0]) + first_index
            for name in layers:
                if name not in states:
                    states[name] = RunningTopK.empty(means[name].shape[1], k)
                states[name].update(means[name], index)
            seen += images.shape[0]
            advance(images.shape[0])
    return states


def gather_images(
    dataset, indices: Iterable[int], batch_size: int = 1000
) -> dict[int, torch.Tensor]:
    """Read the images at the given dataset indices (a data-only pass; no model runs)."""
    wanted = sorted({int(i) for i in indices})
    found: dict[int, torch.Tensor] = {}
    if not wanted:
        return found
    seen, pointer = 0, 0
    for images, _ in dataset.batches(batch_size):
        stop = seen + images.shape[0]
        while pointer < len(wanted) and wanted[pointer] < stop:
            found[wanted[pointer]] = images[wanted[pointer] - seen].clone()
            pointer += 1
        seen = stop
        if pointer == len(wanted):
            break
    if pointer < len(wanted):
        raise FvlabError(f"dataset has {seen} images; index {wanted[pointer]} is out of range")
    return found
