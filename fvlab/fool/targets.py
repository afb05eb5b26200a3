"""Target images for the fooling constructions: a file, or a built-in pattern drawn at any size.

Built-ins (``builtin:NAME``): ``smiley``, ``cross``, ``ring``, ``checker`` — bright shapes on a
dark background, in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch

from fvlab.errors import FvlabError

BUILTINS = ("smiley", "cross", "ring", "checker")


def builtin_target(name: str, size: int, channels: int = 1) -> torch.Tensor:
    """A built-in pattern as (channels, size, size) in [0, 1]."""
    c = (size - 1) / 2
    y, x = torch.meshgrid(
        torch.arange(size, dtype=torch.float32),
        torch.arange(size, dtype=torch.float32),
        indexing="ij",
    )
    r = ((x - c) ** 2 + (y - c) ** 2).sqrt() / (size / 2)
    if name == "ring":
        image = ((r > 0.45) & (r < 0.75)).float()
    elif name == "cross":
        w = size / 8
        image = (((x - c).abs() < w) | ((y - c).abs() < w)).float()
    elif name == "checker":
        cell = max(1, size // 4)
        image = (((x // cell) + (y // cell)) % 2).float()
    elif name == "smiley":
        face = (r > 0.72) & (r < 0.9)
        eyes = (((x - c + size * 0.18) ** 2 + (y - c + size * 0.15) ** 2).sqrt() < size * 0.08) | (
            ((x - c - size * 0.18) ** 2 + (y - c + size * 0.15) ** 2).sqrt() < size * 0.08
        )
        mouth = (r > 0.38) & (r < 0.52) & (y > c + size * 0.05)
        image = (face | eyes | mouth).float()
    else:
        raise FvlabError(f"unknown built-in target {name!r}; valid: {', '.join(BUILTINS)}")
    return image.expand(channels, size, size).clone()


def resolve_target(spec_text: str, spec) -> torch.Tensor:
    """``builtin:NAME`` or an image path → (C, size, size) in [0, 1] for the model's spec."""
    if spec_text.startswith("builtin:"):
        return builtin_target(spec_text.split(":", 1)[1], spec.size, spec.channels)
    path = Path(spec_text)
    if not path.is_file():
        raise FvlabError(
            f"target image {path} not found; give an image file or builtin:NAME "
            f"({', '.join(BUILTINS)})"
        )
    from fvlab.fool.build_circuit import load_target

    return load_target(path, spec)
