"""Image folders in the ImageNet-validation layout: ``root/<class name>/<image file>``.

Images are resized so the shorter side is ``size × resize_ratio`` (default 256/224, as for
ImageNet evaluation), centre-cropped to ``size × size``, converted to the model's channel count
and scaled to [0, 1]. Classes are the sorted sub-folder names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fvlab.data.dataset import slice_fields
from fvlab.errors import CorruptFileError, DatasetNotFoundError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def load_image(path: str | Path, size: int, channels: int, resize_ratio: float = 1.0) -> np.ndarray:
    """Read one image as a float32 array (channels, size, size) in [0, 1]."""
    if channels not in _MODES:
        raise ValueError(f"images can be read with 1, 3 or 4 channels, not {channels}")
    path = Path(path)
    try:
        with Image.open(path) as image:
            image = image.convert(_MODES[channels])
            short = round(size * resize_ratio)
            w, h = image.size
            scale = short / min(w, h)
            image = image.resize(
                (max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR
            )
            w, h = image.size
            left, top = (w - size) // 2, (h - size) // 2
            image = image.crop((left, top, left + size, top + size))
            array = np.asarray(image, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise CorruptFileError(f"cannot read image {path}: {exc}") from exc
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(array)


@dataclass(frozen=True)
class ImageFolder:
    """A folder of class sub-folders, read lazily in batches (a ``start:stop`` slice = a shard)."""

    root: str | Path
    size: int
    channels: int = 3
    resize_ratio: float = 256 / 224
    start: int = 0
    stop: int | None = None
    _files: tuple[tuple[Path, int], ...] = field(init=False, repr=False, compare=False)
    _classes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        root = Path(self.root)
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"image folder {root} does not exist; expected root/<class>/<image> "
                "(the ImageNet validation layout)"
            )
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if not classes:
            raise DatasetNotFoundError(
                f"{root} has no class sub-folders; expected root/<class>/<image>"
            )
        files = [
            (path, index)
            for index, name in enumerate(classes)
            for path in sorted((root / name).iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not files:
            raise DatasetNotFoundError(
                f"{root} holds no images with suffixes {sorted(IMAGE_SUFFIXES)}"
            )
        object.__setattr__(self, "_classes", tuple(classes))
        object.__setattr__(self, "_files", tuple(files[self.start : self.stop]))

    def slice(self, first: int, stop: int | None = None):
        """Images ``first``…``stop − 1`` of this dataset (see fvlab.data.dataset.Dataset)."""
        return slice_fields(self, first, stop)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._classes

    def __len__(self) -> int:
        return len(self._files)

    def batches(self, batch_size: int = 64) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images (B, C, size, size) in [0, 1], labels) in a fixed order."""
        for first in range(0, len(self._files), batch_size):
            chunk = self._files[first : first + batch_size]
            arrays = [load_image(p, self.size, self.channels, self.resize_ratio) for p, _ in chunk]
            labels = torch.tensor([label for _, label in chunk], dtype=torch.int64)
            yield torch.from_numpy(np.stack(arrays)), labels
