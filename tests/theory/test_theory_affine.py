"""Affine units: ordering pairs of inputs from the arg max."""

from __future__ import annotations

import math

import pytest

from fvlab.errors import FvlabError
from fvlab.theory.affine import (
    D2_ACCURACY,
    LIMIT_ACCURACY,
    d2_accuracy_by_quadrature,
    demonstrate_affine,
    simulate_ordering,
)


@pytest.fixture(scope="module")
def demo():
    return demonstrate_affine((1, 2, 5, 10), n_pairs=8000, posterior_draws=64, seed=0)


def test_d1_every_pair_is_ordered_correctly(demo):
    row = demo.at(1)
    assert row.sum_rule.value == 1.0
    assert row.vote.value == 1.0
    assert row.best_upper.value == 1.0


@pytest.mark.parametrize("d", [2, 5, 10])
def test_best_decoder_is_below_one_for_d_at_least_2(demo, d):
    row = demo.at(d)
    # the upper estimate overestimates the best decoder on average; even its CI is below 1
    assert row.best_upper.high < 1.0
    assert row.vote.high < 1.0 and row.sum_rule.high < 1.0
    # and the decoders are far better than chance: the arg max is informative, not decisive
    assert row.vote.low > 0.7


def test_d2_matches_the_closed_form(demo):
    assert abs(d2_accuracy_by_quadrature() - D2_ACCURACY) < 1e-8
    assert D2_ACCURACY == pytest.approx(1 / 6 + math.log(2))
    row = demo.at(2)
    assert row.sum_rule.low <= D2_ACCURACY <= row.sum_rule.high
    assert abs(row.best_upper.value - D2_ACCURACY) < 0.01


def test_accuracy_falls_towards_three_quarters(demo):
    values = [demo.at(d).best_upper.value for d in (2, 5, 10)]
    assert values[0] > values[1] > values[2] > LIMIT_ACCURACY
    assert LIMIT_ACCURACY == pytest.approx(0.75)
    far = simulate_ordering(200, n_pairs=6000, posterior_draws=2, seed=1)
    assert abs(far.sum_rule.value - LIMIT_ACCURACY) < 0.02


def test_all_checks_and_determinism(demo):
    assert all(demo.checks().values()), demo.checks()
    again = simulate_ordering(5, n_pairs=8000, posterior_draws=64, seed=0)
    assert again.as_dict() == demo.at(5).as_dict()
    other = simulate_ordering(5, n_pairs=8000, posterior_draws=64, seed=1)
    assert other.as_dict() != demo.at(5).as_dict()


def test_bad_arguments_are_clear_errors():
    with pytest.raises(FvlabError, match="d >= 1"):
        simulate_ordering(0)
    with pytest.raises(FvlabError, match="was not simulated"):
        demonstrate_affine((1,), n_pairs=100, posterior_draws=2).at(3)
