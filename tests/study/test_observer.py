"""The machine observer: α by maximum likelihood, decision variables on a hand-built study."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit

from fvlab.errors import FvlabError
from fvlab.report.images import save_png
from fvlab.study.observer import (
    decision_variables,
    fit_alpha,
    observer_accuracy,
    p_correct,
    per_unit_score,
)


@pytest.mark.parametrize("alpha", [40.0, -15.0, 3.0])
def test_fit_alpha_recovers_a_known_alpha(alpha):
    rng = np.random.default_rng(7)
    dv = rng.normal(0, 0.05, 40_000)
    correct = rng.random(dv.size) < expit(alpha * dv)
    fitted = fit_alpha(dv, correct)
    # standard error from the Fisher information Σ p(1−p) dv²
    p = expit(alpha * dv)
    se = 1 / np.sqrt(np.sum(p * (1 - p) * dv**2))
    assert abs(fitted - alpha) < 4 * se
    assert se < 0.1 * max(abs(alpha), 10)  # the test has power


def test_fit_alpha_separable_and_bad_input():
    dv = np.array([-0.2, -0.1, 0.1, 0.3])
    fitted = fit_alpha(dv, dv > 0)  # perfectly separable: α at the search bound, finite
    assert fitted > 0 and np.isfinite(fitted)
    p = p_correct(dv, fitted)
    assert np.where(dv > 0, p, 1 - p).min() > 0.99  # every observed answer is near certain
    with pytest.raises(FvlabError, match="equally long"):
        fit_alpha([0.1, 0.2], [True])
    with pytest.raises(FvlabError, match="0/1"):
        fit_alpha([0.1, 0.2], [0.5, 1])
    with pytest.raises(FvlabError, match="not identifiable"):
        fit_alpha([0.0, 0.0], [1, 0])


def test_p_correct_and_per_unit_score():
    dv = [0.5, -0.5, 0.0, 1.0]
    assert p_correct(dv, None).tolist() == [1.0, 0.0, 0.5, 1.0]
    assert p_correct(dv, 2.0) == pytest.approx(expit(2.0 * np.array(dv)))
    scores = per_unit_score(["a", "a", "b", "b"], dv, 2.0)
    assert scores["a"] == pytest.approx(0.5)  # σ(1) + σ(−1) = 1
    assert scores["b"] == pytest.approx((0.5 + expit(2.0)) / 2)


@pytest.fixture(scope="module")
def hand_study(tmp_path_factory, fmnist_test):
    """Two image sets whose references are copies of one occluded image: set 0's references
    equal occluded_max (the observer must favour max), set 1's equal occluded_min."""
    root = tmp_path_factory.mktemp("hand-study")
    images = fmnist_test[0]
    trouser, bag, boot = images[2], images[18], images[0]  # labels 1, 8, 9 (distinct)
    sets = []
    for i, (top, bottom, reference) in enumerate([(trouser, bag, trouser), (boot, bag, bag)]):
        base = f"images/bn3_1/set{i}"
        paths = {k: f"{base}/{k}.png" for k in ("query", "occluded_max", "occluded_min")}
        save_png(top, root / paths["query"])  # the query looks like the max occlusion
        save_png(top, root / paths["occluded_max"])
        save_png(bottom, root / paths["occluded_min"])
        refs = [f"{base}/ref_{j}.png" for j in range(3)]
        for rel in refs:
            save_png(reference, root / rel)
        sets.append(
            {
                "set_id": f"bn3:1:{i}",
                **paths,
                "activation": {"query": 0.0, "max": 0.0, "min": -1.0},
                "occluder": {"max": [0, 0], "min": [8, 8], "size": 11},
                "references": {
                    "synthetic": refs,
                    "natural": refs,
                    "mixed": refs,
                    "blur": refs,
                    "none": [],
                },
            }
        )
    manifest = {
        "format": "fvlab-study",
        "version": 1,
        "model": "fmnist-cnn",
        "weights": "embedded",
        "image_size": 28,
        "channels": 1,
        "occluder_px": 11,
        "stride": 2,
        "seed": 0,
        "conditions": ["synthetic", "natural", "mixed", "blur", "none"],
        "units": [
            {"unit_id": "bn3:1", "layer": "bn3", "unit": 1, "kind": "main", "image_sets": sets}
        ],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_decision_variable_favours_the_image_like_the_references(hand_study, reference_model):
    trials = decision_variables(hand_study, "natural", loaded=reference_model)
    assert trials.set_ids == ["bn3:1:0", "bn3:1:1"]
    assert trials.dv[0] > 0.05 and trials.dv[1] < -0.05
    # a conv feature space (flattened with positions) agrees in sign
    conv = decision_variables(hand_study, "natural", loaded=reference_model, feature_layer="bn4")
    assert np.sign(conv.dv).tolist() == [1.0, -1.0]


def test_none_condition_compares_with_the_query(hand_study, reference_model):
    trials = decision_variables(hand_study, "none", loaded=reference_model)
    # the query equals occluded_max in both sets: dv = 1 − cos(max, min) > 0
    assert (trials.dv > 0.05).all()


def test_observer_accuracy_fixed_fitted_and_deterministic(hand_study, reference_model):
    fixed = observer_accuracy(hand_study, "natural", alpha=10.0, loaded=reference_model)
    dv = decision_variables(hand_study, "natural", loaded=reference_model).dv
    assert fixed["accuracy"] == pytest.approx(float(np.mean(expit(10.0 * dv))))
    assert fixed["accuracy_deterministic"] == 0.5
    assert fixed["n_sets"] == 2 and set(fixed["per_unit"]) == {"bn3:1"}
    json.dumps(fixed)
    answers = {"bn3:1:0": [True, True, True, False], "bn3:1:1": [False, False, True, False]}
    fitted = observer_accuracy(hand_study, "natural", fit_to=answers, loaded=reference_model)
    assert fitted["alpha"] == pytest.approx(
        fit_alpha(np.repeat(dv, 4), [a for v in answers.values() for a in v])
    )
    assert fitted["alpha"] > 0
    with pytest.raises(FvlabError, match="not in the study"):
        observer_accuracy(hand_study, "natural", fit_to={"bn9:0:0": [True]}, loaded=reference_model)
    with pytest.raises(FvlabError, match="unknown condition"):
        observer_accuracy(hand_study, "pictures", loaded=reference_model)
