"""Image banks (fvlab.data.image_bank): rows read by index equal the tensor's rows, for any
indices; incomplete or mismatched banks are never read as finished; and the detector trained
from banks on disk is the detector trained from tensors, reading one batch per step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fvlab.data.image_bank import ImageBank, TensorImages, create_bank
from fvlab.errors import FvlabError
from fvlab.fool.circuit.detector import train_detector
from fvlab.fool.circuit.settings import DetectorTraining

IMAGES = torch.rand(23, 2, 5, 5, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    writer = create_bank(tmp_path_factory.mktemp("bank") / "b.npy", 23, (2, 5, 5), {"k": 1})
    for first in (20, 0, 10):  # out of order, as shards finish
        writer.write(first, IMAGES[first : first + 10])
    return writer.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 22), max_size=40))
def test_take_returns_the_rows_asked_for_in_order(bank, indices):
    expected = IMAGES[torch.as_tensor(indices, dtype=torch.long)]
    assert torch.equal(bank.take(indices), expected)
    assert torch.equal(TensorImages(IMAGES).take(indices), expected)


def test_bank_reads_back_in_batches_and_by_record(bank):
    assert len(bank) == 23 and bank.shape == (2, 5, 5)
    assert torch.equal(torch.cat(list(bank.batches(7))), IMAGES)
    assert ImageBank.find(bank.path, {"k": 1}) is not None
    assert ImageBank.find(bank.path, {"k": 2}) is None  # other images: not reused
    with pytest.raises(IndexError, match="outside 0…22"):
        bank.take([23])


def test_an_unfinished_bank_is_never_read(tmp_path):
    writer = create_bank(tmp_path / "b.npy", 4, (1, 2, 2), {})
    writer.write(0, torch.zeros(3, 1, 2, 2))
    with pytest.raises(FvlabError, match="1 rows of the image bank never written"):
        writer.close()
    with pytest.raises(FvlabError, match="not a complete image bank"):
        ImageBank(tmp_path / "b.npy")
    assert ImageBank.find(tmp_path / "b.npy", {}) is None
    with pytest.raises(FvlabError, match=r"images of shape \(1, 3, 3\), the bank holds"):
        writer.write(3, torch.zeros(1, 1, 3, 3))


class CountingReads:
    """An image set that records how many rows each read asks for."""

    def __init__(self, inner) -> None:
        self.inner, self.reads = inner, []

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def shape(self):
        return self.inner.shape

    def take(self, indices):
        self.reads.append(len(indices))
        return self.inner.take(indices)


def test_detector_from_banks_is_the_detector_from_tensors_one_batch_per_step(tmp_path):
    generator = torch.Generator().manual_seed(1)
    natural = torch.rand(300, 1, 28, 28, generator=generator)
    fvs = torch.rand(200, 1, 28, 28, generator=generator) ** 3
    banks = []
    for name, images in (("natural", natural), ("fvs", fvs)):
        writer = create_bank(tmp_path / f"{name}.npy", len(images), (1, 28, 28), {})
        writer.write(0, images)
        banks.append(CountingReads(writer.close()))
    config = DetectorTraining(steps=6, batch_size=8, widths=(4, 4, 4, 4, 4))
    from_tensors = train_detector(natural, fvs, config, show_progress=False)
    from_banks = train_detector(*banks, config, show_progress=False)
    banked = from_banks.state_dict()
    for name, tensor in from_tensors.state_dict().items():
        assert torch.equal(tensor, banked[name]), name
    for spy in banks:  # never more than one batch of rows in memory
        assert spy.reads == [8] * 6
    assert isinstance(np.load(tmp_path / "natural.npy", mmap_mode="r"), np.memmap)
