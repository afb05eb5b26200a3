"""Crash safety: SIGKILL the server during a simulated run and restart it — on SQLite and on a
real PostgreSQL server (the ``postgres`` fixture) — and SIGKILL PostgreSQL itself.

No acknowledged submission is lost (they are all in the database right after the kill),
interrupted requests are retried against the restarted server, and nothing is stored twice —
also when the server stored a submission but its answer never reached the participant.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from fvlab.study.simulate import ObserverModel, RetryPolicy, simulate_participants
from tests.study.loadtools import PostgresCluster, response_rows, stored_submissions


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """(extra ``fvlab study serve`` arguments, SQLAlchemy URL) of a fresh database."""
    if request.param == "sqlite":
        db = tmp_path / "study.sqlite"
        return (), f"sqlite:///{db}"
    url = request.getfixturevalue("postgres").new_database("fault")
    return ("--db", url), url  # the last --db wins over the factory's SQLite path


def _run_through_a_crash(server, url, crash, recover, readable_while_down: bool) -> None:
    """120 simulated participants against ``server``; after 30 acknowledged submissions
    ``crash()``, then ``recover()``. Checks that every submission acknowledged before the crash
    is stored (while the database is down if it is readable then), that all 120 end up stored
    exactly once, and that running the simulation again stores nothing."""
    acknowledged: list[tuple[float, str, dict]] = []
    lock = threading.Lock()

    def on_outcome(outcome):
        if outcome.status == "stored":
            with lock:
                acknowledged.append((time.monotonic(), outcome.participant_id, outcome.submission))

    results = {}

    def run():
        results["outcomes"] = simulate_participants(
            server.url,
            120,
            server.admin_token,
            ObserverModel(),
            seed=5,
            concurrency=12,
            policy=RetryPolicy(tries=60, budget_s=60, first_wait_s=0.05, max_wait_s=0.5),
            timeout_s=150,
            show_progress=False,
            on_outcome=on_outcome,
        )

    def check_acknowledged_are_stored(killed_at: float) -> None:
        with lock:
            acked_before = [(pid, sub) for t, pid, sub in acknowledged if t <= killed_at]
        stored = stored_submissions(url)
        for pid, sub in acked_before:
            assert json.loads(stored[pid]) == {**sub, "jspsych_data": None}
        assert len(stored) < 120  # the crash really interrupted the run

    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(acknowledged) >= 30, "the run did not get going"
        crash()
        killed_at = time.monotonic()
        if readable_while_down:
            check_acknowledged_are_stored(killed_at)
        time.sleep(0.5)
        recover()
        if not readable_while_down:
            check_acknowledged_are_stored(killed_at)
    finally:
        worker.join(timeout=170)
    assert not worker.is_alive()
    outcomes = results["outcomes"]
    assert {o.status for o in outcomes} <= {"stored", "stored_earlier"}
    assert sum(o.retries for o in outcomes) > 0  # requests failed during the outage
    stored = stored_submissions(url)
    assert len(stored) == 120
    for o in outcomes:
        assert json.loads(stored[o.participant_id]) == {**o.submission, "jspsych_data": None}
    total, distinct = response_rows(url)
    assert total == distinct == sum(len(o.submission["responses"]) for o in outcomes)
    # Running the same simulation again completes nothing twice.
    again = simulate_participants(
        server.url,
        120,
        server.admin_token,
        ObserverModel(),
        seed=5,
        concurrency=12,
        show_progress=False,
    )
    assert {o.status for o in again} == {"already_submitted"}
    assert response_rows(url) == (total, distinct)


def test_sigkill_during_a_run_loses_nothing_and_duplicates_nothing(
    tiny_study, tmp_path, server_factory, database
):
    extra, url = database
    server = server_factory(tiny_study, tmp_path / "study.sqlite", *extra)
    # SIGKILL of the server (for SQLite also of the database engine: it runs in the server);
    # the database is read straight after the kill, then the server restarts on the same port
    _run_through_a_crash(server, url, server.kill, server.start, readable_while_down=True)


@pytest.mark.slow
def test_sigkill_of_postgresql_during_a_run_loses_nothing(tiny_study, tmp_path, server_factory):
    """PostgreSQL itself crashes (every process SIGKILLed) mid-run and comes back with crash
    recovery; the server stays up, answering 500 meanwhile, and reconnects."""
    cluster = PostgresCluster().start()  # its own: the session's server must not crash
    try:
        url = cluster.new_database("crash")
        server = server_factory(tiny_study, tmp_path / "unused.sqlite", "--db", url)
        _run_through_a_crash(server, url, cluster.kill, cluster.restart, readable_while_down=False)
    finally:
        cluster.stop()


class LoseFirstSubmissionAnswer(httpx.AsyncBaseTransport):
    """Delivers requests, but throws away the server's answer to the first submission."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lost = 0

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/submission") and self.lost == 0:
            await response.aread()  # the server has committed; the answer goes missing
            self.lost += 1
            raise httpx.ReadError("connection dropped", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_resubmission_after_a_lost_answer_is_not_duplicated(
    tiny_study, tmp_path, server_factory, database
):
    extra, url = database
    server = server_factory(tiny_study, tmp_path / "study.sqlite", *extra)
    transport = LoseFirstSubmissionAnswer()
    [outcome] = simulate_participants(
        server.url,
        1,
        server.admin_token,
        seed=2,
        show_progress=False,
        transport=transport,
        policy=RetryPolicy(tries=5, budget_s=10, first_wait_s=0.05),
    )
    assert transport.lost == 1
    assert outcome.status == "stored_earlier" and outcome.retries == 1
    assert list(stored_submissions(url)) == [outcome.participant_id]
    total, distinct = response_rows(url)
    assert total == distinct == len(outcome.submission["responses"])
