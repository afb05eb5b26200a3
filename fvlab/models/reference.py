"""The embedded reference model ``fmnist-cnn``: a small grayscale CNN for Fashion-MNIST.

Five 3×3 conv blocks (conv → BatchNorm → ReLU, each a module of its own, so every activation
has a distinct name), max-pooling after blocks 1 and 3, global average pooling and a linear
layer to 10 logits. Input: (B, 1, 28, 28), normalised with the training set's mean and std.
"""

from __future__ import annotations

import torch
from torch import nn

from fvlab.models.spec import InputSpec

#: Pixel mean and std of the Fashion-MNIST training images (values in [0, 1]).
FMNIST_MEAN = 0.2860
FMNIST_STD = 0.3530
WIDTHS = (32, 32, 64, 64, 128)
POOL_AFTER = (1, 3)

FMNIST_SPEC = InputSpec(
    channels=1, size=28, value_range=(0.0, 1.0), mean=(FMNIST_MEAN,), std=(FMNIST_STD,), min_size=8
)


class FmnistCNN(nn.Module):
    """conv1…conv5 (+ bn, relu), pool1, pool3, gap, fc → 10 logits."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, n_classes: int = 10) -> None:
        super().__init__()
        in_channels = 1
        self.block_names: list[str] = []
        for index, width in enumerate(widths, start=1):
            self.add_module(f"conv{index}", nn.Conv2d(in_channels, width, 3, padding=1, bias=False))
            self.add_module(f"bn{index}", nn.BatchNorm2d(width))
            self.add_module(f"relu{index}", nn.ReLU())
            if index in POOL_AFTER:
                self.add_module(f"pool{index}", nn.MaxPool2d(2))
            self.block_names.append(str(index))
            in_channels = width
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in self.block_names:
            x = getattr(self, f"relu{index}")(
                getattr(self, f"bn{index}")(getattr(self, f"conv{index}")(x))
            )
            if int(index) in POOL_AFTER:
                x = getattr(self, f"pool{index}")(x)
        return self.fc(self.flatten(self.gap(x)))
