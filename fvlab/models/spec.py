"""What a model's input must look like, as metadata of the model (never guessed).

All of fvlab works with images in [0, 1] of shape (B, C, H, W). A model's :class:`InputSpec`
maps them to what the model was trained on:

    x_model = (lo + (hi − lo) · x − mean) / std        (per channel)

e.g. lucid's InceptionV1 has (lo, hi) = (0, 255), mean = 117, std = 1 (x·255 − 117); torchvision
classifiers have (0, 1) and the ImageNet mean/std.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from fvlab.errors import InputShapeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """Channels, native size (pixels), value range and normalisation of a model's input.

    ``min_size`` is the smallest side the model accepts (fully convolutional models accept
    larger ones too; ``fixed_size`` models accept only ``size``).
    """

    channels: int
    size: int
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    min_size: int = 1
    fixed_size: bool = False

    def __post_init__(self) -> None:
        if self.channels < 1 or self.size < 1:
            raise ValueError(f"channels and size must be positive, got {self}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) not in (1, self.channels):
                raise ValueError(
                    f"{name} has {len(value)} entries; give 1 or one per channel ({self.channels})"
                )
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")

    def check(self, images: torch.Tensor) -> None:
        """Raise :class:`InputShapeError` unless ``images`` is (B, channels, H, W) and fits."""
        if images.ndim != 4 or images.shape[1] != self.channels:
            raise InputShapeError(
                f"expected images of shape (batch, {self.channels}, H, W) with values in [0, 1], "
                f"got shape {tuple(images.shape)}; "
                + (
                    "add a batch dimension with images.unsqueeze(0)"
                    if images.ndim == 3
                    else f"the model takes {self.channels}-channel images"
                )
            )
        h, w = images.shape[-2:]
        if self.fixed_size and (h, w) != (self.size, self.size):
            raise InputShapeError(
                f"this model takes exactly {self.size}×{self.size} images, got {h}×{w}; "
                f"resize them (torch.nn.functional.interpolate) first"
            )
        if min(h, w) < self.min_size:
            raise InputShapeError(
                f"images must be at least {self.min_size}×{self.min_size} for this model, "
                f"got {h}×{w}"
            )

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] images to the model's input space (see the module docstring)."""
        self.check(images)
        lo, hi = self.value_range
        x = images if (lo, hi) == (0.0, 1.0) else images * (hi - lo) + lo
        if self.mean is not None:
            x = x - images.new_tensor(self.mean).view(1, -1, 1, 1)
        if self.std is not None:
            x = x / images.new_tensor(self.std).view(1, -1, 1, 1)
        return x

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputSpec:
        fields = dict(data)
        for key in ("value_range", "mean", "std"):
            if fields.get(key) is not None:
                fields[key] = tuple(fields[key])
        return cls(**fields)
