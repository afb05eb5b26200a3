"""Crash safety: SIGKILL the server during a simulated run and restart it.

No acknowledged submission is lost (they are all in the database file right after the kill),
interrupted requests are retried against the restarted server, and nothing is stored twice —
also when the server stored a submission but its answer never reached the participant.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import httpx

from fvlab.study.simulate import ObserverModel, RetryPolicy, simulate_participants


def _submitted(db) -> dict[str, str]:
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute(
            "SELECT participant_id, submission_json FROM participants "
            "WHERE submitted_unix IS NOT NULL"
        ).fetchall()
    return dict(rows)


def _response_rows(db) -> tuple[int, int]:
    with sqlite3.connect(db, timeout=30) as conn:
        total = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
        distinct = conn.execute(
            "SELECT count(*) FROM (SELECT DISTINCT participant_id, trial_id, attempt "
            "FROM responses)"
        ).fetchone()[0]
    return total, distinct


def test_sigkill_during_a_run_loses_nothing_and_duplicates_nothing(
    tiny_study, tmp_path, server_factory
):
    db = tmp_path / "fault.sqlite"
    server = server_factory(tiny_study, db)
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

    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(acknowledged) >= 30, "the run did not get going"
        server.kill()
        killed_at = time.monotonic()
        # Every submission acknowledged before the kill is in the database file.
        with lock:
            acked_before = [(pid, sub) for t, pid, sub in acknowledged if t <= killed_at]
        stored = _submitted(db)
        for pid, sub in acked_before:
            assert json.loads(stored[pid]) == {**sub, "jspsych_data": None}
        assert len(stored) < 120  # the kill really interrupted the run
        time.sleep(0.5)
        server.start()  # same port, same database
    finally:
        worker.join(timeout=170)
    assert not worker.is_alive()
    outcomes = results["outcomes"]
    assert {o.status for o in outcomes} <= {"stored", "stored_earlier"}
    assert sum(o.retries for o in outcomes) > 0  # requests failed during the outage
    stored = _submitted(db)
    assert len(stored) == 120
    for o in outcomes:
        assert json.loads(stored[o.participant_id]) == {**o.submission, "jspsych_data": None}
    total, distinct = _response_rows(db)
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
    assert _response_rows(db) == (total, distinct)


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


def test_resubmission_after_a_lost_answer_is_not_duplicated(tiny_study, tmp_path, server_factory):
    db = tmp_path / "lost.sqlite"
    server = server_factory(tiny_study, db)
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
    assert list(_submitted(db)) == [outcome.participant_id]
    total, distinct = _response_rows(db)
    assert total == distinct == len(outcome.submission["responses"])
