"""Datasets: Fashion-MNIST (IDX files), image folders and in-memory images, all read as streams
of batches through one :class:`~fvlab.data.dataset.Dataset` protocol. Names load lazily."""

from __future__ import annotations

from fvlab.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Dataset": "fvlab.data.dataset",
        "InMemoryImages": "fvlab.data.dataset",
        "head": "fvlab.data.dataset",
        "select_per_class": "fvlab.data.dataset",
        "fetch_images": "fvlab.data.dataset",
        "FashionMNIST": "fvlab.data.fashion_mnist",
        "ImageFolder": "fvlab.data.folders",
        "open_dataset": "fvlab.data.natural",
    },
)
