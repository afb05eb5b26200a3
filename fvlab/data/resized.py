"""A grey dataset seen at another size and channel count (Fashion-MNIST for ``fmnist-resnet18``).

:func:`resize_grey` is the one rule: (B, 1, h, w) images in [0, 1] → (B, C, s, s) by bilinear
interpolation (``align_corners=False``, no antialiasing: it only enlarges here) and the grey
channel repeated C times. Bilinear weights are convex, so the values stay in [0, 1].
:class:`Resized` applies it to every batch of an inner dataset; its ``start``, length, class
names and slices are the inner dataset's, so indices into it are indices into the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fvlab.data.dataset import Dataset


def resize_grey(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """(B, 1, h, w) grey images in [0, 1] → (B, ``channels``, ``size``, ``size``)."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected grey images (B, 1, H, W), got {tuple(images.shape)}")
    if tuple(images.shape[-2:]) != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images.expand(-1, channels, -1, -1).contiguous()


@dataclass(frozen=True)
class Resized:
    """``inner``'s images through :func:`resize_grey` (``size`` px, ``channels`` channels)."""

    inner: Dataset
    size: int
    channels: int = 3

    @property
    def start(self) -> int:
        return self.inner.start

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self.inner.class_names

    def batches(self, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self.inner.batches(batch_size):
            yield resize_grey(images, self.size, self.channels), labels

    def slice(self, first: int, stop: int | None = None) -> Resized:
        return Resized(self.inner.slice(first, stop), self.size, self.channels)
