"""A participant's submission: schema, checks against their trial list, one transaction.

Checks (each failure → :class:`RequestRejected` with a 4xx, and nothing is written):

* the token is the participant's (403) and the participant exists (404);
* they have not submitted before (409) — also under a race, because the row is only marked
  submitted by ``UPDATE … WHERE submitted_unix IS NULL``;
* every main and catch trial of theirs is answered exactly once (attempt 1), no trial id
  belongs to anyone else, every practice attempt 1..k answers each practice trial once,
  k ≤ the allowed attempts, and the reported ``practice_passed`` matches the answers (422);
* a participant who failed the practice (all allowed rounds used, the last one not all
  right) ends there: their submission holds the practice answers only (422 otherwise).

Times: the server records enrolment and submission (``created_unix``, ``submitted_unix``);
the page's ``instructions_ms`` and ``total_ms`` are stored as reported, and the analysis uses
the server's duration (:class:`fvlab.study.settings.ExclusionCriteria`).

Scoring happens here, from the stored trial list: ``correct = chosen side == correct side``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from fvlab.study.protocol import RequestRejected
from fvlab.study.settings import ServerSettings
from fvlab.study.storage import participants, responses
from fvlab.study.trials import Trial, decode_response

MAX_RESPONSES = 500


class ResponseIn(BaseModel):
    """One answer: which of the six buttons (0..5 = '3 2 1 | 1 2 3') and how fast."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    trial_id: str = Field(min_length=1, max_length=64)
    attempt: int = Field(ge=1, le=50)
    response: int = Field(ge=0, le=5)
    rt_ms: float = Field(ge=0, le=3_600_000)


class SubmissionIn(BaseModel):
    """Everything the browser sends at the end (``jspsych_data`` is kept as raw JSON)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    token: str = Field(min_length=8, max_length=128)
    responses: list[ResponseIn] = Field(min_length=1, max_length=MAX_RESPONSES)
    instructions_ms: float = Field(ge=0, le=86_400_000)
    total_ms: float = Field(ge=0, le=86_400_000)
    practice_attempts: int = Field(ge=0, le=50)
    practice_passed: bool
    user_agent: str = Field(default="", max_length=500)
    jspsych_data: list[dict[str, Any]] | None = Field(default=None, max_length=5000)


def _load(engine: Engine, participant_id: str) -> dict[str, Any]:
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(participants).where(participants.c.participant_id == participant_id)
        ).first()
    if row is None:
        raise RequestRejected(404, f"no participant {participant_id!r} in this study")
    return dict(row._mapping)


def _check_and_score(
    sub: SubmissionIn, stored: dict[str, list[Trial]], settings: ServerSettings, pid: str
) -> list[dict[str, Any]]:
    """Response rows to insert, after checking ``sub`` against the participant's trials."""
    scored = {t.trial_id: t for t in stored["trials"]}
    practice = {t.trial_id: t for t in stored["practice"]}
    seen: set[tuple[str, int]] = set()
    rows = []
    for r in sub.responses:
        trial = scored.get(r.trial_id) or practice.get(r.trial_id)
        if trial is None:
            raise RequestRejected(
                422, f"trial id {r.trial_id!r} is not one of participant {pid}'s trials"
            )
        if (r.trial_id, r.attempt) in seen:
            raise RequestRejected(422, f"trial {r.trial_id} attempt {r.attempt} answered twice")
        seen.add((r.trial_id, r.attempt))
        if trial.kind != "practice" and r.attempt != 1:
            raise RequestRejected(422, f"{trial.kind} trial {r.trial_id} has attempt {r.attempt}")
        if trial.kind == "practice" and r.attempt > sub.practice_attempts:
            raise RequestRejected(
                422, f"practice answer in attempt {r.attempt} > practice_attempts"
            )
        side, confidence = decode_response(r.response)
        rows.append(
            {
                "participant_id": pid,
                "trial_id": r.trial_id,
                "attempt": r.attempt,
                "kind": trial.kind,
                "position": trial.position,
                "condition": trial.condition,
                "unit_id": trial.unit_id,
                "layer": trial.layer,
                "set_id": trial.set_id,
                "correct_side": trial.correct_side,
                "response": r.response,
                "chosen_side": side,
                "confidence": confidence,
                "correct": side == trial.correct_side,
                "rt_ms": r.rt_ms,
            }
        )
    failed = bool(practice) and not sub.practice_passed
    if failed and sub.practice_attempts < settings.max_practice_attempts:
        raise RequestRejected(
            422,
            f"practice_passed=false after {sub.practice_attempts} of "
            f"{settings.max_practice_attempts} allowed rounds: the practice was not over",
        )
    answered = [tid for tid in scored if (tid, 1) in seen]
    missing = [tid for tid in scored if (tid, 1) not in seen]
    if failed and answered:
        raise RequestRejected(
            422, f"the practice was failed, so the study ended there; {answered[0]} was answered"
        )
    if missing and not failed:
        raise RequestRejected(422, f"{len(missing)} trials unanswered, e.g. {missing[0]}")
    if sub.practice_attempts > settings.max_practice_attempts:
        raise RequestRejected(
            422,
            f"practice_attempts {sub.practice_attempts} > the allowed "
            f"{settings.max_practice_attempts}",
        )
    if practice and sub.practice_attempts < 1:
        raise RequestRejected(422, "practice trials were not answered (practice_attempts = 0)")
    for attempt in range(1, sub.practice_attempts + 1):
        absent = [tid for tid in practice if (tid, attempt) not in seen]
        if absent:
            raise RequestRejected(422, f"practice attempt {attempt} lacks trial {absent[0]}")
    if practice:
        last = [
            row["correct"]
            for row in rows
            if row["kind"] == "practice" and row["attempt"] == sub.practice_attempts
        ]
        if all(last) != sub.practice_passed:
            raise RequestRejected(
                422, f"practice_passed={sub.practice_passed} contradicts the last attempt"
            )
    return rows


def store_submission(
    engine: Engine, participant_id: str, sub: SubmissionIn, settings: ServerSettings
) -> dict[str, Any]:
    """Check, score and store ``sub`` in one transaction; returns a short receipt."""
    row = _load(engine, participant_id)
    if not hmac.compare_digest(row["token"].encode(), sub.token.encode()):
        raise RequestRejected(403, f"wrong token for participant {participant_id}")
    if row["submitted_unix"] is not None:
        raise RequestRejected(409, f"participant {participant_id} has already submitted")
    stored_json = json.loads(row["trials_json"])
    stored = {k: [Trial.from_dict(t) for t in stored_json[k]] for k in ("practice", "trials")}
    rows = _check_and_score(sub, stored, settings, participant_id)
    with engine.begin() as conn:
        marked = conn.execute(
            participants.update()
            .where(participants.c.participant_id == participant_id)
            .where(participants.c.submitted_unix.is_(None))
            .values(
                submitted_unix=time.time(),
                instructions_ms=sub.instructions_ms,
                total_ms=sub.total_ms,
                practice_attempts=sub.practice_attempts,
                practice_passed=sub.practice_passed,
                user_agent=sub.user_agent,
                submission_json=sub.model_dump_json(),
            )
        )
        if marked.rowcount != 1:
            raise RequestRejected(409, f"participant {participant_id} has already submitted")
        conn.execute(responses.insert(), rows)
    return {
        "stored": True,
        "participant_id": participant_id,
        "responses": len(rows),
        "completion_code": completion_code(row["token"], settings),
    }


def completion_code(token: str, settings: ServerSettings) -> str:
    """The code shown on the default end page: the operator's ``completion_code``, else one
    per participant (``FV`` + 10 hex digits of SHA-256 of their token: the operator can check
    it against the database, nobody can make one without the token)."""
    if settings.completion_code:
        return settings.completion_code
    return "FV" + hashlib.sha256(f"completion:{token}".encode()).hexdigest()[:10].upper()
