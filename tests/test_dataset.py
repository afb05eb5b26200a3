"""The Dataset protocol: every dataset slices, and slices keep global image indices."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fvlab.data.dataset import Dataset, InMemoryImages, fetch_images, head
from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.data.folders import ImageFolder
from fvlab.errors import FvlabError


def _memory(n: int = 12) -> InMemoryImages:
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2) / n
    return InMemoryImages(images.clone(), torch.arange(n) % 3)


@settings(max_examples=60, deadline=None)
@given(first=st.integers(0, 14), length=st.integers(0, 14), inner=st.integers(0, 6))
def test_slices_of_slices_keep_global_indices(first, length, inner):
    data = _memory(12)
    part = data.slice(first, first + length)
    expected = list(range(min(first, 12), min(first + length, 12)))
    assert part.start == (expected[0] if expected else min(first, 12)) and len(part) == len(
        expected
    )
    sub = part.slice(inner)
    assert len(sub) == max(0, len(expected) - inner)
    if len(sub):
        assert torch.equal(sub.images, data.images[sub.start : sub.start + len(sub)])


def test_every_dataset_implements_the_protocol(tmp_path):
    for name in "ab":
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("L", (8, 8), 40 * i).save(tmp_path / name / f"{i}.png")
    folder = ImageFolder(tmp_path, size=8, channels=1, resize_ratio=1.0)
    for dataset in (_memory(), FashionMNIST("test"), folder):
        assert isinstance(dataset, Dataset)
        part = dataset.slice(2, 5)
        assert isinstance(part, Dataset) and part.start == dataset.start + 2 and len(part) == 3
        assert head(dataset, 2).start == dataset.start and len(head(dataset, 2)) == 2
    assert [int(y) for _, y in folder.slice(2, 5).batches(8) for y in y] == [0, 1, 1]


def test_fetch_uses_global_indices_of_a_slice(fmnist_test):
    images, _ = fmnist_test
    shard = FashionMNIST("test").slice(100, 400)
    picked = fetch_images(shard, [399, 100, 250, 100], batch_size=64)
    assert torch.equal(picked, images[[399, 100, 250, 100]])
    with pytest.raises(FvlabError, match="outside the dataset range"):
        fetch_images(shard, [50])
    with pytest.raises(FvlabError, match="count must be >= 1"):
        head(shard, 0)
