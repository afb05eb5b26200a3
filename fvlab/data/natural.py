"""The natural images that go with a model: Fashion-MNIST or an image folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fvlab.errors import FvlabError

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel


def open_dataset(model: LoadedModel, data: Path | None, split: str = "test"):
    """The natural images for ``model``: Fashion-MNIST for 28-px grayscale models and, resized to
    the model's input (:class:`fvlab.data.resized.Resized`), for other models of Fashion-MNIST's
    classes (``fmnist-resnet18``); else a folder."""
    from fvlab.data.fashion_mnist import CLASS_NAMES, FashionMNIST
    from fvlab.data.folders import ImageFolder

    if data is not None and data.is_dir() and any(p.is_dir() for p in data.iterdir()):
        return ImageFolder(data, size=model.spec.size, channels=model.spec.channels)
    if model.spec.channels == 1 and model.spec.size == 28:
        return FashionMNIST(split, data)
    if model.class_names == CLASS_NAMES:
        from fvlab.data.resized import Resized

        return Resized(FashionMNIST(split, data), model.spec.size, model.spec.channels)
    raise FvlabError(
        f"data: model {model.name} needs an image folder of natural images: give data=ROOT "
        "(--data ROOT on the command line) with ROOT/<class>/<image>, e.g. the ImageNet "
        "validation set in class folders"
    )
