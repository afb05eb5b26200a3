"""The study on a real PostgreSQL server (the session's throw-away cluster, ``postgres``).

* 500 simulated participants over 20 connections: every submission stored exactly once, then
  exported and analysed from PostgreSQL through the command line.
* The storage and HTTP tests of SQLite — enrolment, scoring, refused submissions, replays, a
  failed insert rolling back, malformed and other-participant bodies — run unchanged on
  PostgreSQL: the test functions of ``test_study_storage`` and ``test_study_server`` are
  collected here a second time, with this module's ``engine``/``server`` fixtures (a fresh
  PostgreSQL database) in place of their SQLite ones.
* The SIGKILL and lost-answer tests run on both databases in ``test_study_fault``.
"""

from __future__ import annotations

import csv
import json

import httpx
import pytest

from fvlab.cli import main as fvlab_main
from fvlab.study.manifest import read_manifest
from fvlab.study.storage import count_rows, open_database
from tests.study import loadtools
from tests.study import test_study_server as server_tests
from tests.study import test_study_storage as storage_tests


@pytest.mark.slow
def test_500_participants_over_20_connections_stored_once(
    tiny_study, tmp_path, postgres, server_factory
):
    url = postgres.new_database("load")
    server = server_factory(tiny_study, tmp_path / "unused.sqlite", "--db", url)  # last --db wins
    report = loadtools.run_load(server.url, server.admin_token, 500, concurrency=20, seed=3)
    problems = [(o.index, o.status, o.error) for o in report.outcomes if o.status != "stored"]
    assert not problems, problems[:5]
    assert sum(o.retries for o in report.outcomes) == 0
    loadtools.assert_stored_exactly_once(url, report.outcomes)
    assert not (tmp_path / "unused.sqlite").exists()  # the data went to PostgreSQL
    assert httpx.get(f"{server.url}/healthz").json()["submitted"] == 500

    fvlab_main(["study", "export", str(tiny_study), "--db", url, "--out", str(tmp_path / "x")])
    with (tmp_path / "x" / "participants.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 500
    out = tmp_path / "analysis"
    fvlab_main(
        [
            "study", "analyze", str(tiny_study), "--db", url, "--out", str(out), "--quiet",
            "--no-observer",
        ]
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    # (who is included is the exclusion rules' business: simulated people answer too fast)
    assert summary["participants"]["submitted"] == 500


# --- the SQLite tests of test_study_storage, on PostgreSQL ---------------------------------


@pytest.fixture
def engine(postgres):
    """A fresh PostgreSQL database with the study tables (replaces the storage tests' SQLite)."""
    engine = open_database(postgres.new_database("storage"))
    assert engine.dialect.name == "postgresql"
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def manifest(tiny_study):
    return read_manifest(tiny_study)


test_postgres_conditions_are_balanced_and_abandoned_places_refilled = (
    storage_tests.test_conditions_are_balanced_and_abandoned_places_refilled
)
test_postgres_enrolment_resumes_for_the_same_prolific_id_until_submitted = (
    storage_tests.test_enrolment_resumes_for_the_same_prolific_id_until_submitted
)
test_postgres_submission_is_scored_from_the_stored_trials = (
    storage_tests.test_submission_is_scored_from_the_stored_trials
)
test_postgres_bad_submissions_store_nothing = storage_tests.test_bad_submissions_store_nothing
test_postgres_replay_is_rejected_and_a_failed_insert_rolls_back = (
    storage_tests.test_replay_is_rejected_and_a_failed_insert_rolls_back
)


# --- the HTTP tests of test_study_server, on a server that stores into PostgreSQL ----------


@pytest.fixture(scope="module")
def server(tiny_study, tmp_path_factory, module_server_factory, postgres):
    url = postgres.new_database("server")
    placeholder = tmp_path_factory.mktemp("server-postgres") / "unused.sqlite"
    started = module_server_factory(tiny_study, placeholder, "--max-body-kb", "64", "--db", url)
    started.database_url = url
    return started


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def test_the_http_server_stores_into_postgresql(server, client):
    person = server_tests.enrol(client)
    body = server_tests.full_submission(client, person)
    url = f"/api/participants/{person['participant_id']}/submission"
    assert client.post(url, json=body).status_code == 200
    engine = open_database(server.database_url, create=False)
    try:
        assert count_rows(engine) == server_tests.counts(client)
    finally:
        engine.dispose()


test_postgres_malformed_json_is_rejected = server_tests.test_malformed_json_is_rejected
test_postgres_wrong_participant_is_rejected = server_tests.test_wrong_participant_is_rejected
test_postgres_replayed_submission_is_rejected = server_tests.test_replayed_submission_is_rejected
test_postgres_oversized_body_is_rejected = server_tests.test_oversized_body_is_rejected
