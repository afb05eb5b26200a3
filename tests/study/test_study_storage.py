"""Storage, enrolment and submission rules, without HTTP (SQLite in a temporary directory)."""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from fvlab.cli import main as fvlab_main
from fvlab.errors import FvlabError
from fvlab.study.enrolment import enrol
from fvlab.study.export import encode_table, export_study, table_rows
from fvlab.study.manifest import CONDITIONS, read_manifest
from fvlab.study.protocol import RequestRejected
from fvlab.study.settings import ServerSettings
from fvlab.study.storage import (
    count_rows,
    database_url,
    fetch_participants,
    open_database,
    participants,
    responses,
)
from fvlab.study.submission import SubmissionIn, store_submission
from fvlab.study.trials import encode_response

SETTINGS = ServerSettings(seed=1)


@pytest.fixture
def engine(tmp_path):
    engine = open_database(database_url(str(tmp_path / "db.sqlite"), None))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def manifest(tiny_study):
    return read_manifest(tiny_study)


def _key(engine, pid):
    with engine.begin() as conn:
        stored = json.loads(
            conn.execute(
                sa.select(participants.c.trials_json).where(participants.c.participant_id == pid)
            ).scalar_one()
        )
    return {t["trial_id"]: t for block in ("practice", "trials") for t in stored[block]}


def answer_all(engine, enrolment, right=lambda trial_id: True, confidence=2):
    """A valid submission: practice right in one attempt, other trials right if right(id)."""
    key = _key(engine, enrolment["participant_id"])
    other = {"left": "right", "right": "left"}
    rows = []
    for t in enrolment["practice"]:
        rows.append(
            {
                "trial_id": t["trial_id"],
                "attempt": 1,
                "rt_ms": 900.0,
                "response": encode_response(t["correct_side"], 3),
            }
        )
    for t in enrolment["trials"]:
        truth = key[t["trial_id"]]["correct_side"]
        side = truth if right(t["trial_id"]) else other[truth]
        rows.append(
            {
                "trial_id": t["trial_id"],
                "attempt": 1,
                "rt_ms": 1500.0,
                "response": encode_response(side, confidence),
            }
        )
    return {
        "token": enrolment["token"],
        "responses": rows,
        "instructions_ms": 30000.0,
        "total_ms": 200000.0,
        "practice_attempts": 1,
        "practice_passed": True,
    }


def _submit(engine, enrolment, body, settings=SETTINGS):
    return store_submission(
        engine, enrolment["participant_id"], SubmissionIn.model_validate(body), settings
    )


def test_sqlite_runs_in_wal_mode_and_urls_resolve(engine, tmp_path):
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert database_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/study.sqlite"
    assert database_url("postgresql+psycopg://u:p@h/db", None) == "postgresql+psycopg://u:p@h/db"
    with pytest.raises(FvlabError, match="cannot use database URL"):
        open_database("nosuchdialect://x/y")
    with pytest.raises(FvlabError, match="no study database at"):
        open_database(database_url(str(tmp_path / "missing.sqlite"), None), create=False)


def test_conditions_are_balanced_and_abandoned_places_refilled(engine, manifest):
    people = [enrol(engine, manifest, SETTINGS) for _ in range(10)]
    assert Counter(p["condition"] for p in people) == {c: 2 for c in CONDITIONS}
    assert [p["participant_number"] for p in people] == list(range(1, 11))
    # Two 'synthetic' participants left long ago without submitting: their places are refilled.
    with engine.begin() as conn:
        conn.execute(
            participants.update()
            .where(participants.c.condition == "synthetic")
            .values(created_unix=time.time() - 2 * SETTINGS.abandon_after_s)
        )
    assert [enrol(engine, manifest, SETTINGS)["condition"] for _ in range(2)] == ["synthetic"] * 2


def test_enrolment_resumes_for_the_same_prolific_id_until_submitted(engine, manifest):
    first = enrol(engine, manifest, SETTINGS, "PID1", "S1", "sess1")
    # The Prolific id alone does not resume (another browser must not get the token) ...
    with pytest.raises(RequestRejected, match="another browser") as err:
        enrol(engine, manifest, SETTINGS, "PID1", "S1", "sess2")
    assert err.value.status == 409
    with pytest.raises(RequestRejected, match="another browser"):
        enrol(engine, manifest, SETTINGS, "PID1", "S1", token="x" * 32)
    # ... the original token does, and so does the operator (admin token).
    again = enrol(engine, manifest, SETTINGS, "PID1", "S1", "sess2", token=first["token"])
    assert enrol(engine, manifest, SETTINGS, "PID1", "S1", operator=True)["resumed"]
    assert again["resumed"] and not first["resumed"]
    assert again["participant_id"] == first["participant_id"] and again["token"] == first["token"]
    assert again["trials"] == first["trials"]
    assert (
        enrol(engine, manifest, SETTINGS, "PID1", "S2")["participant_id"] != first["participant_id"]
    )
    _submit(engine, first, answer_all(engine, first))
    with pytest.raises(RequestRejected, match="already completed") as err:
        enrol(engine, manifest, SETTINGS, "PID1", "S1")
    assert err.value.status == 409


def test_submission_is_scored_from_the_stored_trials(engine, manifest):
    person = enrol(engine, manifest, SETTINGS)
    wrong = {t["trial_id"] for t in person["trials"][::4]}
    body = answer_all(engine, person, lambda i: i not in wrong, 3)
    receipt = _submit(engine, person, body)
    code = receipt.pop("completion_code")
    assert receipt == {"stored": True, "participant_id": "p00001", "responses": 23}
    assert code.startswith("FV") and len(code) == 12  # per participant: from their token
    with engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(responses))]
    key = _key(engine, "p00001")
    assert len(rows) == 23
    for r in rows:
        assert r["correct"] == (r["trial_id"] not in wrong)
        assert r["correct_side"] == key[r["trial_id"]]["correct_side"]
        assert r["kind"] == key[r["trial_id"]]["kind"] and r["confidence"] == 3
    [stored] = fetch_participants(engine, submitted_only=True)
    raw = json.loads(stored["submission_json"])
    assert raw["responses"] == body["responses"] and raw["token"] == body["token"]
    assert stored["practice_attempts"] == 1 and stored["instructions_ms"] == 30000.0


@pytest.mark.parametrize(
    "change, status, message",
    [
        (lambda b, other: b.update(token="x" * 20), 403, "wrong token"),
        (lambda b, other: b["responses"].pop(), 422, "unanswered"),
        (lambda b, other: b["responses"].append(dict(b["responses"][-1])), 422, "answered twice"),
        (lambda b, other: b["responses"][-1].update(trial_id=other), 422, "not one of"),
        (lambda b, other: b["responses"][-1].update(attempt=2), 422, "has attempt 2"),
        (lambda b, other: b.update(practice_passed=False), 422, "was not over"),
        (lambda b, other: b.update(practice_attempts=6), 422, "allowed 5"),
        (lambda b, other: b.update(practice_attempts=2), 422, "practice attempt 2 lacks"),
    ],
)
def test_bad_submissions_store_nothing(engine, manifest, change, status, message):
    person = enrol(engine, manifest, SETTINGS)
    someone_else = enrol(engine, manifest, SETTINGS)
    body = answer_all(engine, person)
    change(body, someone_else["trials"][0]["trial_id"])
    before = count_rows(engine)
    with pytest.raises(RequestRejected, match=message) as err:
        _submit(engine, person, body)
    assert err.value.status == status
    assert count_rows(engine) == before == {"participants": 2, "submitted": 0, "responses": 0}


def test_schema_limits_reject_before_any_storage():
    with pytest.raises(ValidationError):
        SubmissionIn.model_validate(
            {
                "token": "abcdefgh",
                "responses": [],
                "instructions_ms": 1,
                "total_ms": 1,
                "practice_attempts": 0,
                "practice_passed": True,
            }
        )
    with pytest.raises(ValidationError):  # button 6 does not exist
        SubmissionIn.model_validate(
            {
                "token": "abcdefgh",
                "instructions_ms": 1,
                "total_ms": 1,
                "responses": [{"trial_id": "t", "attempt": 1, "response": 6, "rt_ms": 1}],
                "practice_attempts": 0,
                "practice_passed": True,
            }
        )
    with pytest.raises(ValidationError):  # unknown field
        SubmissionIn.model_validate(
            {
                "token": "abcdefgh",
                "instructions_ms": 1,
                "total_ms": 1,
                "responses": [{"trial_id": "t", "attempt": 1, "response": 1, "rt_ms": 1}],
                "practice_attempts": 0,
                "practice_passed": True,
                "is_admin": True,
            }
        )


def test_replay_is_rejected_and_a_failed_insert_rolls_back(engine, manifest):
    person = enrol(engine, manifest, SETTINGS)
    body = answer_all(engine, person)
    _submit(engine, person, body)
    stored = count_rows(engine)
    with pytest.raises(RequestRejected, match="already submitted") as err:
        _submit(engine, person, body)
    assert err.value.status == 409 and count_rows(engine) == stored
    # One transaction: if inserting the answers fails half-way, the participant stays open.
    other = enrol(engine, manifest, SETTINGS)
    clash = answer_all(engine, other)
    last = clash["responses"][-1]["trial_id"]
    with engine.begin() as conn:  # plant a row that the submission's last insert collides with
        conn.execute(
            responses.insert().values(
                participant_id=other["participant_id"],
                trial_id=last,
                attempt=1,
                kind="main",
                position=0,
                condition="x",
                unit_id="u",
                layer="l",
                set_id="s",
                correct_side="left",
                response=0,
                chosen_side="left",
                confidence=3,
                correct=True,
                rt_ms=1.0,
            )
        )
    with pytest.raises(sa.exc.IntegrityError):
        _submit(engine, other, clash)
    after = count_rows(engine)
    assert after["submitted"] == 1 and after["responses"] == stored["responses"] + 1


def test_export_round_trips_csv_parquet_and_raw(engine, manifest, tmp_path):
    for _ in range(3):
        person = enrol(engine, manifest, SETTINGS, prolific_pid=f"P{_}")
        _submit(engine, person, answer_all(engine, person, lambda i: i.endswith(("0", "2"))))
    enrol(engine, manifest, SETTINGS)  # not submitted: in participants, not in raw
    paths = export_study(engine, tmp_path / "export", "parquet")
    assert [p.name for p in paths] == ["participants.parquet", "responses.parquet", "raw.jsonl"]
    db_rows = table_rows(engine, "responses")
    table = pq.read_table(paths[1]).to_pylist()
    assert table == db_rows and len(table) == 3 * 23
    parts = pq.read_table(paths[0]).to_pylist()
    assert len(parts) == 4 and "token" not in parts[0] and "submission_json" not in parts[0]
    raw = [json.loads(line) for line in paths[2].read_text().splitlines()]
    assert [r["prolific_pid"] for r in raw] == ["P0", "P1", "P2"]
    assert len(raw[0]["submission"]["responses"]) == 23 and "practice" in raw[0]["assigned"]
    text = encode_table(db_rows, "responses", "csv").decode()
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == len(db_rows)
    assert [r["trial_id"] for r in parsed] == [r["trial_id"] for r in db_rows]
    assert [r["correct"] == "True" for r in parsed] == [r["correct"] for r in db_rows]
    with pytest.raises(FvlabError, match="jsonl"):
        encode_table([], "raw", "csv")
    # The same through the command line, as CSV.
    fvlab_main(
        [
            "study",
            "export",
            str(tmp_path),
            "--db",
            str(tmp_path / "db.sqlite"),
            "--out",
            str(tmp_path / "cli"),
            "--format",
            "csv",
        ]
    )
    with (tmp_path / "cli" / "responses.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(db_rows)
    assert len((tmp_path / "cli" / "raw.jsonl").read_text().splitlines()) == 3


def test_analysis_of_an_empty_study_writes_the_participant_table(engine, tiny_study, tmp_path):
    from fvlab.study.analysis_report import PARTICIPANT_COLUMNS, run_analysis
    from fvlab.study.settings import AnalysisSettings

    settings = AnalysisSettings(tiny_study, str(engine.url), baselines=False, observer=False)
    summary = run_analysis(settings, tmp_path / "out").summary()
    assert summary["participants"]["submitted"] == 0 and "no included" in summary["warning"]
    header = (tmp_path / "out" / "participants.csv").read_text().splitlines()
    assert header == [",".join(PARTICIPANT_COLUMNS)]


def test_csv_cells_are_escaped_and_nul_stripped():
    from fvlab.study.export import csv_cell, encode_table

    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@x", "\tx", "ok", "a\x00b", -1.5, 3)] == [
        "'=1+1", "'+1", "'-1", "'@x", "'\tx", "ok", "ab", -1.5, 3,
    ]  # fmt: skip
    text = encode_table([{"a": "=2", "b": -2.0}], "participants", "csv").decode()
    assert text == "a,b\n'=2,-2.0\n"


def test_a_failed_practice_ends_the_study_with_practice_answers_only(engine, manifest):
    settings = ServerSettings(seed=1, max_practice_attempts=2)
    person = enrol(engine, manifest, settings)
    key = _key(engine, person["participant_id"])
    wrong = {"left": "right", "right": "left"}
    practice = [
        {
            "trial_id": t["trial_id"],
            "attempt": a,
            "rt_ms": 900.0,
            "response": encode_response(wrong[key[t["trial_id"]]["correct_side"]], 1),
        }
        for a in (1, 2)
        for t in person["practice"]
    ]
    body = {
        "token": person["token"],
        "responses": practice,
        "instructions_ms": 30000,
        "total_ms": 60000,
        "practice_attempts": 2,
        "practice_passed": False,
    }
    main = answer_all(engine, person)["responses"]
    with pytest.raises(RequestRejected, match="ended there"):
        store_submission(
            engine,
            person["participant_id"],
            SubmissionIn(**{**body, "responses": practice + main[-3:]}),
            settings,
        )
    store_submission(engine, person["participant_id"], SubmissionIn(**body), settings)
    assert count_rows(engine) == {"participants": 1, "submitted": 1, "responses": 4}
