"""Enrolling a participant: balanced condition, seeded trial list, one database row.

Balance: the new participant goes to the condition with the fewest *active* participants —
those who submitted, or started less than ``abandon_after_s`` ago — so drop-outs are refilled.
Ties go to a seeded random choice among the tied conditions. The count, the choice and the
insert happen in one serialised transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL advisory
lock), so concurrent arrivals cannot all land in the same condition, and the participant
number ``seq`` (1, 2, 3, … in arrival order) seeds the trial list.

The same Prolific participant (same ``STUDY_ID`` and ``PROLIFIC_PID``) gets their existing
enrolment back when they reload the page — but only when the browser presents the
participant's token (the server's cookie, or the token in the body): a Prolific id alone never
hands the token to another browser (409). Once they have submitted they are turned away.

The trial list's design is seeded by the participant's number within their condition (so
conditions see the same image sets), its sides and order by 128 bits of fresh OS randomness
stored with the participant (:func:`fvlab.study.trials.make_trials`).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fvlab.study.protocol import RequestRejected, browser_trial
from fvlab.study.settings import ServerSettings
from fvlab.study.storage import lock_for_enrolment, participants
from fvlab.study.trials import Trial, make_trials


def _external_key(prolific_pid: str | None, study_id: str | None) -> str | None:
    if not prolific_pid:
        return None
    return f"{study_id or ''}|{prolific_pid}"


def _choose_condition(conn: sa.Connection, settings: ServerSettings, seq: int, now: float) -> str:
    active = sa.or_(
        participants.c.submitted_unix.is_not(None),
        participants.c.created_unix >= now - settings.abandon_after_s,
    )
    rows = conn.execute(
        sa.select(participants.c.condition, sa.func.count())
        .where(active)
        .group_by(participants.c.condition)
    ).all()
    counts = {c: 0 for c in settings.trials.conditions}
    for condition, n in rows:
        if condition in counts:
            counts[condition] = n
    fewest = min(counts.values())
    tied = [c for c in settings.trials.conditions if counts[c] == fewest]
    rng = np.random.default_rng([settings.seed, seq, 7])
    return tied[int(rng.integers(len(tied)))]


def enrolment_view(
    row: dict[str, Any],
    settings: ServerSettings,
    resumed: bool,
    image_url: Callable[[str, str], str],
) -> dict[str, Any]:
    """The JSON the browser gets for a participant row (``image_url(trial id, path)``: that
    participant's image URLs)."""
    stored = json.loads(row["trials_json"])
    return {
        "participant_id": row["participant_id"],
        "participant_number": row["seq"],
        "token": row["token"],
        "condition": row["condition"],
        "resumed": resumed,
        "practice": [browser_trial(Trial.from_dict(t), image_url) for t in stored["practice"]],
        "trials": [browser_trial(Trial.from_dict(t), image_url) for t in stored["trials"]],
        "settings": settings.browser_view(),
    }


def _same_token(row: dict[str, Any], token: str | None) -> bool:
    return token is not None and hmac.compare_digest(row["token"].encode(), token.encode())


def enrol(
    engine: Engine,
    manifest: dict[str, Any],
    settings: ServerSettings,
    prolific_pid: str | None = None,
    study_id: str | None = None,
    session_id: str | None = None,
    image_url: Callable[[str, str, str], str] = lambda participant_id, trial_id, path: path,
    token: str | None = None,
    before_new: Callable[[], None] = lambda: None,
    operator: bool = False,
) -> dict[str, Any]:
    """Enrol (or resume) a participant; returns :func:`enrolment_view` of their row.

    ``image_url(participant id, trial id, path)`` gives image URLs; ``token``: what the browser
    presented (needed to resume, unless the request is the ``operator``'s, i.e. carries the
    admin token); ``before_new`` runs before a NEW participant is made (the server's rate limit
    raises from it)."""
    key = _external_key(prolific_pid, study_id)
    now = time.time()
    with engine.begin() as conn:
        lock_for_enrolment(conn)
        if key is not None:
            existing = conn.execute(
                sa.select(participants).where(participants.c.external_key == key)
            ).first()
            if existing is not None:
                row = dict(existing._mapping)
                if row["submitted_unix"] is not None:
                    raise RequestRejected(
                        409, "this participant has already completed the study; thank you"
                    )
                if not operator and not _same_token(row, token):
                    raise RequestRejected(
                        409,
                        "this Prolific ID has already started the study in another browser or "
                        "tab; please continue there",
                    )
                pid = row["participant_id"]
                return enrolment_view(row, settings, True, lambda t, p: image_url(pid, t, p))
        before_new()
        seq = (
            int(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(participants.c.seq), 0))
                ).scalar_one()
            )
            + 1
        )
        condition = _choose_condition(conn, settings, seq, now)
        slot = conn.execute(
            sa.select(sa.func.count())
            .select_from(participants)
            .where(participants.c.condition == condition)
        ).scalar_one()
        participant_id = f"p{seq:05d}"
        entropy = secrets.randbits(128)
        practice, trials = make_trials(
            manifest,
            condition,
            participant_id,
            seq,
            settings.seed,
            settings.trials,
            slot=int(slot) + 1,
            entropy=entropy,
        )
        row = {
            "seq": seq,
            "participant_id": participant_id,
            "token": secrets.token_urlsafe(24),
            "condition": condition,
            "external_key": key,
            "prolific_pid": prolific_pid,
            "study_id": study_id,
            "session_id": session_id,
            "created_unix": now,
            "trials_json": json.dumps(
                {
                    "practice": [t.to_dict() for t in practice],
                    "trials": [t.to_dict() for t in trials],
                    "slot": int(slot) + 1,
                    "entropy": str(entropy),
                }
            ),
        }
        conn.execute(participants.insert().values(**row))
    full = {**row, "submitted_unix": None}
    return enrolment_view(full, settings, False, lambda t, p: image_url(participant_id, t, p))
