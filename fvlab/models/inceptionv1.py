"""Lucid's InceptionV1 (the "inception5h" GoogLeNet) with lucid's layer names.

Layer names follow lucid: ``conv2d0`` … ``conv2d2``, ``mixed3a`` … ``mixed5b`` (the concatenated,
post-ReLU block outputs), branch pre-ReLU convolutions such as ``mixed4a_3x3_pre_relu_conv`` and
their ReLUs ``mixed4a_3x3``, and ``softmax2_pre_activation_matmul`` (1008 logits). Parameter
names match the public PyTorch conversion of lucid's weights (``inception5h.pth``), so that file
loads with ``load_state_dict``. Padding reproduces TensorFlow's ``SAME`` rule for any input size.
Input: x·255 − 117 (see :data:`INCEPTIONV1_SPEC`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fvlab.models.spec import InputSpec

INCEPTIONV1_SPEC = InputSpec(
    channels=3, size=224, value_range=(0.0, 255.0), mean=(117.0,), std=(1.0,), min_size=32
)

#: (name, 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool projection)
BLOCKS = (
    ("mixed3a", 64, 96, 128, 16, 32, 32),
    ("mixed3b", 128, 128, 192, 32, 96, 64),
    ("mixed4a", 192, 96, 204, 16, 48, 64),
    ("mixed4b", 160, 112, 224, 24, 64, 64),
    ("mixed4c", 128, 128, 256, 24, 64, 64),
    ("mixed4d", 112, 144, 288, 32, 64, 64),
    ("mixed4e", 256, 160, 320, 32, 128, 128),
    ("mixed5a", 256, 160, 320, 48, 128, 128),
    ("mixed5b", 384, 192, 384, 48, 128, 128),
)
#: a stride-2 max-pool precedes these blocks
POOL_BEFORE = {"mixed4a": "maxpool4", "mixed5a": "maxpool10"}
N_LOGITS = 1008


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one spatial dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = same_padding(x.shape[-2], kh, sh)
        left, right = same_padding(x.shape[-1], kw, sw)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class SameMaxPool2d(nn.Module):
    """3×3 max-pool with TensorFlow 'SAME' padding (padded with −inf)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], 3, self.stride)
        left, right = same_padding(x.shape[-1], 3, self.stride)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, 3, self.stride)


class LocalResponseNorm(nn.Module):
    """TensorFlow's LRN: x / (bias + alpha · Σ_{|c'−c|≤radius} x_{c'}²)^beta (no 1/n factor)."""

    def __init__(self, radius: int = 4, alpha: float = 1e-4, beta: float = 0.5, bias: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.bias = 2 * radius + 1, alpha, beta, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch divides alpha by the window size; multiply back to get TensorFlow's formula
        return F.local_response_norm(x, self.size, self.alpha * self.size, self.beta, self.bias)


class Concat(nn.Module):
    """Concatenate branch outputs along channels (a named layer, so it can be hooked)."""

    def forward(self, *branches: torch.Tensor) -> torch.Tensor:
        return torch.cat(branches, dim=1)


class InceptionV1(nn.Module):
    """Lucid's InceptionV1; ``forward`` returns the 1008 pre-softmax logits."""

    def __init__(self) -> None:
        super().__init__()
        self._add_conv("conv2d0", 3, 64, 7, stride=2)
        self.maxpool0 = SameMaxPool2d(2)
        self.localresponsenorm0 = LocalResponseNorm()
        self._add_conv("conv2d1", 64, 64, 1)
        self._add_conv("conv2d2", 64, 192, 3)
        self.localresponsenorm1 = LocalResponseNorm()
        self.maxpool1 = SameMaxPool2d(2)
        channels = 192
        for name, c1, c3r, c3, c5r, c5, cp in BLOCKS:
            if name in POOL_BEFORE:
                self.add_module(POOL_BEFORE[name], SameMaxPool2d(2))
            self._add_conv(f"{name}_1x1", channels, c1, 1)
            self._add_conv(f"{name}_3x3_bottleneck", channels, c3r, 1)
            self._add_conv(f"{name}_3x3", c3r, c3, 3)
            self._add_conv(f"{name}_5x5_bottleneck", channels, c5r, 1)
            self._add_conv(f"{name}_5x5", c5r, c5, 5)
            self.add_module(f"{name}_pool", SameMaxPool2d(1))
            self._add_conv(f"{name}_pool_reduce", channels, cp, 1)
            self.add_module(name, Concat())
            channels = c1 + c3 + c5 + cp
        self.avgpool0 = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.softmax2_pre_activation_matmul = nn.Linear(channels, N_LOGITS)

    def _add_conv(self, name: str, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        self.add_module(f"{name}_pre_relu_conv", SameConv2d(cin, cout, kernel, stride))
        self.add_module(name, nn.ReLU())

    def _unit(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, name)(getattr(self, f"{name}_pre_relu_conv")(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.localresponsenorm0(self.maxpool0(self._unit("conv2d0", x)))
        x = self._unit("conv2d2", self._unit("conv2d1", x))
        x = self.maxpool1(self.localresponsenorm1(x))
        for name, *_ in BLOCKS:
            if name in POOL_BEFORE:
                x = getattr(self, POOL_BEFORE[name])(x)
            x = getattr(self, name)(
                self._unit(f"{name}_1x1", x),
                self._unit(f"{name}_3x3", self._unit(f"{name}_3x3_bottleneck", x)),
                self._unit(f"{name}_5x5", self._unit(f"{name}_5x5_bottleneck", x)),
                self._unit(f"{name}_pool_reduce", getattr(self, f"{name}_pool")(x)),
            )
        return self.softmax2_pre_activation_matmul(self.flatten(self.avgpool0(x)))
