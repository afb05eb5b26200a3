"""Golden tests of the parameterizations against independent NumPy references (lucid's formulas)."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fvlab.optvis.param import (
    COLOR_CORRELATION_SVD_SQRT,
    FFTImage,
    PhaseImage,
    PixelImage,
    color_matrix,
    decorrelate_colors,
    estimate_magnitude,
    rfft2_freqs,
)


def numpy_freqs(h, w):
    fy = np.array([(i if i < (h + 1) // 2 else i - h) / h for i in range(h)])
    fx = np.array([j / w for j in range(w // 2 + 1)])
    return np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(2, 33), w=st.integers(2, 33), decay=st.sampled_from([0.5, 1.0, 1.5]))
def test_fft_image_matches_lucid_formula(h, w, decay):
    param = FFTImage(
        2, 3, (h, w), sd=0.5, decay_power=decay, generator=torch.Generator().manual_seed(h * w)
    )
    spectrum = param.spectrum.detach().numpy()
    complex_spec = spectrum[..., 0] + 1j * spectrum[..., 1]
    freqs = numpy_freqs(h, w)
    np.testing.assert_allclose(rfft2_freqs(h, w), freqs, atol=1e-12)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(w, h)) ** decay
    scale = scale * np.sqrt(w * h)  # lucid: unnormalised inverse FFT times sqrt(w h)
    expected = np.fft.irfft2(complex_spec * scale, s=(h, w)) / 4.0
    np.testing.assert_allclose(param.raw().detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_color_matrix_and_decorrelation():
    c = COLOR_CORRELATION_SVD_SQRT.astype(np.float64)
    max_norm = np.max(np.linalg.norm(c, axis=0))
    assert abs(max_norm - 0.4619524) < 1e-6
    np.testing.assert_allclose(color_matrix().numpy(), c / max_norm, rtol=1e-6)
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    flat = x.permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    expected = (flat @ (c / max_norm).T).reshape(2, 4, 5, 3).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(decorrelate_colors(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    gray = torch.randn(1, 1, 3, 3)
    assert torch.equal(decorrelate_colors(gray), gray)


def test_params_produce_valid_images_for_any_channel_count():
    g = torch.Generator().manual_seed(1)
    for channels in (1, 3, 4):
        for param in (
            PixelImage(2, channels, 9, generator=g),
            FFTImage(2, channels, 9, generator=g),
        ):
            img = param()
            assert img.shape == (2, channels, 9, 9)
            assert img.min() >= 0 and img.max() <= 1


def test_phase_image_keeps_the_natural_magnitude():
    images = [
        torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(i)) for i in range(3)
    ]
    magnitude = estimate_magnitude(iter(images), 16)
    assert magnitude.shape == (1, 16, 9)
    manual = (
        torch.stack(
            [
                torch.fft.rfft2(b - b.mean((-2, -1), keepdim=True), norm="ortho").abs()
                for b in images
            ]
        )
        .flatten(0, 1)
        .mean(0)
    )
    torch.testing.assert_close(magnitude, manual)
    param = PhaseImage(2, 1, 16, magnitude, generator=torch.Generator().manual_seed(0))
    raw = param.raw().detach()
    assert torch.allclose(raw.mean((-2, -1)), torch.zeros(2, 1), atol=1e-5)
    # the spectrum's magnitude is the natural one up to the standardisation factor (columns 0
    # and W/2 are excluded: irfft2 keeps only their Hermitian-symmetric part)
    spec = torch.fft.rfft2(raw, norm="ortho").abs()
    ratio = (spec / magnitude.clamp_min(1e-6))[..., 1:-1]
    assert torch.allclose(ratio, ratio.flatten(1).median(1).values.view(2, 1, 1, 1), rtol=2e-2)
