"""The exemplar hold (fvlab.check.exemplar_hold): the FFT image started exactly at an image,
the hold's formula, and on the real model and data: ascents from clean units' exemplars move
away from them, results do not depend on the batch size, the audit scores it only when asked."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fvlab.check.audit import audit
from fvlab.check.exemplar_hold import exemplar_hold, hold_of
from fvlab.check.settings import AuditThresholds
from fvlab.data.dataset import fetch_images
from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.optvis.param import PREIMAGE_CLIP, FFTImage

NATURAL = FashionMNIST("test", stop=600)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([1, 3]), st.sampled_from([7, 8, 16]), st.integers(0, 2**31 - 1))
def test_the_fft_image_starts_exactly_at_the_given_images(channels, size, seed):
    """x(fft_preimage(x)) = clip(x) for grey and colour images of even and odd sizes."""
    images = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(seed))
    start = FFTImage.starting_at(images)()
    assert torch.allclose(start, images.clamp(PREIMAGE_CLIP, 1 - PREIMAGE_CLIP), atol=1e-4)


@given(st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=6))
def test_hold_is_the_log_of_what_is_left(r):
    hold = hold_of(np.array(r)[:, None])[0]
    mean = min(float(np.mean(r)), 1 - 1e-12)  # an ascent that never moves: large but finite
    assert 0 <= hold < np.inf
    assert hold == pytest.approx(-np.log1p(-mean) if mean > 0 else 0.0, abs=1e-9)
    assert hold_of(np.array([[min(mean + 0.1, 1.0)]]))[0] >= hold - 1e-12  # monotone


@pytest.fixture(scope="module")
def exemplars(reference_model):
    units = list(range(8))
    clean = audit(reference_model, "relu3", NATURAL, units=tuple(units), steps=8, hold_steps=0,
                  show_progress=False)  # fmt: skip
    index = np.array([row["top_exemplars"][:3] for row in clean.rows])
    return units, fetch_images(NATURAL, index.ravel(), 64).view(8, 3, 1, 28, 28)


def test_ascent_from_a_clean_units_exemplars_leaves_them(reference_model, exemplars):
    units, images = exemplars
    few = exemplar_hold(reference_model, "relu3", units, images, steps=2, seed=0, batch_size=64)
    many = exemplar_hold(reference_model, "relu3", units, images, steps=64, seed=0, batch_size=64)
    assert few.r.shape == (3, 8) and np.all(few.r > 0.97)  # two updates: still the exemplar
    assert np.all(many.hold < few.hold)  # it keeps moving away from the natural image
    # measured on all 64 clean relu3 units: r 0.53–0.93 after 64 updates
    assert np.all(many.r.mean(0) < 0.95), many.r.mean(0)


def test_the_hold_does_not_depend_on_the_batch_size(reference_model, exemplars):
    units, images = exemplars
    whole = exemplar_hold(reference_model, "relu3", units, images, steps=6, seed=3, batch_size=64)
    parts = exemplar_hold(reference_model, "relu3", units, images, steps=6, seed=3, batch_size=3)
    assert np.allclose(whole.r, parts.r, atol=1e-6)


def test_the_audit_scores_the_hold_only_when_asked(reference_model):
    strict = AuditThresholds(hold=1e-6)  # every hold > 0 flags
    on = audit(reference_model, "relu3", NATURAL, units=(0, 1), steps=8, hold_steps=4,
               thresholds=strict, show_progress=False)  # fmt: skip
    assert all(np.isfinite(row["hold"]) and "hold" in row["flags"] for row in on.rows)
    off = audit(reference_model, "relu3", NATURAL, units=(0, 1), steps=8, hold_steps=0,
                thresholds=strict, show_progress=False)  # fmt: skip
    assert all(np.isnan(row["hold"]) and "hold" not in row["flags"] for row in off.rows)
    assert on.settings["hold_steps"] == 4 and off.settings["hold_steps"] == 0
