"""The audit on fmnist-cnn: few false flags on the clean model, manipulated units separated
(a gate stand-in for the circuit, fvlab's silent units), the jump detector, the CLI."""

import csv
import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import fvlab
from fvlab.check.audit import audit, roc_auc, score_parts, score_units
from fvlab.check.interpolation import response_path
from fvlab.check.manipulations import gate_units
from fvlab.check.settings import AuditSettings, AuditThresholds
from fvlab.cli import main
from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.errors import FvlabError
from fvlab.fool.silent import silent

STEPS = 128
NATURAL = FashionMNIST("test", stop=2000)  # the audit's natural images (a shard, for speed)


def run_audit(model, units=None):
    settings = AuditSettings(layer="relu3", units=units, steps=STEPS, path_layers=["relu3"])
    return audit(model, NATURAL, settings, show_progress=False)


@pytest.fixture(scope="module")
def clean_relu3(reference_model):
    return run_audit(reference_model)


@pytest.fixture(scope="module")
def natural_images(fmnist_test):
    return torch.cat([FashionMNIST("train", stop=5000).load()[0], fmnist_test[0]])


def test_clean_model_has_few_flags(clean_relu3):
    summary = clean_relu3.summary()
    assert summary["units"] == 64
    assert summary["flagged_fraction"] <= 0.05, summary["flag_counts"]
    rows = clean_relu3.rows
    # a continuous network: no unit jumps along its exemplar → FV path
    assert max(r["jump"] for r in rows) < 1e-3
    # relu3 fires somewhere on (almost) every image for every unit
    assert min(r["active_fraction"] for r in rows) > 0.5
    assert all(np.isfinite(r["path_at_layer"]) for r in rows)


def test_gated_units_are_separated_and_flagged_as_gates(
    reference_model, clean_relu3, natural_images
):
    units = list(range(16))
    gated = gate_units(reference_model, "relu3", units, [u + 32 for u in units], natural_images)
    with torch.no_grad():  # the stand-in leaves natural behaviour unchanged
        x = natural_images[:1000]
        assert torch.equal(gated(x), reference_model(x))
    fooled = run_audit(gated, units)
    assert roc_auc(fooled.scores, clean_relu3.scores) >= 0.95
    gate_flags = sum("gate" in row["flags"] for row in fooled.rows)
    assert gate_flags >= 14, [row["jump"] for row in fooled.rows]


def test_silent_units_are_separated_and_out_of_distribution(
    reference_model, clean_relu3, natural_images
):
    # fvlab.fool.silent's pooled variant (docs/fool.md), the branch silent on natural_images
    units = list(range(0, 64, 4))
    result = silent(
        reference_model, "conv3", "relu4:0", natural_images, units=units, lam=10.0,
        pooling="mean", direction_objective="contrast", target_steps=128, batch_size=1000,
        show_progress=False,
    )  # fmt: skip
    with torch.no_grad():
        x = natural_images[:1000]
        assert torch.equal(result.model(x), reference_model(x))
    fooled = run_audit(result.model, units)
    with torch.no_grad(), fvlab.capture(result.model, ["fvlab_silent.relu"]) as cap:
        result.model(fooled.fv_images)  # the audit's own FVs: does each unit's branch fire?
        branch = cap["fvlab_silent.relu"].flatten(2).amax(2)
    fires = branch[torch.arange(len(units)), torch.arange(len(units))] > 0
    assert int(fires.sum()) >= 12, fires  # the branch owns (almost) every unit's FV
    assert roc_auc(fooled.scores, clean_relu3.scores) >= 0.95
    taken_over = [row for row, fired in zip(fooled.rows, fires.tolist(), strict=True) if fired]
    flagged = sum("out_of_distribution" in row["flags"] for row in taken_over)
    assert flagged >= 0.8 * len(taken_over), [row["excess"] for row in taken_over]  # 14 of 16


class _Ramp(nn.Module):
    """out[b, 0] = mean(x) + step · [mean(x) > 0.3]; out[b, 1] = 2 · mean(x)."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step
        self.head = nn.Identity()

    def forward(self, x):
        m = x.flatten(1).mean(1)
        return self.head(torch.stack([m + self.step * (m > 0.3).float(), 2 * m], 1))


def test_bisection_finds_a_jump_and_ignores_slopes():
    spec = fvlab.InputSpec(channels=1, size=8)
    start, end = torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8)
    gated = fvlab.from_module(_Ramp(step=0.5), spec)
    result = response_path(gated, "head", [0, 1], start, end, bisections=14)
    assert result.jump[0] == pytest.approx(0.5, abs=1e-3)
    assert result.jump_at[0] == pytest.approx(0.3, abs=1e-3)
    assert result.jump[1] < 1e-4  # slope 2 over an interval of width 2^-18
    assert result.non_monotonicity.abs().max() < 1e-9
    smooth = fvlab.from_module(_Ramp(step=0.0), spec)
    assert response_path(smooth, "head", [0], start[:1], end[:1]).jump[0] < 1e-4


def test_response_path_runs_one_batch_of_path_images_at_a_time(reference_model):
    """units × grid path images are mixed batch_size at a time: the model never sees a larger
    batch, and the result is the one of a single large batch."""
    generator = torch.Generator().manual_seed(0)
    start, end = (
        torch.rand(6, 1, 28, 28, generator=generator),
        torch.rand(6, 1, 28, 28, generator=generator),
    )
    seen = []
    hook = reference_model.module.register_forward_pre_hook(lambda _, x: seen.append(len(x[0])))
    try:
        small = response_path(reference_model, "relu3", range(6), start, end, batch_size=8)
    finally:
        hook.remove()
    assert max(seen) == 8 and sum(seen) == 6 * 17 + 12 * 6 * 3  # grid, then 12 bisections
    large = response_path(reference_model, "relu3", range(6), start, end, batch_size=1024)
    torch.testing.assert_close(small.response, large.response, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(small.jump, large.jump, rtol=1e-4, atol=1e-6)


def test_scores_and_thresholds():
    thresholds = AuditThresholds(excess=10, jump=0.1, silent=0.01)
    score, flags = score_units(
        np.array([2.0, 30.0, 1.0, 1.0]),
        np.array([0.0, 0.0, 0.5, 0.0]),
        np.array([1.0, 1.0, 1.0, 0.0]),
        thresholds,
    )
    assert score[0] == pytest.approx(0.2) and flags[0] == []
    assert flags[1] == ["out_of_distribution"] and flags[2] == ["gate"]
    assert flags[3] == ["silent"]
    assert roc_auc([3, 4], [1, 2]) == 1.0 and roc_auc([1], [1]) == 0.5
    with pytest.raises(FvlabError, match="positive"):
        AuditThresholds(jump=0)
    with pytest.raises(FvlabError, match="must be < 1"):
        AuditThresholds(silent=1.0)


@given(st.floats(1e-6, 0.999), st.floats(0.0, 50.0))
def test_silence_part_is_zero_for_an_always_active_unit_and_one_at_the_threshold(tau, excess):
    """A calibrated silence threshold near 1 (a clean reference's least active unit / 1.5) must
    not put a floor under the score of units active on every image: their score is their other
    signals alone."""
    thresholds = AuditThresholds(excess=10, jump=0.1, silent=tau)
    parts = score_parts(np.array([excess, 0.0]), np.zeros(2), np.array([1.0, tau]), thresholds)
    assert parts["silent"][0] == 0.0 and parts["silent"][1] == pytest.approx(1.0)
    score, _ = score_units(np.array([excess]), np.zeros(1), np.ones(1), thresholds)
    assert score[0] == pytest.approx(excess / 10)


def test_cli_writes_table_html_and_summary(tmp_path):
    out = tmp_path / "audit"
    main(["audit", "--layer", "fc", "--steps", "16", "--images", "600", "--top-k", "3",
          "--out", str(out), "-q"])  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["units"] == 10 and summary["layer"] == "fc"
    assert summary["settings"]["natural_images"] == 600
    with open(out / "audit.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["unit"]) for r in rows] == list(range(10))
    assert {"score", "excess", "jump", "active_fraction", "path_at_layer"} <= set(rows[0])
    page = (out / "audit.html").read_text()
    assert page.count("<tr") == 11 and "data:image/png;base64," in page


def test_cli_errors(tmp_path, capsys):
    for args, message in [
        (["--layer", "relu33"], "closest valid names"),
        (["--layer", "fc", "--units", "12"], "has 10 units"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["audit", "--steps", "1", "--images", "100", "--out", str(tmp_path), *args])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
