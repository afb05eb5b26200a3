"""200 simulated participants over 20 concurrent connections against the real server: each
submission is stored exactly once, and the analysis recovers the simulated accuracies."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from fvlab.cli import main as fvlab_main
from fvlab.errors import FvlabError
from fvlab.study.simulate import ObserverModel, parse_accuracy, simulate_participants

ACCURACY = {"synthetic": 0.80, "natural": 0.70, "mixed": 0.72, "blur": 0.66, "none": 0.55}


def _main_sets(study):
    manifest = json.loads((study / "manifest.json").read_text())
    return [s for u in manifest["units"] if u["kind"] == "main" for s in u["image_sets"]]


def _lower_variance_is_max(study, image_set) -> bool:
    query = np.asarray(Image.open(study / image_set["query"]), dtype=float)
    side = image_set["occluder"]["size"]
    (ay, ax), (by, bx) = image_set["occluder"]["max"], image_set["occluder"]["min"]
    return query[ay : ay + side, ax : ax + side].var() < query[by : by + side, bx : bx + side].var()


def test_parse_accuracy():
    got = parse_accuracy("synthetic=0.8, none=0.55")
    assert got["synthetic"] == 0.8 and got["none"] == 0.55 and got["natural"] == 0.67
    for bad in ("synthetic", "fancy=0.5", "none=1.5", "none=x"):
        with pytest.raises(FvlabError, match="CONDITION=P"):
            parse_accuracy(bad)


def test_200_participants_stored_once_and_accuracies_recovered(
    tiny_study, tmp_path, server_factory
):
    db = tmp_path / "sim.sqlite"
    server = server_factory(tiny_study, db)
    outcomes = simulate_participants(
        server.url,
        200,
        server.admin_token,
        ObserverModel(ACCURACY),
        seed=11,
        concurrency=20,
        timeout_s=180,
        show_progress=False,
    )
    assert [o.status for o in outcomes] == ["stored"] * 200
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        people = [dict(r) for r in conn.execute("SELECT * FROM participants")]
        n_rows = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
        distinct = conn.execute(
            "SELECT count(*) FROM (SELECT DISTINCT participant_id, trial_id, attempt "
            "FROM responses)"
        ).fetchone()[0]
    assert len(people) == 200 and all(p["submitted_unix"] for p in people)
    sent = {o.participant_id: o.submission for o in outcomes}
    assert len(sent) == 200
    for p in people:
        assert json.loads(p["submission_json"]) == {
            **sent[p["participant_id"]],
            "jspsych_data": None,
        }
    assert n_rows == distinct == sum(len(s["responses"]) for s in sent.values())

    out = tmp_path / "analysis"
    fvlab_main(
        [
            "study",
            "analyze",
            str(tiny_study),
            "--db",
            str(db),
            "--out",
            str(out),
            "--quiet",
            # simulated participants take milliseconds by the server's clock: no time criteria
            "--min-total-s",
            "0",
            "--none-min-total-s",
            "0",
            "--min-instructions-s",
            "0",
            "--none-min-instructions-s",
            "0",
        ]
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["participants"]["submitted"] == 200
    assert summary["participants"]["included"] >= 190  # catch 95 %, practice 90 %: few excluded
    for condition, p in ACCURACY.items():
        entry = summary["conditions"][condition]
        assert entry["n"] >= 36
        # The server draws each participant's sides and order from OS entropy, so which draws
        # land in which condition differs between runs: the estimates are random. Five 95 %
        # intervals all covering their p fail in about one run of five; "within 4 SEM of p" fails
        # for any of the five in about 3 of 10,000 runs, and a mis-scored condition still shows
        # (4 SEM ≈ 7 pp here).
        mean, sem = entry["mean"], entry["sem"]
        assert abs(mean - p) <= 4 * sem, (condition, p, mean, sem)
        low, high = entry["bootstrap_ci95"]
        assert low <= mean <= high and entry["two_sem"] == pytest.approx(
            [mean - 2 * sem, mean + 2 * sem]
        )
        # BCa on ~40 participants agrees with the normal interval (± 1.96 SEM) to within 30 %.
        assert 0.7 < (high - low) / (3.92 * sem) < 1.3, (condition, low, high, sem)
        assert high - low < 0.12  # ~40 participants × 18 trials: a usefully narrow interval
        assert entry["binomial_vs_chance_p"] < 0.05 or p < 0.6
        # Baselines and the machine observer are scored on exactly these trials.
        assert entry["baselines"]["center"]["n"] == entry["n"]
        assert summary["observer"]["conditions"][condition]["trials"] == entry["trials"]
    # Tiny study: the correct occluder sits in the corner, the wrong one in the middle, so the
    # center baseline is always right; the variance baseline follows the query's pixels.
    assert summary["baselines"]["center"]["accuracy_over_image_sets"] == 1.0
    expected = np.mean([_lower_variance_is_max(tiny_study, s) for s in _main_sets(tiny_study)])
    assert summary["baselines"]["variance"]["accuracy_over_image_sets"] == pytest.approx(expected)
    assert summary["kappa"]["pairs"]["synthetic"]["variance"]["image_sets"] == 18
    assert np.isfinite(summary["observer"]["alpha"])
    # The ordering the simulation built in is visible: synthetic (80 %) beats none (55 %).
    assert summary["comparisons"]["synthetic vs none"]["p"] < 1e-6
    for name in ("accuracy.png", "layers.png", "confidence.png", "kappa.png", "participants.csv"):
        assert (out / name).stat().st_size > 1000
    # The same simulation again (through the CLI) finds everyone done and stores nothing.
    fvlab_main(
        [
            "study",
            "simulate",
            "--url",
            server.url,
            "--participants",
            "200",
            "--seed",
            "11",
            "--admin-token",
            server.admin_token,
            "--out",
            str(tmp_path / "again"),
            "--quiet",
        ]
    )
    report = json.loads((tmp_path / "again" / "report.json").read_text())
    assert report["by_status"] == {"already_submitted": 200}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM responses").fetchone()[0] == n_rows
