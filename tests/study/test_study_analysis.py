"""Analysis on hand-made answer tables: exclusions, intervals, tests, κ, layers, confidence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fvlab.errors import FvlabError
from fvlab.study.analysis import ExclusionCriteria, analyse, cohen_kappa, mean_and_intervals


def person(pid, condition, instructions_s=30, total_s=300, attempts=1, passed=True):
    return {
        "participant_id": pid,
        "condition": condition,
        "created_unix": 1000.0,
        "submitted_unix": 1000.0 + total_s,  # the server's clock
        "instructions_ms": instructions_s * 1000,
        "total_ms": total_s * 1000,
        "practice_attempts": attempts,
        "practice_passed": passed,
    }


def answers(pid, condition, correct, kind="main", layer="bn3", confidence=2, sides=None):
    rows = []
    for k, ok in enumerate(correct):
        side = (sides or ["left", "right"])[k % len(sides or ["left", "right"])]
        rows.append(
            {
                "participant_id": pid,
                "trial_id": f"{pid}-{kind[0]}{k}",
                "kind": kind,
                "condition": condition,
                "layer": layer,
                "set_id": f"{layer}:{k}",
                "correct": bool(ok),
                "chosen_side": side,
                "confidence": confidence,
                "rt_ms": 1000.0,
            }
        )
    return rows


def test_each_exclusion_criterion():
    people, rows = [], []
    cases = {
        "ok": {},
        "catch": {},
        "instructions_time": {"instructions_s": 10},
        "total_time": {"total_s": 1000},
        "practice": {"attempts": 5, "passed": False},
        "one_side": {},
    }
    for pid, kwargs in cases.items():
        people.append(person(pid, "natural", **kwargs))
        rows += answers(pid, "natural", [1, 0, 1, 1], sides=["left"] if pid == "one_side" else None)
        rows += answers(pid, "natural", [1, 0, 0] if pid == "catch" else [1, 1, 0], kind="catch")
    people.append({**person("unsubmitted", "natural"), "submitted_unix": None})
    result = analyse(people, rows, ["natural"])
    table = {p["participant_id"]: p["exclusion_reasons"] for p in result["participant_table"]}
    assert table == {pid: ([] if pid == "ok" else [pid]) for pid in cases}
    assert result["participants"]["included"] == 1 and result["participants"]["submitted"] == 6
    relaxed = ExclusionCriteria(
        min_catch_fraction=0.3, min_instructions_s=5, max_total_s=2000, require_both_sides=False
    )
    assert analyse(people, rows, ["natural"], relaxed)["participants"]["included"] == 5
    with pytest.raises(FvlabError, match="window is empty"):
        ExclusionCriteria(min_total_s=100, max_total_s=50)


def test_condition_statistics_match_their_definitions():
    rng = np.random.default_rng(0)
    people, rows, accs = [], [], []
    for i in range(30):
        correct = rng.random(18) < 0.7
        accs.append(correct.mean())
        people.append(person(f"s{i}", "synthetic"))
        rows += answers(
            f"s{i}", "synthetic", correct, layer=["bn3", "bn4"][i % 2], confidence=1 + i % 3
        )
    result = analyse(people, rows, ["synthetic"], seed=1, n_resamples=2000)
    entry = result["conditions"]["synthetic"]
    accs = np.array(accs)
    sem = accs.std(ddof=1) / math.sqrt(30)
    assert entry["mean"] == pytest.approx(accs.mean())
    assert entry["two_sem"] == pytest.approx([accs.mean() - 2 * sem, accs.mean() + 2 * sem])
    low, high = entry["bootstrap_ci95"]
    assert low < accs.mean() < high and (high - low) == pytest.approx(3.92 * sem, rel=0.2)
    k = int(sum(r["correct"] for r in rows))
    assert entry["trials"] == 540 and entry["trials_correct"] == k
    assert entry["binomial_vs_chance_p"] == pytest.approx(stats.binomtest(k, 540).pvalue)
    layers = entry["by_layer"]
    assert layers["bn3"]["participants"] == layers["bn4"]["participants"] == 15
    assert layers["bn3"]["mean"] == pytest.approx(accs[::2].mean())
    shares = [entry["by_confidence"][c]["share"] for c in "123"]
    assert shares == pytest.approx([1 / 3] * 3)


def test_cohen_kappa_values():
    assert cohen_kappa(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])) == pytest.approx(0.5)
    assert cohen_kappa(np.array([1, 0, 1, 0]), np.array([1, 0, 1, 0])) == pytest.approx(1.0)
    assert cohen_kappa(np.array([1, 0, 1, 0]), np.array([0, 1, 0, 1])) == pytest.approx(-1.0)
    assert cohen_kappa(np.array([1, 1]), np.array([1, 1])) is None  # chance agreement is 1
    with pytest.raises(FvlabError, match="equally long"):
        cohen_kappa(np.array([1]), np.array([1, 0]))


def test_kappa_and_baselines_are_scored_on_the_same_image_sets():
    people, rows = [], []
    truth = [1, 1, 0, 0, 1, 0, 1, 0]  # which image sets every participant gets right
    for condition in ("natural", "none"):
        for i in range(4):
            pid = f"{condition}{i}"
            people.append(person(pid, condition))
            flipped = truth if condition == "natural" else [1 - t for t in truth]
            rows += answers(pid, condition, flipped)
    baseline = {f"bn3:{k}": bool(t) for k, t in enumerate(truth)}
    result = analyse(people, rows, ["natural", "none"], baselines={"center": baseline})
    pairs = result["kappa"]["pairs"]
    assert pairs["natural"]["center"]["kappa"] == pytest.approx(1.0)
    assert pairs["natural"]["none"]["kappa"] == pytest.approx(-1.0)
    assert pairs["natural"]["none"]["image_sets"] == 8
    assert result["conditions"]["natural"]["baselines"]["center"]["mean"] == pytest.approx(0.5)
    assert result["baselines"]["center"]["accuracy_over_image_sets"] == pytest.approx(0.5)
    # Between participants (P2's κ): within a condition they agree fully, across they disagree.
    by_pair = result["participant_kappa"]["conditions"]
    assert by_pair["natural"]["natural"] == {"mean_kappa": 1.0, "pairs": 6, "undefined_pairs": 0}
    assert by_pair["natural"]["none"]["mean_kappa"] == pytest.approx(-1.0)
    assert by_pair["natural"]["none"]["pairs"] == by_pair["none"]["natural"]["pairs"] == 16


def test_participant_kappa_against_a_direct_computation():
    rng = np.random.default_rng(4)
    people, rows = [], []
    for i in range(6):
        pid, condition = f"q{i}", ["synthetic", "blur"][i % 2]
        people.append(person(pid, condition))
        rows += answers(pid, condition, rng.random(12) < 0.6)
    result = analyse(people, rows, ["synthetic", "blur"])
    correct = {pid: [r["correct"] for r in rows if r["participant_id"] == pid] for pid in
               [p["participant_id"] for p in people]}  # fmt: skip
    cross = [
        cohen_kappa(np.array(correct[a]), np.array(correct[b]))
        for a in ("q0", "q2", "q4")
        for b in ("q1", "q3", "q5")
    ]
    defined = [k for k in cross if k is not None]
    entry = result["participant_kappa"]["conditions"]["synthetic"]["blur"]
    assert entry["pairs"] == len(defined) and entry["undefined_pairs"] == 9 - len(defined)
    assert entry["mean_kappa"] == pytest.approx(np.mean(defined))


def test_a_bot_that_submits_seconds_after_enrolling_is_excluded():
    """Exclusions use the server's clock: a script claiming 149 s (and 20 s of instructions)
    that submitted 2 s after enrolling is out, however good its answers."""
    bot = {**person("bot", "natural", instructions_s=20, total_s=149)}
    bot["submitted_unix"] = bot["created_unix"] + 2.0
    human = person("human", "natural", instructions_s=20, total_s=149)
    rows = answers("bot", "natural", [1] * 18) + answers("human", "natural", [1, 0] * 9)
    for pid in ("bot", "human"):
        rows += answers(pid, "natural", [1, 1, 1], kind="catch")
    table = {
        p["participant_id"]: p
        for p in analyse([bot, human], rows, ["natural"])["participant_table"]
    }
    assert table["bot"]["exclusion_reasons"] == ["instructions_time", "total_time"]
    assert table["bot"]["total_s"] == 2.0 and table["bot"]["reported_total_s"] == 149.0
    assert table["bot"]["instructions_s"] == 2.0  # capped at the server's total
    assert table["human"]["included"]


def test_time_windows_per_condition_follow_p2():
    """none: 40–900 s and instructions ≥ 15 s; the others: 90–900 s and ≥ 20 s."""
    people, rows = [], []
    for condition in ("none", "synthetic"):
        for total, instructions in ((50, 16), (95, 21), (950, 30)):
            pid = f"{condition}-{total}"
            people.append(person(pid, condition, instructions_s=instructions, total_s=total))
            rows += answers(pid, condition, [1, 0, 1, 1])
    table = {
        p["participant_id"]: p["exclusion_reasons"]
        for p in analyse(people, rows, ["none", "synthetic"])["participant_table"]
    }
    assert table == {
        "none-50": [],
        "none-95": [],
        "none-950": ["total_time"],
        "synthetic-50": ["instructions_time", "total_time"],
        "synthetic-95": [],
        "synthetic-950": ["total_time"],
    }


def test_mean_and_intervals_edge_cases():
    assert mean_and_intervals(np.array([0.7]))["two_sem"] is None
    same = mean_and_intervals(np.array([0.5, 0.5, 0.5]))
    assert same["bootstrap_ci95"] == [0.5, 0.5] and same["sem"] == 0
