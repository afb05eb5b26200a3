"""Square windows on a stride grid: mean-colour occlusion and batched unit activations.

Geometry: a window of side ``s`` px has its top-left corner at (y, x) with
y, x ∈ {0, stride, 2·stride, …} ≤ size − s (the grid that ``avg_pool2d(kernel=s, stride)`` sees).

Occlusion (P2): the window is filled, per channel, with the mean of the pixels it covers,
quantised to 8 bit (``round(255·mean) / 255``), so a swept image equals its saved PNG exactly.
The correct occlusion of a query is the position whose occluded image leaves the unit's
activation highest; the alternative is the position that lowers it most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fvlab.errors import FvlabError
from fvlab.progress import progress_bar
from fvlab.study.exemplars import layer_means


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Round images in [0, 1] to the 8-bit levels k/255 a PNG stores (clamping first)."""
    return (images.clamp(0, 1) * 255).round() / 255


def occluder_side(size: int, fraction: float) -> int:
    """Side in px of a square covering ``fraction`` of the image side (rounded, at least 1)."""
    if not 0 < fraction < 1:
        raise FvlabError(f"occluder fraction must be in (0, 1), got {fraction}")
    return max(1, round(fraction * size))


def grid_positions(size: int, side: int, stride: int) -> torch.Tensor:
    """Top-left corners (P, 2) as (y, x), row-major, of all windows on the stride grid."""
    if stride < 1:
        raise FvlabError(f"stride must be >= 1 px, got {stride}")
    if not 1 <= side <= size:
        raise FvlabError(f"window side {side} px must be between 1 and the image size {size}")
    coords = torch.arange(0, size - side + 1, stride)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([ys.flatten(), xs.flatten()], dim=1)


def window_masks(size: int, side: int, positions: torch.Tensor) -> torch.Tensor:
    """Boolean masks (P, 1, size, size): True inside each window."""
    rows = torch.arange(size)
    ys, xs = positions[:, 0:1], positions[:, 1:2]
    in_y = (rows >= ys) & (rows < ys + side)  # (P, size)
    in_x = (rows >= xs) & (rows < xs + side)
    return (in_y[:, :, None] & in_x[:, None, :])[:, None]


def patch_means(images: torch.Tensor, side: int, stride: int) -> torch.Tensor:
    """Per-channel mean of every window: (N, P, C), positions as in :func:`grid_positions`."""
    pooled = F.avg_pool2d(images, kernel_size=side, stride=stride)  # (N, C, gy, gx)
    return pooled.flatten(2).transpose(1, 2)


def occluded_images(images: torch.Tensor, side: int, stride: int) -> torch.Tensor:
    """Every occlusion of every image: (N, P, C, H, W), window filled with its quantised mean."""
    n, c, h, w = images.shape
    if h != w:
        raise FvlabError(f"occlusion needs square images, got {h}×{w}")
    positions = grid_positions(h, side, stride)
    masks = window_masks(h, side, positions).to(images.device)  # (P, 1, H, W)
    fill = quantise(patch_means(images, side, stride))  # (N, P, C)
    return torch.where(masks[None], fill[..., None, None], images[:, None])


def unit_activations(
    loaded,
    images: torch.Tensor,
    layer_units: Sequence[tuple[str, int]],
    *,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Activation of unit ``layer_units[g]`` on the images of group ``g``.

    ``images``: (G, M, C, H, W) — M images per group; returns (G, M). Groups are packed into
    forward passes of up to ``batch_size`` images; every layer in the pass is captured at once.
    """
    g_count, m = images.shape[:2]
    if len(layer_units) != g_count:
        raise ValueError(f"{g_count} image groups but {len(layer_units)} units")
    out = torch.empty(g_count, m)
    per_pass = max(1, batch_size // max(m, 1))
    for first in range(0, g_count, per_pass):
        chunk = list(range(first, min(first + per_pass, g_count)))
        layers = sorted({layer_units[g][0] for g in chunk})
        flat = images[chunk[0] : chunk[-1] + 1].flatten(0, 1)
        means = layer_means(loaded, flat, layers)
        for layer in layers:
            rows = [i for i, g in enumerate(chunk) if layer_units[g][0] == layer]
            units = torch.tensor([layer_units[chunk[i]][1] for i in rows])
            acts = means[layer].view(len(chunk), m, -1)[rows]  # (R, M, C)
            picked = acts.gather(2, units.view(-1, 1, 1).expand(-1, m, 1)).squeeze(2)
            out[[first + i for i in rows]] = picked.cpu()
    return out


@dataclass
class Sweep:
    """Occlusion sweep of N queries: positions (P, 2) as (y, x), activations (N, P)."""

    positions: torch.Tensor
    activations: torch.Tensor
    side: int

    @property
    def best(self) -> torch.Tensor:
        """Index of the position leaving the activation highest (the correct occlusion), (N,)."""
        return self.activations.argmax(1)

    @property
    def worst(self) -> torch.Tensor:
        """Index of the position lowering the activation most (the alternative), (N,)."""
        return self.activations.argmin(1)


def occlusion_sweep(
    loaded,
    queries: torch.Tensor,
    layer_units: Sequence[tuple[str, int]],
    *,
    side: int,
    stride: int,
    batch_size: int = 1024,
    show_progress: bool = False,
    description: str = "occlusion sweep",
) -> Sweep:
    """Occlude every query (N, C, H, W) at every grid position and measure its unit (batched:
    all positions of several queries per forward pass)."""
    positions = grid_positions(queries.shape[-1], side, stride)
    chunk = max(1, batch_size // len(positions))
    parts = []
    with progress_bar(description, queries.shape[0], show_progress) as advance:
        for first in range(0, queries.shape[0], chunk):
            variants = occluded_images(queries[first : first + chunk], side, stride)
            parts.append(
                unit_activations(
                    loaded, variants, layer_units[first : first + chunk], batch_size=batch_size
                )
            )
            advance(variants.shape[0])
    return Sweep(positions, torch.cat(parts), side)
