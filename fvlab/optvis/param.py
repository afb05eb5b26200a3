"""Image parameterizations: ``nn.Module``s whose ``forward()`` returns a batch in [0, 1].

* :class:`PixelImage` — one free parameter per pixel.
* :class:`FFTImage` — lucid's Fourier parameterization. Parameters are a complex spectrum
  ``S ~ N(0, sd²)`` (real and imaginary parts) of shape (B, C, H, W//2+1); the image is

      x = irfft2( S · scale ) / 4,   scale(f) = 1 / max(f, 1/max(H, W))^decay_power,

  with the *orthonormal* inverse FFT (equal to lucid's unnormalised inverse × √(HW)); f is the
  radial frequency in cycles per pixel.
* :class:`PhaseImage` — MACO: only the Fourier phase φ is optimised; the magnitude M is fixed and
  estimated from natural images (:func:`estimate_magnitude`): x = irfft2(M · e^{iφ}), then each
  image channel is standardised to zero mean and unit variance.

The raw output then goes through colour decorrelation (:func:`decorrelate_colors`: lucid's
matrix for 3 channels, identity otherwise) and a sigmoid (or a clamp) to land in [0, 1].

:func:`make_param` builds one by name ('fft', 'pixel', 'maco'). ``fvlab.render(param=...)``
takes a name or any ``nn.Module`` whose ``forward()`` returns (B, C, H, W) in [0, 1]; its
parameters with ``requires_grad`` are the ones optimised. ``fvlab.render`` draws the random
start from :class:`~fvlab.optvis.draws.Draws` keyed by unit, so a unit's start does not depend
on its batch-mates.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from fvlab.errors import FvlabError
from fvlab.optvis.draws import Draws, rand, randn

#: where the random start comes from: keyed :class:`Draws` (element b's start depends only on
#: the seed and its key), a ``torch.Generator``, or ``None`` (torch's default generator)
Source = Draws | torch.Generator

#: lucid's colour-correlation square root (rows: RGB output, columns: decorrelated input)
COLOR_CORRELATION_SVD_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
#: lucid's mean RGB, added when decorrelating without a sigmoid
COLOR_MEAN = (0.48, 0.46, 0.41)


def color_matrix() -> torch.Tensor:
    """lucid's decorrelation matrix divided by its largest column norm (≈ 0.4619524)."""
    max_norm = np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
    return torch.from_numpy(COLOR_CORRELATION_SVD_SQRT / max_norm)


def decorrelate_colors(x: torch.Tensor) -> torch.Tensor:
    """Map decorrelated channels to RGB: x_rgb[c] = Σ_k M[c, k] · x[k] (identity unless C = 3)."""
    if x.shape[1] != 3:
        return x
    matrix = color_matrix().to(x.device, x.dtype)
    return torch.einsum("ck,bkhw->bchw", matrix, x)


def to_valid_image(x: torch.Tensor, decorrelate: bool, sigmoid: bool) -> torch.Tensor:
    """lucid's ``to_valid_rgb``: optional decorrelation, then a sigmoid (or a clamp) into [0, 1]."""
    if decorrelate:
        x = decorrelate_colors(x)
    if sigmoid:
        return torch.sigmoid(x)
    if decorrelate and x.shape[1] == 3:
        x = x + x.new_tensor(COLOR_MEAN).view(1, 3, 1, 1)
    return x.clamp(0.0, 1.0)


def rfft2_freqs(h: int, w: int) -> np.ndarray:
    """Radial frequency (cycles/pixel) of each rfft2 coefficient, shape (h, w//2 + 1)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def fft_scale(h: int, w: int, decay_power: float = 1.0) -> torch.Tensor:
    """Per-frequency spectrum scale 1 / max(f, 1/max(h, w))^decay_power, shape (h, w//2+1)."""
    freqs = rfft2_freqs(h, w)
    return torch.from_numpy(1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power).float()


Size = int | tuple[int, int]


class _ImageParam(nn.Module, abc.ABC):
    """Common shape bookkeeping and initialisation: subclasses create their parameters in
    ``init_parameters(sd, generator)`` and implement ``raw()`` (before colour/sigmoid)."""

    def __init__(
        self,
        batch: int,
        channels: int,
        size: Size,
        sd: float = 0.01,
        generator: Source | None = None,
        decorrelate: bool = True,
        sigmoid: bool = True,
    ) -> None:
        super().__init__()
        h, w = (size, size) if isinstance(size, int) else size
        if min(batch, channels, h, w) < 1:
            raise ValueError(
                f"batch, channels and size must be positive, got {batch}, {channels}, {size}"
            )
        self.shape = (batch, channels, h, w)
        self.decorrelate = decorrelate
        self.sigmoid = sigmoid
        self.init_parameters(sd, generator)

    @abc.abstractmethod
    def init_parameters(self, sd: float, generator: Source | None) -> None:
        """Create the optimised parameters (random start of standard deviation ``sd``)."""

    @abc.abstractmethod
    def raw(self) -> torch.Tensor:
        """The unconstrained image (B, C, H, W) before colour decorrelation and sigmoid."""

    def forward(self) -> torch.Tensor:
        return to_valid_image(self.raw(), self.decorrelate, self.sigmoid)


class PixelImage(_ImageParam):
    """Free pixels ~ N(0, sd²) before decorrelation and sigmoid."""

    def init_parameters(self, sd: float, generator: Source | None) -> None:
        self.pixels = nn.Parameter(randn(generator, self.shape) * sd)

    def raw(self) -> torch.Tensor:
        return self.pixels


class FFTImage(_ImageParam):
    """lucid's Fourier parameterization (see the module docstring); arguments as
    :class:`PixelImage` plus ``decay_power``."""

    def __init__(self, *args, decay_power: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("scale", fft_scale(*self.shape[-2:], decay_power))

    def init_parameters(self, sd: float, generator: Source | None) -> None:
        b, c, h, w = self.shape
        spectrum = randn(generator, (b, c, h, w // 2 + 1, 2)) * sd
        self.spectrum = nn.Parameter(spectrum)

    def raw(self) -> torch.Tensor:
        h, w = self.shape[-2:]
        scaled = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfft2(scaled, s=(h, w), norm="ortho") / 4.0

    @classmethod
    def starting_at(cls, images: torch.Tensor, decay_power: float = 1.0) -> FFTImage:
        """An FFT image whose start is ``images`` (B, C, H, W) in [0, 1] (up to the clip of
        :func:`fft_preimage`), to be optimised from there."""
        b, c, h, w = images.shape
        image = cls(b, c, (h, w), sd=0.0, decay_power=decay_power)
        image.spectrum = nn.Parameter(fft_preimage(images, decay_power).to(images.device))
        return image


#: the FFT image's sigmoid never reaches 0 or 1: images are clipped to [CLIP, 1 − CLIP] first
PREIMAGE_CLIP = 0.02


def fft_preimage(images: torch.Tensor, decay_power: float = 1.0) -> torch.Tensor:
    """The spectrum S with :class:`FFTImage`'s image x(S) = clip(images) exactly (float64
    inside): with y = logit(clip(x, ε, 1 − ε)) (ε = :data:`PREIMAGE_CLIP`), undo the colour
    decorrelation (y ← M⁻¹ y for 3 channels, :func:`decorrelate_colors`), then
    S = rfft2(4 y, ortho) / scale. (B, C, H, W) → (B, C, H, W//2 + 1, 2)."""
    x = images.double().clamp(PREIMAGE_CLIP, 1 - PREIMAGE_CLIP)
    y = torch.log(x / (1 - x))
    if y.shape[1] == 3:
        inverse = torch.linalg.inv(color_matrix().double()).to(y.device)
        y = torch.einsum("ck,bkhw->bchw", inverse, y)
    scale = fft_scale(*y.shape[-2:], decay_power).double().to(y.device)
    spectrum = torch.fft.rfft2(4.0 * y, norm="ortho") / scale
    return torch.view_as_real(spectrum).float()


def estimate_magnitude(
    images: Iterable[torch.Tensor], size: int | tuple[int, int], max_images: int = 2000
) -> torch.Tensor:
    """Mean Fourier magnitude |rfft2(x − mean(x))| (orthonormal) of natural images.

    ``images`` yields batches (B, C, H, W) in [0, 1]; images are resized to ``size`` first.
    Returns (C, H, W//2 + 1). Uses at most ``max_images`` images.
    """
    h, w = (size, size) if isinstance(size, int) else size
    total, count = None, 0
    for batch in images:
        batch = batch[: max_images - count].float()
        if batch.shape[-2:] != (h, w):
            batch = torch.nn.functional.interpolate(
                batch, size=(h, w), mode="bilinear", align_corners=False, antialias=True
            )
        centred = batch - batch.mean(dim=(-2, -1), keepdim=True)
        magnitude = torch.fft.rfft2(centred, norm="ortho").abs().sum(0)
        total = magnitude if total is None else total + magnitude
        count += batch.shape[0]
        if count >= max_images:
            break
    if total is None or count == 0:
        raise ValueError("estimate_magnitude needs at least one image")
    return total / count


class PhaseImage(_ImageParam):
    """MACO: fixed natural magnitude spectrum, optimised phase φ ~ U(−π, π) (see the module
    docstring); ``magnitude`` (C or 1, H, W//2 + 1) from :func:`estimate_magnitude`."""

    def __init__(
        self,
        batch: int,
        channels: int,
        size: Size,
        magnitude: torch.Tensor,
        generator: Source | None = None,
        **kwargs,
    ) -> None:
        super().__init__(batch, channels, size, generator=generator, **kwargs)
        _, c, h, w = self.shape
        if magnitude.shape != (c, h, w // 2 + 1) and magnitude.shape != (1, h, w // 2 + 1):
            raise ValueError(
                f"magnitude has shape {tuple(magnitude.shape)}; expected ({c}, {h}, {w // 2 + 1})"
                " — estimate it at the render size with estimate_magnitude(images, size)"
            )
        self.register_buffer("magnitude", magnitude.float().expand(c, h, w // 2 + 1).clone())

    def init_parameters(self, sd: float, generator: Source | None) -> None:
        b, c, h, w = self.shape
        phase = (rand(generator, (b, c, h, w // 2 + 1)) * 2 - 1) * torch.pi
        self.phase = nn.Parameter(phase)

    def raw(self) -> torch.Tensor:
        h, w = self.shape[-2:]
        spectrum = torch.polar(self.magnitude.expand_as(self.phase), self.phase)
        x = torch.fft.irfft2(spectrum, s=(h, w), norm="ortho")
        mean = x.mean(dim=(-2, -1), keepdim=True)
        std = x.std(dim=(-2, -1), keepdim=True).clamp_min(1e-8)
        return (x - mean) / std


#: the parameterizations render knows by name
PARAM_NAMES = ("fft", "pixel", "maco")


def make_param(
    name: str,
    batch: int,
    channels: int,
    size: Size,
    generator: Source,
    *,
    decay_power: float = 1.0,
    init_sd: float = 0.01,
    magnitude: torch.Tensor | None = None,
) -> nn.Module:
    """Build a parameterization by name: 'fft' (:class:`FFTImage`), 'pixel'
    (:class:`PixelImage`) or 'maco' (:class:`PhaseImage`, which needs ``magnitude``)."""
    if name == "fft":
        return FFTImage(batch, channels, size, init_sd, generator, decay_power=decay_power)
    if name == "pixel":
        return PixelImage(batch, channels, size, init_sd, generator)
    if name == "maco":
        if magnitude is None:
            raise FvlabError(
                "the maco parameterization needs a magnitude spectrum: pass "
                "magnitude=estimate_magnitude(natural_images, size)"
            )
        return PhaseImage(batch, channels, size, magnitude, generator=generator)
    raise FvlabError(f"unknown parameterization {name!r}; valid: fft, pixel, maco")
