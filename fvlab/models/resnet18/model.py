"""The ``fmnist-resnet18`` model: architecture, input spec, input rule and weights file.

Architecture: ``torchvision.models.resnet18(num_classes=10)`` with no change at all — the 7×7
stride-2 stem and max-pool, four stages of two BasicBlocks (64, 128, 256, 512 channels) whose
ReLU is one module shared by both ReLUs of a block (so ``layer4.1.relu`` runs twice per
forward pass; hook ``layer4.1.conv2`` or ``layer4.1.bn2`` instead), global average pooling and
a 512 → 10 linear layer. At 64 px the stages are 16, 8, 4 and 2 px wide.

Input: Fashion-MNIST's 28×28 grey images, resized to 64×64 by bilinear interpolation
(``align_corners=False``, as :func:`torch.nn.functional.interpolate`) and repeated on 3
channels, then normalised per channel with the training set's pixel mean 0.2860 and std 0.3530
(:data:`FMNIST_RESNET18_SPEC`). :func:`fvlab.data.resized.resize_grey` is that rule; training
and the natural dataset (:func:`fvlab.data.natural.open_dataset`) both use it, so the model
sees the same images in both.

Weights file: every floating-point tensor stored as float16 (≈ 22 MB instead of ≈ 45 MB in
float32); loading copies them into the float32 parameters. The accuracy in the training
record is measured with the rounded weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fvlab.models.reference import FMNIST_MEAN, FMNIST_STD
from fvlab.models.spec import InputSpec

NAME = "fmnist-resnet18"
SIZE = 64
CHANNELS = 3
WEIGHTS = Path(__file__).parent.parent / "weights" / "fmnist-resnet18.pt"

FMNIST_RESNET18_SPEC = InputSpec(
    channels=CHANNELS,
    size=SIZE,
    value_range=(0.0, 1.0),
    mean=(FMNIST_MEAN,) * CHANNELS,
    std=(FMNIST_STD,) * CHANNELS,
    min_size=32,
)


def build() -> nn.Module:
    """A fresh ``torchvision.models.resnet18(num_classes=10)`` (torch's global generator
    draws its initial weights, as torchvision does)."""
    import torchvision

    return torchvision.models.resnet18(weights=None, num_classes=10)


def half_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with every floating-point tensor rounded to float16 (others as they are)."""
    return {
        k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).clone()
        for k, v in module.state_dict().items()
    }
