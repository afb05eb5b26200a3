"""Audit thresholds from a clean reference: the rule, its file, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fvlab.check.audit import score_parts, score_units
from fvlab.check.calibration import Calibration, thresholds_from_rows
from fvlab.check.settings import AuditThresholds
from fvlab.errors import CorruptFileError, FvlabError

value = st.floats(0.0, 50.0, allow_nan=False)
row = st.fixed_dictionaries(
    {
        "excess": value,
        "jump": value,
        "gradient": st.floats(0.0, 1.0),
        "valley": value,
        "procedure": value,
        "hold": value,
        "active_fraction": st.floats(0.001, 1.0),
    }
)


def _scores(rows, thresholds):
    column = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    score, _ = score_units(column["excess"], column["jump"], column["active_fraction"],
                           thresholds, column["gradient"], column["valley"],
                           column["procedure"], column["hold"])  # fmt: skip
    return score


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=1, max_size=20), st.floats(1.0, 4.0))
def test_no_reference_unit_reaches_its_own_thresholds(rows, safety):
    """Against thresholds calibrated on it, every reference unit's signal parts are ≤ 1 / safety
    and its silence part ln(1/active)/ln(1/τ_silent) < 1 (= 1 only at safety 1), so no reference
    unit is flagged once safety > 1."""
    column = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    parts = score_parts(column["excess"], column["jump"], column["active_fraction"],
                        thresholds_from_rows(rows, safety), column["gradient"],
                        column["valley"], column["procedure"], column["hold"])  # fmt: skip
    silence = parts.pop("silent")
    assert all(np.all(part <= 1 / safety + 1e-9) for part in parts.values())
    assert np.all(silence <= 1 + 1e-9)
    if safety > 1.001:
        assert np.all(_scores(rows, thresholds_from_rows(rows, safety)) < 1)


def test_a_unit_beyond_the_reference_maximum_is_flagged():
    reference = [{"excess": e, "jump": 0.001, "gradient": 0.02, "valley": 0.5,
                  "procedure": 0.3, "hold": 1.2 * e, "active_fraction": 0.9}
                 for e in (1.0, 2.0, 4.0)]  # fmt: skip
    tau = thresholds_from_rows(reference, safety=1.5)
    assert tau.excess == pytest.approx(6.0) and tau.silent == pytest.approx(0.6)
    suspect = [{"excess": 6.4, "jump": 0.001, "gradient": 0.02, "valley": 0.5,
                "procedure": 0.3, "hold": 1.0, "active_fraction": 0.9}]  # fmt: skip
    assert _scores(suspect, tau)[0] > 1
    assert _scores([dict(suspect[0], excess=5.9)], tau)[0] < 1
    assert _scores([dict(suspect[0], excess=5.9, procedure=0.46)], tau)[0] > 1
    assert tau.hold == pytest.approx(1.5 * 4.8)  # the exemplar hold: safety × the largest too
    assert _scores([dict(suspect[0], excess=5.9, hold=7.3)], tau)[0] > 1


def test_a_reference_without_the_consistency_render_keeps_the_default_procedure_threshold():
    rows = [{"excess": 2.0, "jump": 0.0, "gradient": 0.03, "valley": 1.0,
             "procedure": float("nan"), "hold": float("nan"), "active_fraction": 0.7}]  # fmt: skip
    tau = thresholds_from_rows(rows)
    assert tau.procedure == AuditThresholds().procedure and tau.hold == AuditThresholds().hold


def test_round_trip_and_corrupt_files(tmp_path):
    rows = [{"excess": 2.0, "jump": 0.0, "gradient": 0.03, "valley": 1.0, "procedure": 0.2,
             "hold": 1.5, "active_fraction": 0.7}]  # fmt: skip
    cal = Calibration.from_rows(rows, reference="fmnist-cnn seed 1", layer="relu5")
    again = Calibration.load(cal.save(tmp_path / "thresholds.json"))
    assert again == cal and again.thresholds.jump == pytest.approx(1e-9)
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CorruptFileError, match="not an audit calibration"):
        Calibration.load(tmp_path / "bad.json")
    with pytest.raises(FvlabError, match="no file"):
        Calibration.load(tmp_path / "missing.json")
    with pytest.raises(FvlabError, match="no units"):
        thresholds_from_rows([])


def test_a_model_calibrated_on_itself_flags_nothing_and_the_file_reproduces_it(tmp_path):
    """The audit is deterministic, so the reference's own units score ≤ 1/safety against
    thresholds calibrated on them; the saved thresholds.json gives the same audit again."""
    import fvlab
    from fvlab.check.calibration import run_calibrated_audit
    from fvlab.check.settings import AuditSettings

    model = fvlab.load("fmnist-cnn")
    settings = AuditSettings(layer="relu3", units=tuple(range(6)), images=300, steps=24,
                             batch_size=64)  # fmt: skip
    first = run_calibrated_audit(model, settings, tmp_path / "a", reference=model,
                                 show_progress=False)  # fmt: skip
    assert first.flagged == [] and max(first.scores) <= 1 / 1.5 + 1e-9
    saved = Calibration.load(tmp_path / "a" / "thresholds.json")
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["settings"]["calibration"]["thresholds"] == saved.thresholds.to_dict()
    assert (tmp_path / "a" / "reference" / "audit.csv").is_file()
    again = run_calibrated_audit(model, settings, None, calibration=saved, show_progress=False)
    assert np.array_equal(again.scores, first.scores)
    with pytest.raises(FvlabError, match="exactly one"):
        run_calibrated_audit(model, settings, None, show_progress=False)
