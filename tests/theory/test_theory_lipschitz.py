"""Lipschitz units: the certified radius around the arg max is eps / L."""

from __future__ import annotations

import numpy as np
import pytest

from fvlab.errors import FvlabError
from fvlab.theory.lipschitz import (
    Extremes,
    bounds,
    consistent_function,
    demonstrate_lipschitz,
    measured_radius,
    random_shapes,
)

EXT = Extremes(np.array([0.35, 0.6]), np.array([0.85, 0.15]), 1.0, 0.0)


def test_radius_times_l_is_constant():
    demo = demonstrate_lipschitz(n_random=4, n_directions=64)
    product = demo.radius_worst * demo.lipschitz
    assert (product.max() - product.min()) / product.mean() <= 0.05
    np.testing.assert_allclose(demo.radius_worst, demo.eps / demo.lipschitz, rtol=1e-6)
    assert demo.slope() == pytest.approx(-1.0, abs=1e-3)
    assert (demo.radius_random_min >= demo.radius_worst * (1 - 1e-9)).all()
    assert all(demo.checks().values())


def test_steeper_functions_shrink_the_measured_radius():
    """Negative control: the measurement sees the slope (a 2L cone halves the radius)."""
    L, eps = 10.0, 0.05
    cone = [consistent_function(EXT, L)]
    steep = [consistent_function(EXT, 2 * L)]
    assert measured_radius(cone, EXT, eps) == pytest.approx(eps / L, rel=1e-6)
    assert measured_radius(steep, EXT, eps) == pytest.approx(eps / (2 * L), rel=1e-6)


@pytest.mark.parametrize("L", [2.0, 7.0, 40.0])
def test_consistent_functions_fit_the_visualization(L):
    rng = np.random.default_rng(0)
    x = rng.random((20000, 2))
    lower, upper = bounds(x, EXT, L)
    for A in [None, *random_shapes(2, 3, seed=1)]:
        f = consistent_function(EXT, L, A)
        values = f(x)
        assert f(EXT.x_plus[None])[0] == EXT.top and f(EXT.x_minus[None])[0] == EXT.bottom
        assert values.max() <= EXT.top and values.min() >= EXT.bottom
        assert (values >= lower - 1e-12).all() and (values <= upper + 1e-12).all()
        i, j = rng.integers(0, len(x), (2, 5000))
        slope = np.abs(values[i] - values[j]) / np.linalg.norm(x[i] - x[j], axis=1).clip(1e-12)
        assert slope.max() <= L * (1 + 1e-9)
    # the cone is the lower bound itself: the worst case is attained
    np.testing.assert_allclose(consistent_function(EXT, L)(x), lower)


def test_impossible_lipschitz_constant_is_an_error():
    with pytest.raises(FvlabError, match="must be at least"):
        consistent_function(EXT, 0.5 * EXT.min_lipschitz())
    with pytest.raises(FvlabError, match="eps must be"):
        demonstrate_lipschitz(eps=2.0)
