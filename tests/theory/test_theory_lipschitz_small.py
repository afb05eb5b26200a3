"""Lipschitz units with small L: the certified radius covers the domain below L* = eps / R."""

from __future__ import annotations

import numpy as np
import pytest

from fvlab.errors import FvlabError
from fvlab.theory.lipschitz_small import X_PLUS, demonstrate_small_lipschitz, farthest_corner


@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_crossover_is_eps_over_the_farthest_distance(eps):
    demo = demonstrate_small_lipschitz(eps=eps, n_grid=101)
    R = float(np.linalg.norm(np.array([1.0, 0.0]) - X_PLUS))
    assert demo.crossover == pytest.approx(eps / R, rel=1e-12)
    assert demo.measured_crossover == pytest.approx(eps / R, rel=1e-6)
    small = demo.lipschitz <= demo.crossover
    assert small.sum() >= 3 and (~small).sum() >= 3
    assert (demo.covered_share[small] == 1).all() and (demo.covered_share[~small] < 1).all()
    # measured worst case of the max-value decoder: L R (the cone), <= eps exactly below L*
    np.testing.assert_allclose(demo.cone_error, demo.lipschitz * R, rtol=1e-9)
    assert demo.cone_error[small].max() <= eps * (1 + 1e-12)
    assert all(demo.checks().values()), demo.checks()


def test_farthest_corner_and_bad_input():
    assert farthest_corner(np.array([0.35, 0.6])).tolist() == [1.0, 0.0]
    assert farthest_corner(np.array([0.9, 0.1, 0.5])).tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(FvlabError, match="eps"):
        demonstrate_small_lipschitz(eps=0.0)
