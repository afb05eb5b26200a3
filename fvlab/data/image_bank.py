"""Image sets read by index: in memory, or on disk so that a training set larger than memory
costs only the rows a batch asks for.

Both kinds answer ``len(images)``, ``images.shape`` (C, H, W of one image) and
``images.take(indices)`` → a float32 tensor (len(indices), C, H, W), rows in the order asked
(repeats allowed). A training loop that draws its batches by index therefore gives the same
result from either kind, bit for bit.

:class:`ImageBank` keeps the images in one NumPy ``.npy`` file (float32, C·H·W·4 bytes per
image: 3 KB at 28 px, 0.6 MB at 3×224 px) that is memory-mapped read-only, so the operating
system pages in only the rows that are read. :func:`create_bank` makes an empty bank of known
size whose rows are written at given offsets, in any order (shards that finish out of order);
a bank is marked complete only when every row has been written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from fvlab.errors import FvlabError


class IndexedImages(Protocol):
    """Images read by index (module docstring)."""

    def __len__(self) -> int: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    def take(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor: ...


class TensorImages:
    """An in-memory tensor (N, C, H, W) as :class:`IndexedImages`."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def take(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        return self.images[torch.as_tensor(indices, dtype=torch.long)]


def indexed(images: torch.Tensor | IndexedImages) -> IndexedImages:
    """``images`` as :class:`IndexedImages` (a tensor is wrapped, anything else kept)."""
    return TensorImages(images) if isinstance(images, torch.Tensor) else images


def _marker(path: Path) -> Path:
    return path.with_suffix(".json")


class ImageBank:
    """Images (N, C, H, W) float32 in the ``.npy`` file ``path``, memory-mapped (module
    docstring). ``record`` is what the bank's writer stored next to it (``path`` with the suffix
    ``.json``), e.g. what the images are, so a resumed job can tell whether to reuse it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        marker = _marker(self.path)
        if not marker.is_file() or not self.path.is_file():
            raise FvlabError(f"{self.path}: not a complete image bank (no {marker.name})")
        meta = json.loads(marker.read_text())
        if not meta.get("complete"):
            raise FvlabError(f"{self.path}: the image bank was never completed; delete it")
        self.record = meta.get("record", {})
        self.array = np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape[1:])

    def take(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Rows ``indices`` in that order; the file is read in ascending order, each row once."""
        wanted = torch.as_tensor(indices, dtype=torch.long).numpy()
        if wanted.size and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise IndexError(f"image bank {self.path.name}: indices outside 0…{len(self) - 1}")
        rows, inverse = np.unique(wanted, return_inverse=True)
        return torch.from_numpy(np.ascontiguousarray(self.array[rows]))[torch.from_numpy(inverse)]

    def batches(self, batch_size: int = 256) -> Iterator[torch.Tensor]:
        """Every image in order, ``batch_size`` at a time."""
        for first in range(0, len(self), batch_size):
            yield torch.from_numpy(np.array(self.array[first : first + batch_size]))

    @staticmethod
    def find(path: str | Path, record: dict) -> ImageBank | None:
        """The complete bank at ``path`` if it was written with exactly ``record``, else None."""
        try:
            bank = ImageBank(path)
        except FvlabError:
            return None
        return bank if bank.record == json.loads(json.dumps(record)) else None


class BankWriter:
    """Rows of a new bank, written at offsets (:func:`create_bank`); :meth:`close` checks every
    row was written and returns the finished :class:`ImageBank`."""

    def __init__(self, path: Path, n: int, shape: Sequence[int], record: dict) -> None:
        if n < 1:
            raise FvlabError(f"{path.name}: an image bank needs at least one image, got {n}")
        self.path, self.record = path, record
        _marker(path).unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, *shape))
        self.written = np.zeros(n, dtype=bool)

    def write(self, offset: int, images: torch.Tensor) -> None:
        """Rows ``offset`` … ``offset + len(images) - 1``."""
        stop = offset + len(images)
        if offset < 0 or stop > len(self.written):
            raise IndexError(f"{self.path.name}: rows {offset}…{stop - 1} outside the bank")
        if tuple(images.shape[1:]) != tuple(self.array.shape[1:]):
            raise FvlabError(f"{self.path.name}: images of shape {tuple(images.shape[1:])}, "
                             f"the bank holds {tuple(self.array.shape[1:])}")  # fmt: skip
        self.array[offset:stop] = images.detach().to("cpu", torch.float32).numpy()
        self.written[offset:stop] = True

    def close(self) -> ImageBank:
        missing = int((~self.written).sum())
        if missing:
            raise FvlabError(f"{self.path.name}: {missing} rows of the image bank never written")
        self.array.flush()
        del self.array
        _marker(self.path).write_text(json.dumps({"complete": True, "record": self.record}))
        return ImageBank(self.path)


def create_bank(path: str | Path, n: int, shape: Sequence[int], record: dict) -> BankWriter:
    """An empty bank of ``n`` images of ``shape`` (C, H, W) at ``path``; ``record`` is stored
    with it (:meth:`ImageBank.find`)."""
    return BankWriter(Path(path), n, shape, record)
