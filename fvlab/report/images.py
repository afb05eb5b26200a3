"""Writing image tensors as PNG files and grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] → (H, W) or (H, W, C) uint8, rounding to nearest."""
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def save_png(image: torch.Tensor, path: str | Path, upscale: int = 1) -> Path:
    """Save one (C, H, W) image in [0, 1]; 1, 3 or 4 channels; optional nearest upscaling."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(to_uint8(image))
    if upscale > 1:
        pil = pil.resize((pil.width * upscale, pil.height * upscale), Image.NEAREST)
    pil.save(path)
    return path


def load_png(path: str | Path) -> torch.Tensor:
    """Read a PNG written by :func:`save_png` back as (C, H, W) float in [0, 1]."""
    array = np.asarray(Image.open(path), dtype=np.float32) / 255.0
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def grid_image(
    images: torch.Tensor,
    ncol: int | None = None,
    labels: Sequence[str] | None = None,
    upscale: int = 1,
    pad: int = 2,
) -> Image.Image:
    """Tile (N, C, H, W) images in [0, 1] into one RGB picture, with optional captions."""
    n, c, h, w = images.shape
    ncol = ncol or min(n, 10)
    nrow = -(-n // ncol)
    h2, w2 = h * upscale, w * upscale
    caption = 12 if labels else 0
    canvas = Image.new("RGB", (ncol * (w2 + pad) + pad, nrow * (h2 + pad + caption) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        tile = Image.fromarray(to_uint8(images[i])).convert("RGB")
        tile = tile.resize((w2, h2), Image.NEAREST)
        row, col = divmod(i, ncol)
        x, y = pad + col * (w2 + pad), pad + row * (h2 + pad + caption)
        canvas.paste(tile, (x, y + caption))
        if labels:
            draw.text((x, y), str(labels[i])[: max(4, w2 // 6)], fill="black")
    return canvas


def save_grid(images: torch.Tensor, path: str | Path, **kwargs) -> Path:
    """Save :func:`grid_image` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(images, **kwargs).save(path)
    return path
