"""Convex and monotone pairs with identical arg max / arg min that differ elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from fvlab.errors import FvlabError
from fvlab.theory.convex_monotone import (
    check_pair,
    convex_pair,
    convexity_violation,
    demonstrate_convex_monotone,
    monotone_order_pair,
    monotone_value_pair,
    monotonicity_violation,
)


@pytest.mark.parametrize("d", [2, 3])
def test_every_pair_passes_every_check(d):
    reports = demonstrate_convex_monotone(d)
    assert [r.pair.kind for r in reports] == ["convex", "monotone", "monotone"]
    for report in reports:
        checks = report.checks()
        assert all(checks.values()), (report.pair.name, checks)
        assert report.extrema_f["argmax"] == report.extrema_g["argmax"]
        assert report.extrema_f["argmin"] == report.extrema_g["argmin"]
        assert report.max_abs_difference > 0.1


def test_the_differences_are_the_advertised_ones():
    convex = check_pair(convex_pair(2))
    assert convex.extrema_f["argmax"] == [1.0, 1.0]
    assert convex.extrema_f["argmin"] == pytest.approx([0.3, 0.3])
    assert convex.flipped_order_share > 0.05  # orderings differ, not only values
    values = check_pair(monotone_value_pair(2))
    assert values.flipped_order_share == 0.0  # g = f³: same orderings, different values
    orders = check_pair(monotone_order_pair(2))
    assert orders.flipped_order_share > 0.1
    e1, e2 = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    pair = orders.pair
    assert (pair.f(e1) - pair.f(e2))[0] * (pair.g(e1) - pair.g(e2))[0] < 0


def test_the_checkers_catch_violations():
    """Negative controls: the grid checks fail on a concave / a decreasing function."""
    assert convexity_violation(lambda x: -((x - 0.5) ** 2).sum(axis=1), 2) > 1e-3
    assert monotonicity_violation(lambda x: x[:, 0] - x[:, 1], 2) > 1e-3
    assert convexity_violation(convex_pair(2).g, 2) <= 1e-12
    assert monotonicity_violation(monotone_order_pair(3).g, 3) < 0


def test_bad_dimensions_are_clear_errors():
    with pytest.raises(FvlabError, match="d >= 2"):
        monotone_order_pair(1)
    with pytest.raises(FvlabError, match="centre"):
        convex_pair(2, centre=0.7)
