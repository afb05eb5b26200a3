"""Shared fixtures: the embedded model and the real Fashion-MNIST test set (loaded once)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def reference_model():
    import fvlab

    return fvlab.load("fmnist-cnn")


@pytest.fixture(scope="session")
def fmnist_test():
    """(images (10000, 1, 28, 28) in [0, 1], labels) — the real test split."""
    from fvlab.data.fashion_mnist import FashionMNIST

    return FashionMNIST("test").load()
