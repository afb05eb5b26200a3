"""Fashion-MNIST from the four IDX ``.gz`` files of Zalando's release.

Where the files are looked for, in order: the ``data`` argument (CLI ``--data``), the
``FVLAB_DATA`` environment variable, then the Debian package location
``/usr/share/datasets/fashion-mnist``. Images are 28×28 uint8, labels 0–9.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fvlab.data.dataset import slice_fields
from fvlab.data.idx import iter_idx, read_idx, read_idx_header
from fvlab.errors import CorruptFileError, DatasetNotFoundError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
INSTALL_HINT = (
    "Install the Debian package (sudo apt-get install dataset-fashion-mnist), or put the four "
    ".gz files of Zalando's release in a folder and pass it as data=DIR (--data DIR) or set "
    "FVLAB_DATA=DIR."
)


def find_data_dir(data: str | Path | None = None) -> Path:
    """Return the folder holding the four Fashion-MNIST files, or raise with install help."""
    candidates: list[tuple[str, Path]] = []
    if data is not None:
        candidates.append(("--data", Path(data)))
    elif os.environ.get("FVLAB_DATA"):
        candidates.append(("FVLAB_DATA", Path(os.environ["FVLAB_DATA"])))
    else:
        candidates.append(("the Debian location", DEBIAN_DIR))
    source, folder = candidates[0]
    needed = [name for pair in FILES.values() for name in pair]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"Fashion-MNIST not found in {folder} (from {source}): missing {', '.join(missing)}. "
            + INSTALL_HINT
        )
    return folder


@dataclass(frozen=True)
class FashionMNIST:
    """One split of Fashion-MNIST, read lazily as a stream of batches.

    ``start``/``stop`` select a slice of records (a shard); batches are float images in [0, 1]
    of shape (B, 1, 28, 28) and int64 labels.
    """

    split: str = "test"
    data: str | Path | None = None
    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        if self.split not in FILES:
            raise ValueError(f"unknown split {self.split!r}; valid: {sorted(FILES)}")

    @property
    def paths(self) -> tuple[Path, Path]:
        folder = find_data_dir(self.data)
        images, labels = FILES[self.split]
        return folder / images, folder / labels

    def __len__(self) -> int:
        images_path, labels_path = self.paths
        n_images = read_idx_header(images_path, expected_ndim=3).shape[0]
        n_labels = read_idx_header(labels_path, expected_ndim=1).shape[0]
        if n_images != n_labels:
            raise CorruptFileError(
                f"{images_path} holds {n_images} images but {labels_path} holds {n_labels} "
                "labels; the files do not belong together"
            )
        stop = n_images if self.stop is None else min(self.stop, n_images)
        return max(0, stop - self.start)

    def slice(self, first: int, stop: int | None = None):
        """Images ``first``…``stop − 1`` of this dataset (see fvlab.data.dataset.Dataset)."""
        return slice_fields(self, first, stop)

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    def batches(self, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images, labels) batches in file order; memory is bounded by ``batch_size``."""
        images_path, labels_path = self.paths
        header = read_idx_header(images_path, expected_ndim=3)
        if header.record_shape != (28, 28):
            raise CorruptFileError(
                f"{images_path} holds images of shape {header.record_shape}, expected (28, 28)"
            )
        len(self)  # validates that images and labels match
        image_chunks = iter_idx(images_path, batch_size, self.start, self.stop, expected_ndim=3)
        label_chunks = iter_idx(labels_path, batch_size, self.start, self.stop, expected_ndim=1)
        for images, labels in zip(image_chunks, label_chunks, strict=True):
            if labels.size and labels.max() > 9:
                raise CorruptFileError(f"{labels_path} has label {labels.max()} outside 0–9")
            x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
            yield x, torch.from_numpy(labels.astype(np.int64))

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Load the whole selection into memory (explicitly asked for; ~47 MB for train)."""
        images_path, labels_path = self.paths
        images = read_idx(images_path, expected_ndim=3)[self.start : self.stop]
        labels = read_idx(labels_path, expected_ndim=1)[self.start : self.stop]
        if images.shape[0] != labels.shape[0]:
            raise CorruptFileError(
                f"{images_path} and {labels_path} hold different numbers of records"
            )
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        return x, torch.from_numpy(labels.astype(np.int64))
