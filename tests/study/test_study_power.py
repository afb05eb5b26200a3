"""Power analysis: the normal approximation agrees with simulation, α holds, errors are clear."""

from __future__ import annotations

import json

import pytest

from fvlab.cli import main as fvlab_main
from fvlab.errors import FvlabError
from fvlab.study.power import PowerSettings, participants_needed, run_power, simulated_power


def test_analytic_sample_size_reaches_the_target_power_in_simulation():
    # The paper's contrast: FVs 68 % vs no references 60 %, 18 trials per participant.
    n = participants_needed(PowerSettings(0.68, 0.60, n_trials=18, sd=0.0))
    assert 25 <= n <= 40
    design = PowerSettings(0.68, 0.60, 18, sd=0.0, n_sims=4000, seed=1)
    assert simulated_power(design, n) == pytest.approx(0.8, abs=0.04)
    # Doubling the difference needs about a quarter of the participants.
    assert participants_needed(PowerSettings(0.76, 0.60, sd=0.0)) <= n / 3


def test_false_positive_rate_is_alpha_when_there_is_no_difference():
    design = PowerSettings(0.65, 0.65, 18, sd=0.05, alpha=0.05, n_sims=6000, seed=2)
    rate = simulated_power(design, 40)
    assert rate == pytest.approx(0.05, abs=0.012)


def test_simulated_sample_size_is_the_smallest_with_enough_power():
    design = PowerSettings(0.70, 0.60, n_trials=18, sd=0.05, n_sims=1500, seed=3)
    result = run_power(design.replace(exclusion_rate=0.2)).summary()
    n = result["n_simulated"]
    assert simulated_power(design, n) >= 0.8
    assert simulated_power(design, n - 1) < 0.8
    assert result["n_to_recruit"] == -(-n * 10 // 8)  # ceil(n / 0.8)
    assert abs(result["n_analytic"] - n) <= 0.2 * n
    powers = [point["power"] for point in result["curve"]]
    assert powers == sorted(powers) and powers[0] < 0.8 < powers[-1]
    # Differences between participants cost participants.
    assert result["n_analytic"] > participants_needed(PowerSettings(0.70, 0.60, 18, sd=0.0))


def test_bad_power_questions_are_clear_errors():
    with pytest.raises(FvlabError, match="no difference"):
        participants_needed(PowerSettings(0.6, 0.6))
    with pytest.raises(FvlabError, match="in \\(0, 1\\)"):
        participants_needed(PowerSettings(1.2, 0.6))
    with pytest.raises(FvlabError, match="too large"):
        participants_needed(PowerSettings(0.7, 0.6, sd=0.5))
    with pytest.raises(FvlabError, match="exclusion rate"):
        run_power(PowerSettings(0.7, 0.6, exclusion_rate=1.0))


def test_power_command(tmp_path, capsys):
    fvlab_main(
        [
            "study",
            "power",
            "--p1",
            "0.7",
            "--p2",
            "0.6",
            "--participant-sd",
            "0",
            "--sims",
            "800",
            "--out",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert f"{summary['n_simulated']} participants per condition" in printed
    assert summary["n_analytic"] == participants_needed(PowerSettings(0.7, 0.6, 18, 0.0))
