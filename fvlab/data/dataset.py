"""The dataset protocol every pillar streams natural images through, and data-only helpers.

A dataset is a fixed, ordered collection of labelled images (float (B, C, H, W) in [0, 1],
int64 labels). It may be a *slice* of a larger collection: ``start`` is the global index of its
first image, so activation sweeps, exemplar searches and image fetches report global indices
and the results of two slices (shards) merge. Every dataset of fvlab — Fashion-MNIST, image
folders, images held in memory — implements :class:`Dataset`; nothing probes attributes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from fvlab.errors import FvlabError


@runtime_checkable
class Dataset(Protocol):
    """Length, global start index, class names, batches in a fixed order, and slicing."""

    start: int

    def __len__(self) -> int: ...

    @property
    def class_names(self) -> tuple[str, ...] | None: ...

    def batches(self, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def slice(self, first: int, stop: int | None = None) -> Dataset:
        """Images ``first`` up to (not including) ``stop`` of this dataset (relative indices);
        the result's ``start`` is the global index of its first image."""
        ...


def slice_bounds(dataset: Dataset, first: int, stop: int | None) -> tuple[int, int]:
    """Global (start, stop) of ``dataset[first:stop]`` (relative indices, clipped to the end)."""
    n = len(dataset)
    if first < 0 or (stop is not None and stop < first):
        raise FvlabError(f"invalid slice {first}:{stop} of a dataset of {n} images")
    stop = n if stop is None else min(stop, n)
    first = min(first, n)
    return dataset.start + first, dataset.start + stop


def slice_fields(dataset, first: int, stop: int | None):
    """``dataclasses.replace`` of a frozen dataset dataclass with new global start/stop."""
    start, end = slice_bounds(dataset, first, stop)
    return dataclasses.replace(dataset, start=start, stop=end)


def head(dataset: Dataset, count: int | None, what: str = "count") -> Dataset:
    """The first ``count`` images of ``dataset`` (all of them when ``count`` is None)."""
    if count is None:
        return dataset
    if count < 1:
        raise FvlabError(f"{what} must be >= 1, got {count}")
    return dataset.slice(0, count)


@dataclasses.dataclass(frozen=True)
class InMemoryImages:
    """Images (N, C, H, W) in [0, 1] and labels (N,) held in memory, as a :class:`Dataset`.

    ``start`` is the global index of ``images[0]`` (0 unless this is a slice)."""

    images: torch.Tensor
    labels: torch.Tensor
    start: int = 0
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"expected images (N, C, H, W) and labels (N,), got {tuple(self.images.shape)}, "
                f"{tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self.names

    def batches(self, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for first in range(0, len(self), batch_size):
            yield (
                self.images[first : first + batch_size],
                self.labels[first : first + batch_size],
            )

    def slice(self, first: int, stop: int | None = None) -> InMemoryImages:
        start, end = slice_bounds(self, first, stop)
        lo, hi = start - self.start, end - self.start
        return InMemoryImages(self.images[lo:hi], self.labels[lo:hi], start, self.names)


def select_per_class(
    dataset: Dataset, classes: Sequence[int], per_class: int, batch_size: int = 256
) -> InMemoryImages:
    """The first ``per_class`` images (in dataset order) of each class in ``classes``, grouped by
    class in the order of ``classes``; stops reading once every class is complete."""
    if per_class < 1:
        raise FvlabError(f"images per class must be >= 1, got {per_class}")
    wanted = [int(c) for c in classes]
    if len(set(wanted)) != len(wanted):
        raise FvlabError(f"classes repeat in {wanted}; give each class once")
    names = dataset.class_names
    if names is not None:
        bad = [c for c in wanted if not 0 <= c < len(names)]
        if bad:
            raise FvlabError(
                f"classes {bad} do not exist; the dataset has {len(names)} classes "
                f"(0–{len(names) - 1})"
            )
    found: dict[int, list[torch.Tensor]] = {c: [] for c in wanted}
    counts = dict.fromkeys(wanted, 0)
    for images, labels in dataset.batches(batch_size):
        for c in wanted:
            if counts[c] < per_class:
                take = images[labels == c][: per_class - counts[c]]
                found[c].append(take)
                counts[c] += take.shape[0]
        if all(n >= per_class for n in counts.values()):
            break
    short = {c: n for c, n in counts.items() if n < per_class}
    if short:
        raise FvlabError(
            f"not enough natural images: class(es) {short} have fewer than {per_class}; "
            "lower the images per class or add images"
        )
    images = torch.cat([torch.cat(found[c]) for c in wanted])
    labels = torch.tensor([c for c in wanted for _ in range(per_class)], dtype=torch.int64)
    return InMemoryImages(images, labels, names=names)


def fetch_images(
    dataset: Dataset, indices: Sequence[int] | np.ndarray, batch_size: int = 256
) -> torch.Tensor:
    """Images at global dataset ``indices`` (any order, repeats allowed), in that order.

    One streaming pass over ``dataset`` that stops at the last wanted image; only the requested
    images are kept (cloned, so they do not pin whole batches)."""
    wanted = np.asarray(indices, dtype=np.int64).ravel()
    if wanted.size == 0:
        raise FvlabError("no image indices given")
    unique = np.unique(wanted)
    found: dict[int, torch.Tensor] = {}
    position = dataset.start
    for images, _ in dataset.batches(batch_size):
        stop = position + images.shape[0]
        lo, hi = np.searchsorted(unique, [position, stop])
        for index in unique[lo:hi]:
            found[int(index)] = images[int(index) - position].clone()
        position = stop
        if len(found) == unique.size:
            break
    missing = [int(i) for i in unique if int(i) not in found]
    if missing:
        raise FvlabError(
            f"image indices {missing[:5]} are outside the dataset range "
            f"[{dataset.start}, {position})"
        )
    return torch.stack([found[int(i)] for i in wanted])
