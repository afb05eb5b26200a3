"""Target images for the fooling constructions: a file, or a built-in pattern drawn at any size.

Built-ins (``builtin:NAME``): ``smiley`` (a bright face with dark eyes and mouth), ``cross``,
``ring``, ``checker`` — bright shapes on a dark background, in [0, 1]. :func:`random_shapes`
draws random ones (the detector trains on visualizations of those, never on the built-ins,
which stay held out).
"""

from __future__ import annotations

import math
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
        # a bright filled face with dark eyes and mouth, features >= 5 px at 28 px: the standard
        # render transforms jitter by up to ~2 px, which would merge thinner strokes
        face = r < 0.88
        eyes = (((x - c + size * 0.17) ** 2 + (y - c + size * 0.13) ** 2).sqrt() < size * 0.11) | (
            ((x - c - size * 0.17) ** 2 + (y - c + size * 0.13) ** 2).sqrt() < size * 0.11
        )
        mouth = (r > 0.3) & (r < 0.55) & (y > c + size * 0.08)
        image = (face & ~eyes & ~mouth).float()
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


def random_shapes(n: int, size: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """``n`` random targets (n, channels, size, size) in [0, 1]: each the union of 1–4 random
    filled ellipses, rings, rectangles and thick strokes, at a random grey level on black; half
    of them blurred by a 3×3 box filter."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32) / size
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    out = torch.zeros(n, 1, size, size)

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    for i in range(n):
        image = torch.zeros(size, size)
        for _ in range(int(torch.randint(1, 5, (), generator=g))):
            kind = int(torch.randint(4, (), generator=g))
            cy, cx = uniform(0.15, 0.85), uniform(0.15, 0.85)
            ry, rx = uniform(0.05, 0.4), uniform(0.05, 0.4)
            r = (((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2).sqrt()
            if kind == 0:
                mask = r < 1
            elif kind == 1:
                mask = (r < 1) & (r > uniform(0.4, 0.8))
            elif kind == 2:
                mask = ((y - cy).abs() < ry) & ((x - cx).abs() < rx)
            else:
                angle = uniform(0, math.pi)
                distance = (x - cx) * math.sin(angle) - (y - cy) * math.cos(angle)
                mask = (distance.abs() < uniform(0.03, 0.1)) & (r < 2)
            image = torch.where(mask, torch.full_like(image, uniform(0.4, 1.0)), image)
        out[i, 0] = image
    blurred = torch.nn.functional.avg_pool2d(out, 3, 1, 1, count_include_pad=False)
    out[::2] = blurred[::2]
    return out.expand(n, channels, size, size).clone()
