"""Image similarity for the fooling measures: what does a visualization show?

Both functions compare images pair by pair, batched: a, b (N, C, H, W) → (N,) float32, all
pixels and channels at once, the images "as seen at the input" (same size and channels).
With x̃ = x − mean(x) over all C·H·W values,

    image_correlation(a, b)   = ⟨ã, b̃⟩ / (‖ã‖ ‖b̃‖)                      (Pearson r)
    shifted_correlation(a, b) = max over (dy, dx) of r(a, b circularly shifted by (dy, dx))

computed in float64. A constant image has correlation 0 with anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """x − mean over each image's values, divided by its norm (float64, (N, C, H, W))."""
    x = x.double()
    x = x - x.mean(dim=(1, 2, 3), keepdim=True)
    return x / x.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)


def image_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over all pixels and channels, per pair: (N, C, H, W) → (N,)."""
    x, y = a.flatten(1).double(), b.flatten(1).double()
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    denominator = (x.norm(dim=1) * y.norm(dim=1)).clamp_min(1e-30)
    return ((x * y).sum(1) / denominator).float()


def shifted_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Largest Pearson correlation between ``a`` and any circular shift of ``b``, per pair:
    (N, C, H, W) → (N,). Visualizations of conv units are textures whose placement is
    arbitrary, so they are compared up to a translation: with â, b̂ standardised over all
    values, max over (dy, dx) of Σ_{c,y,x} â[c,y,x] · b̂[c, y+dy, x+dx] (by FFT)."""
    fa, fb = torch.fft.rfft2(_standardise(a)), torch.fft.rfft2(_standardise(b))
    cross = torch.fft.irfft2(fa.conj() * fb, s=a.shape[-2:]).sum(1)
    return cross.flatten(1).amax(1).float()


def summarise(values: Sequence[float]) -> dict[str, float]:
    """min, median, max and mean of ``values``."""
    arr = np.asarray(values, dtype=float)
    return {
        "min": float(arr.min()),
        "median": float(np.median(arr)),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
    }
