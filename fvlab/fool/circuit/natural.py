"""The natural images of the detector and the circuit: which images train, which test.

:func:`natural_split` gives, for a model and its data, four disjoint sets of natural images in
[0, 1] at the model's input (channels, size):

* ``train`` — natural examples the detector trains on (and the circuit derives its constants
  from);
* ``targets`` — natural images drawn by the target-mode template units of the training
  trajectories (``reserve`` images, taken from the end of the training images so they are never
  natural training examples);
* ``test`` (+ ``test_labels``) — natural test images (detector evaluation, the circuit's natural
  behaviour check);
* the first ``heldout_targets`` test images double as held-out targets.

Sources (:func:`fvlab.data.natural.open_dataset`):

* Fashion-MNIST models (no ``data`` folder): the train split (images 0…59999) and the test split
  (0…9999); targets are the last ``reserve`` training images — exactly the committed fmnist-cnn
  detector's sets.
* an image folder ``data`` (ImageNet layout) with a separate ``test_data`` folder: all of
  ``data`` trains, all of ``test_data`` tests.
* ``data`` alone: image i of the folder (in its fixed order: sorted classes, sorted files) is a
  test image when i % 10 == 0 (:data:`TEST_EVERY`; 10 % of every class), a training image
  otherwise.

``limit`` caps the training and the test images each: from a folder (sorted by class) evenly
spaced over the set, so every class keeps its share; from Fashion-MNIST (whose files are in
shuffled order) the first ``limit``. The chosen images are held in memory (C·S·S·4 bytes each:
0.6 MB at 224 px) — except the training images when ``bank`` is given: those go to an image
bank on disk (:mod:`fvlab.data.image_bank`), read a batch at a time by the detector's training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from fvlab.data.image_bank import ImageBank, IndexedImages, create_bank
from fvlab.errors import FvlabError

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

#: with one folder, image i is a test image when i % TEST_EVERY == 0
TEST_EVERY = 10


@dataclass
class NaturalSplit:
    """Natural images (N, C, S, S) in [0, 1]: see the module docstring."""

    train: torch.Tensor | IndexedImages
    targets: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor
    source: dict

    def describe(self) -> dict:
        return {**self.source, "n_train": len(self.train), "n_targets": len(self.targets),
                "n_test": len(self.test)}  # fmt: skip


def evenly(indices: Sequence[int], limit: int | None) -> list[int]:
    """At most ``limit`` of ``indices``, evenly spaced (all of them when ``limit`` is None)."""
    indices = list(indices)
    if limit is None or limit >= len(indices):
        return indices
    return [indices[i * len(indices) // limit] for i in range(limit)]


def _selected(dataset, indices: Sequence[int], batch_size: int):
    """(images, labels) batches of ``dataset`` at the sorted ``indices``, read in one pass that
    stops after the last wanted image (a contiguous range is read as one slice)."""
    indices = sorted(indices)
    if not indices:
        raise FvlabError("data: no natural images selected; add images or raise --natural-limit")
    first, last = indices[0], indices[-1]
    if indices == list(range(first, last + 1)):
        dataset, wanted = dataset.slice(first, last + 1), None
    else:
        wanted = torch.as_tensor(indices)
    seen = 0
    for x, y in dataset.batches(batch_size):
        if wanted is None:
            yield x, y
        else:
            local = wanted[(wanted >= seen) & (wanted < seen + len(x))] - seen
            yield x[local], y[local]
        seen += len(x)
        if wanted is not None and seen > last:
            break


def take(dataset, indices: Sequence[int], batch_size: int = 256) -> tuple[torch.Tensor, ...]:
    """Images and labels of ``dataset`` at ``indices`` (sorted), in memory."""
    images, labels = zip(*_selected(dataset, indices, batch_size), strict=True)
    return torch.cat(images), torch.cat(labels)


def take_into_bank(
    dataset, indices: Sequence[int], path: Path, record: dict, batch_size: int = 256
) -> ImageBank:
    """The images of ``dataset`` at ``indices`` (sorted) written to the image bank ``path``,
    one batch in memory at a time; an existing bank written with the same ``record`` (the
    same images) is reused."""
    found = ImageBank.find(path, record)
    if found is not None:
        return found
    writer, offset = None, 0
    for x, _ in _selected(dataset, indices, batch_size):
        if writer is None:
            writer = create_bank(path, len(indices), tuple(x.shape[1:]), record)
        writer.write(offset, x)
        offset += len(x)
    return writer.close()


def natural_split(
    model: LoadedModel,
    data: Path | None,
    test_data: Path | None = None,
    *,
    reserve: int = 0,
    limit: int | None = None,
    bank: Path | None = None,
) -> NaturalSplit:
    """The natural images of ``model`` (see the module docstring); with ``bank`` (an ``.npy``
    path) the training images go to that :class:`~fvlab.data.image_bank.ImageBank` on disk
    instead of memory (reused when it already holds exactly these images)."""
    from fvlab.data.folders import ImageFolder
    from fvlab.data.natural import open_dataset

    train_ds = open_dataset(model, data, "train")
    if test_data is not None:
        test_ds = open_dataset(model, test_data, "test")
        if not isinstance(test_ds, ImageFolder):
            raise FvlabError(f"test_data: {test_data} is not an image folder root/<class>/<image>")
        train_idx, test_idx = list(range(len(train_ds))), list(range(len(test_ds)))
        how = f"all of {data} trains, all of {test_data} tests"
    elif isinstance(train_ds, ImageFolder):
        test_ds = train_ds
        every = range(len(train_ds))
        train_idx = [i for i in every if i % TEST_EVERY]
        test_idx = [i for i in every if i % TEST_EVERY == 0]
        how = f"{data}: image i tests when i % {TEST_EVERY} == 0, else trains"
    else:
        test_ds = open_dataset(model, data, "test")
        train_idx, test_idx = list(range(len(train_ds))), list(range(len(test_ds)))
        how = "the dataset's own train and test splits"
    if reserve >= len(train_idx):
        raise FvlabError(
            f"data: {len(train_idx)} natural training images cannot spare {reserve} as targets; "
            "add images or use fewer targets"
        )
    target_idx = train_idx[len(train_idx) - reserve :] if reserve else []
    train_idx = train_idx[: len(train_idx) - reserve]
    if isinstance(train_ds, ImageFolder):
        train_idx, test_idx = evenly(train_idx, limit), evenly(test_idx, limit)
    elif limit is not None:
        train_idx, test_idx = train_idx[:limit], test_idx[:limit]
    source = {"data": None if data is None else str(data), "split": how, "limit": limit}
    if bank is None:
        train = take(train_ds, train_idx)[0]
    else:
        chosen = hashlib.sha256(json.dumps(train_idx).encode()).hexdigest()
        record = {**source, "model_input": [model.spec.channels, model.spec.size],
                  "n": len(train_idx), "indices_sha256": chosen}  # fmt: skip
        train = take_into_bank(train_ds, train_idx, bank, record)
    targets = take(train_ds, target_idx)[0] if target_idx else torch.empty(0, *train.shape[-3:])
    test, test_labels = take(test_ds, test_idx)
    return NaturalSplit(train, targets, test, test_labels, source)
