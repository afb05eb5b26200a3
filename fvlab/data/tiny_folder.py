"""A tiny image folder in the ImageNet layout, written from Fashion-MNIST (for dry runs).

``write_fmnist_folder(out, size=224, channels=3, per_class=4)`` writes the first ``per_class``
images of each of the 10 Fashion-MNIST classes of ``split`` as PNGs
``out/<k>_<class name>/<index>.png`` (sorted folder names = class order 0…9), each upscaled
bilinearly from 28 px to ``size`` px and repeated over ``channels`` (1 or 3). Read back with
:class:`fvlab.data.folders.ImageFolder` (``--data out`` on the command line), every model that
reads an image folder can be dry-run on it without ImageNet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fvlab.errors import FvlabError


def write_fmnist_folder(
    out: str | Path,
    size: int = 224,
    channels: int = 3,
    per_class: int = 4,
    split: str = "test",
    data: str | Path | None = None,
) -> Path:
    """Write the folder (see the module docstring) and return ``out``; ``data`` is the
    Fashion-MNIST folder (default: $FVLAB_DATA, then the system copy)."""
    from fvlab.data.dataset import select_per_class
    from fvlab.data.fashion_mnist import CLASS_NAMES, FashionMNIST
    from fvlab.data.resized import resize_grey

    if channels not in (1, 3):
        raise FvlabError(f"channels: write 1 (grey) or 3 (RGB) channels, not {channels}")
    if size < 1 or per_class < 1:
        raise FvlabError(f"size and per_class must be >= 1, got {size} and {per_class}")
    out = Path(out)
    classes = list(range(len(CLASS_NAMES)))
    chosen = select_per_class(FashionMNIST(split, data), classes, per_class)
    images = resize_grey(chosen.images, size, channels)
    mode = "L" if channels == 1 else "RGB"
    counts: dict[int, int] = {}
    for image, label in zip(images, chosen.labels.tolist(), strict=True):
        name = CLASS_NAMES[label].replace("/", "-").replace(" ", "_")
        folder = out / f"{label}_{name}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image.clamp(0, 1) * 255).round().byte().numpy()
        array = pixels[0] if channels == 1 else np.ascontiguousarray(pixels.transpose(1, 2, 0))
        index = counts.get(label, 0)
        counts[label] = index + 1
        Image.fromarray(array, mode=mode).save(folder / f"{index:04d}.png")
    return out
