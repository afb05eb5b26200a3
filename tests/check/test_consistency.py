"""Procedure consistency (fvlab.check.consistency) on fmnist-cnn's relu3: the maths on real FVs,
and that the audit reports it and scores it."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fvlab
from fvlab.check.consistency import RATIO_FLOOR, layer_vectors, procedure_consistency

UNITS = [0, 5, 9, 33]


@pytest.fixture(scope="module")
def fvs(reference_model):
    fft = fvlab.render(reference_model, "relu3", UNITS, steps=48, seed=0, relu_redirect_steps=16,
                        show_progress=False)  # fmt: skip
    pixel = fvlab.render(reference_model, "relu3", UNITS, steps=48, seed=1, param="pixel",
                         relu_redirect_steps=16, show_progress=False)  # fmt: skip
    return fft.images, pixel.images


def test_the_same_fv_twice_agrees_exactly(reference_model, fvs):
    fft, _ = fvs
    c = procedure_consistency(reference_model, "relu3", UNITS, fft, fft, np.ones(len(UNITS)))
    assert np.allclose(c.ratio, 1.0) and np.allclose(c.angle, 0.0, atol=2e-4)
    assert np.allclose(c.procedure, c.angle)


def test_the_signal_is_symmetric_and_made_of_its_parts(reference_model, fvs):
    fft, pixel = fvs
    spread = np.full(len(UNITS), 0.5)
    ab = procedure_consistency(reference_model, "relu3", UNITS, fft, pixel, spread)
    ba = procedure_consistency(reference_model, "relu3", UNITS, pixel, fft, spread)
    assert np.allclose(ab.ratio * ba.ratio, 1.0) and np.allclose(ab.angle, ba.angle, atol=1e-6)
    assert np.allclose(ab.procedure, np.maximum(np.abs(np.log(ab.ratio)), ab.angle))
    vectors = layer_vectors(reference_model, "relu3", fft, 2)  # batches of 2 = one batch
    assert torch.allclose(vectors, layer_vectors(reference_model, "relu3", fft, 64))
    unit_values = vectors[torch.arange(len(UNITS)), torch.as_tensor(UNITS)]
    assert torch.all(unit_values > 0)  # the FVs drive their units


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 2.0), st.floats(0.01, 10.0))
def test_a_dimmed_copy_gives_the_log_ratio_or_the_floor(scale, spread):
    """A layer vector scaled by s (same direction) has angle 0 and ratio s, floored at
    RATIO_FLOOR × spread: checked with a linear 'layer' where scaling the input scales v."""
    from fvlab.models.spec import InputSpec
    from fvlab.models.zoo import LoadedModel

    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Identity())
    model = LoadedModel("linear", module, InputSpec(channels=1, size=2))
    layer = "1"
    x = torch.tensor([[[[0.5, 0.25], [1.0, 0.75]]]])
    c = procedure_consistency(model, layer, [2], x, scale * x, np.array([spread]))
    floor = RATIO_FLOOR * spread
    expected = max(scale, floor) / max(1.0, floor)
    assert c.ratio[0] == pytest.approx(expected, rel=1e-6)
    # float32 resolves |ln ratio| only to ~1e-7 absolute: a ratio within 1e-4 of 1 needs abs
    assert c.procedure[0] == pytest.approx(
        max(abs(np.log(expected)), c.angle[0]), rel=1e-5, abs=1e-6
    )


def test_the_audit_scores_procedure_consistency_only_when_asked(reference_model):
    from fvlab.check.audit import audit
    from fvlab.check.settings import AuditSettings, AuditThresholds
    from fvlab.data.fashion_mnist import FashionMNIST

    natural = FashionMNIST("test", stop=300)
    base = AuditSettings(layer="relu3", units=tuple(UNITS), steps=24, path_layers=["relu3"])
    off = audit(reference_model, natural, base, show_progress=False)
    assert all(np.isnan(row["procedure"]) for row in off.rows)
    assert all("procedure" not in row["flags"] for row in off.rows)
    strict = AuditThresholds(procedure=1e-6)  # every disagreement flags
    on = audit(reference_model, natural, base.replace(consistency_param="pixel",
               thresholds=strict), show_progress=False)  # fmt: skip
    values = np.array([row["procedure"] for row in on.rows])
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert all("procedure" in row["flags"] for row in on.rows)
    # the other signals do not depend on the extra render
    for a, b in zip(off.rows, on.rows, strict=True):
        assert a["excess"] == b["excess"] and a["jump"] == b["jump"]
