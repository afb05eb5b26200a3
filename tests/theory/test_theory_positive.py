"""Positive cases: constants and affine units of one input are decoded exactly."""

from __future__ import annotations

import pytest
import torch

from fvlab.errors import FvlabError
from fvlab.theory.ascent import AscentSchedule, default_starts, visualize
from fvlab.theory.decoders import DECODERS
from fvlab.theory.positive import demonstrate_positive, worst_errors


def test_constant_and_affine_1d_decoders_are_exact():
    demo = demonstrate_positive(n_units=8, n_queries=100, seed=1)
    assert demo.error("constant") <= 1e-6
    assert demo.error("affine_d1") <= 1e-6
    # the same interpolation decoder is far off for affine units of two inputs
    assert demo.errors["affine_d2 (contrast)"]["interpolate arg min → arg max"] > 0.1
    # and a constant prediction is far off for affine units of one input
    assert demo.errors["affine_d1"]["max value"] > 0.1
    assert all(demo.checks().values()), demo.checks()


def test_affine_1d_visualization_finds_both_ends():
    f = lambda x: -1.7 * x[:, 0] + 0.3  # noqa: E731
    vis = visualize(f, default_starts(1, 2, seed=0), AscentSchedule(steps=60))
    assert vis.argmax.tolist() == [0.0] and vis.argmin.tolist() == [1.0]
    q = torch.linspace(0, 1, 11, dtype=torch.float64)[:, None]
    decoded = DECODERS["interpolate arg min → arg max"](vis, q)
    assert (decoded - f(q)).abs().max() <= 1e-12


def test_unknown_class_is_an_error():
    with pytest.raises(FvlabError, match="unknown class"):
        worst_errors("quadratic", 1, 1, 0, AscentSchedule(steps=5), 1)
