"""The joint-tail rule (fvlab/check/joint_tail.py): its cut never flags more than the rate of
the calibration units, its p-values are ranks with the unit itself left out, and a unit in the
tail of every chosen direction at once is flagged while one in the tail of a single one is not."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fvlab.check.joint_tail import JointTail, fisher, flag_cut, select_directions, tail_p

values = arrays(
    np.float64, st.integers(1, 80), elements=st.floats(-5, 5).map(lambda v: round(v, 1))
)


@settings(max_examples=200, deadline=None)
@given(values, st.sampled_from([0.01, 0.05, 0.1, 0.5]))
def test_the_flag_cut_flags_at_most_the_rate_and_is_the_loosest_such(v, rate):
    cut = flag_cut(v, rate)
    allowed = int(np.floor(rate * len(v)))
    assert (v >= cut).sum() <= allowed
    lower = v[v < cut]
    if lower.size:  # the next value down would flag too many
        assert (v >= lower.max()).sum() > allowed


@settings(max_examples=100, deadline=None)
@given(values)
def test_leave_one_out_p_is_the_p_against_the_others(v):
    p = tail_p(v, v, leave_one_out=True)
    for i in range(len(v)):
        others = np.delete(v, i)
        expected = (1 + (others >= v[i]).sum()) / (len(others) + 1)
        assert p[i] == pytest.approx(expected)
    assert np.all((p > 0) & (p <= 1))


def _rows(hold, gradient):
    return [{"hold": h, "gradient": g} for h, g in zip(hold, gradient, strict=True)]


def test_a_unit_in_both_tails_is_flagged_and_one_in_a_single_tail_is_not():
    rng = np.random.default_rng(0)
    calibration = _rows(rng.normal(1.5, 0.3, 64), rng.lognormal(-4.3, 0.4, 64))
    cal_scores = rng.uniform(0, 0.6, 64)  # the audit's own score: nothing flagged by it
    rule = JointTail(calibration, cal_scores, ("hold", "-gradient"))
    assert (rule.calibration_values() >= 1).mean() <= 0.05
    hold_max = max(r["hold"] for r in calibration)
    gradient_min = min(r["gradient"] for r in calibration)
    gradient_median = float(np.median([r["gradient"] for r in calibration]))
    both = _rows([hold_max * 0.99], [gradient_min * 1.01])  # second-most extreme on each
    one = _rows([hold_max * 1.5], [gradient_median])  # beyond every clean hold, typical path
    assert rule(both, np.array([0.3]))[0] >= 1
    assert rule(one, np.array([0.3]))[0] < 1
    # the audit's own flag survives the union: a score past every calibration score
    assert rule(one, np.array([cal_scores.max() * 1.01]))[0] >= 1
    assert fisher(calibration, both, ()).tolist() == [0.0]


def test_direction_choice_prefers_what_flags_the_positives():
    rng = np.random.default_rng(1)
    calibration = _rows(rng.normal(1.5, 0.3, 64), rng.lognormal(-4.3, 0.4, 64))
    cal_scores = rng.uniform(0, 0.6, 64)
    smooth = _rows(rng.normal(1.5, 0.3, 8), np.full(8, 1e-4))  # only "-gradient" is unusual
    chosen, tpr = select_directions(calibration, cal_scores, {"smooth": (smooth, np.zeros(8))},
                                    candidates=("hold", "-gradient"))  # fmt: skip
    assert chosen == ("-gradient",) and tpr == {"smooth": 1.0}
    with pytest.raises(ValueError, match="at least one family"):
        select_directions(calibration, cal_scores, {})
    with pytest.raises(ValueError, match="'hold' is missing"):
        JointTail(_rows([np.nan] * 4, [1.0] * 4), np.zeros(4), ("hold",))
