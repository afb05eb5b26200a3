"""Simulated participants that take the study through the real server over HTTP.

Observer model (per participant): each main trial is answered correctly with probability
``accuracy[condition]`` (independent Bernoulli draws), catch trials with ``catch_accuracy``,
practice trials with ``practice_accuracy`` (the practice is repeated until all are right or the
server's allowed attempts are used). Confidence depends on correctness: P(3, 2, 1 | correct) =
(.45, .35, .20) and P(3, 2, 1 | wrong) = (.20, .35, .45). Response times are log-normal
(median 5 s), instruction time uniform in [20, 90] s.

Each participant's random draws come from ``default_rng([seed, participant_number])``, where the
number is the server's (1, 2, … in enrolment order), so a run is reproducible whatever the
interleaving of the concurrent requests. Participants are identified to the server by a Prolific
id ``sim-<seed>-<i>``: a retried or repeated enrolment resumes the same participant (the
simulator sends the admin token, with which the server resumes without the participant's
cookie), so running the same command again completes whatever an interrupted run left
unsubmitted and never duplicates a submission.

Network failures and 5xx answers are retried with exponential back-off (bounded in count and
time); a 409 on a *retried* submission means an earlier try was stored but its answer was lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fvlab.errors import FvlabError
from fvlab.study.manifest import CONDITIONS
from fvlab.study.trials import encode_response

# The paper's reported accuracies (P2): FVs 68 %, natural/mixed/blur ~66–67 %, none 60 %.
PAPER_ACCURACY = {"synthetic": 0.68, "natural": 0.67, "mixed": 0.67, "blur": 0.66, "none": 0.60}
_CONFIDENCE_P = {True: [0.20, 0.35, 0.45], False: [0.45, 0.35, 0.20]}  # P(conf = 1, 2, 3)


def parse_accuracy(text: str | None) -> dict[str, float]:
    """'synthetic=0.7,none=0.6' → per-condition accuracy (others keep the paper's values)."""
    accuracy = dict(PAPER_ACCURACY)
    if not text:
        return accuracy
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            p = float(value)
        except ValueError:
            p = -1.0
        if not sep or name not in CONDITIONS or not 0 <= p <= 1:
            raise FvlabError(
                f"cannot read accuracy {part.strip()!r}: use CONDITION=P with P in [0, 1] and "
                f"CONDITION one of {', '.join(CONDITIONS)}, e.g. synthetic=0.7,none=0.6"
            )
        accuracy[name] = p
    return accuracy


@dataclass(frozen=True)
class ObserverModel:
    """How a simulated participant answers."""

    accuracy: dict[str, float] = field(default_factory=lambda: dict(PAPER_ACCURACY))
    catch_accuracy: float = 0.95
    practice_accuracy: float = 0.9  # practice trials are easy and answered with feedback


@dataclass
class Outcome:
    """What happened to one simulated participant."""

    index: int
    status: str  # stored | stored_earlier | already_submitted | failed
    participant_id: str | None = None
    condition: str | None = None
    tries: int = 0  # tries of the submission request
    retries: int = 0  # retried requests of this participant, all kinds
    error: str | None = None
    main_correct: int = 0
    main_trials: int = 0
    submission: dict[str, Any] | None = None


def _answer(correct: bool, correct_side: str, rng: np.random.Generator) -> int:
    side = correct_side if correct else ("right" if correct_side == "left" else "left")
    confidence = int(rng.choice([1, 2, 3], p=_CONFIDENCE_P[bool(correct)]))
    return encode_response(side, confidence)


def make_submission(
    enrolment: dict[str, Any], key: dict[str, dict[str, str]], model: ObserverModel, seed: int
) -> tuple[dict[str, Any], int, int]:
    """(submission body, main trials correct, main trials) for one enrolled participant.

    The browser never learns the correct side of scored trials; this observer is an oracle
    with a set accuracy, so it gets the answer ``key`` (trial id → correct side and kind) from
    the server's admin endpoint, decides *whether* to be right, and the server scores the side.
    """
    rng = np.random.default_rng([seed, int(enrolment["participant_number"])])
    p = model.accuracy[enrolment["condition"]]
    answers: list[dict[str, Any]] = []
    rts: list[float] = []

    def respond(trial_id: str, p_correct: float, attempt: int) -> bool:
        correct = bool(rng.random() < p_correct)
        rt = float(np.exp(rng.normal(np.log(5000.0), 0.4)))
        rts.append(rt)
        response = _answer(correct, key[trial_id]["correct_side"], rng)
        answers.append(
            {"trial_id": trial_id, "attempt": attempt, "response": response, "rt_ms": round(rt, 1)}
        )
        return correct

    attempts, passed = 0, True
    if enrolment["practice"]:
        passed = False
        while not passed and attempts < enrolment["settings"]["max_practice_attempts"]:
            attempts += 1
            passed = all(
                [
                    respond(t["trial_id"], model.practice_accuracy, attempts)
                    for t in enrolment["practice"]
                ]
            )
    main_correct = main_total = 0
    for trial in enrolment["trials"] if passed else []:  # a failed practice ends the study
        is_catch = key[trial["trial_id"]]["kind"] == "catch"
        correct = respond(trial["trial_id"], model.catch_accuracy if is_catch else p, 1)
        if not is_catch:
            main_correct += correct
            main_total += 1
    instructions = float(rng.uniform(20_000, 90_000))
    body = {
        "token": enrolment["token"],
        "responses": answers,
        "instructions_ms": round(instructions, 1),
        "total_ms": round(instructions + sum(rts) + 30_000, 1),
        "practice_attempts": attempts,
        "practice_passed": passed,
        "user_agent": "fvlab-simulated-participant",
    }
    return body, main_correct, main_total


class _Gone(Exception):
    """The server answered with a final (non-retryable) status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one request on network errors / 5xx: at most ``tries``, within ``budget_s``."""

    tries: int = 10
    budget_s: float = 30.0
    first_wait_s: float = 0.1
    max_wait_s: float = 2.0


async def _request(
    client, method: str, url: str, policy: RetryPolicy, outcome: Outcome, **kwargs
) -> tuple:
    """(json, tries used); raises _Gone on 4xx and the last error when retries run out."""
    import httpx

    deadline = time.monotonic() + policy.budget_s
    wait, last = policy.first_wait_s, None
    for attempt in range(1, policy.tries + 1):
        try:
            response = await client.request(method, url, **kwargs)
            if response.status_code < 400:
                return response.json(), attempt
            if response.status_code < 500:
                try:
                    detail = response.json().get("detail", "")
                except ValueError:
                    detail = response.text
                retried = "(after retry) " if attempt > 1 else ""
                raise _Gone(response.status_code, f"{retried}{detail}")
            last = RuntimeError(f"server error {response.status_code}")
        except httpx.TransportError as exc:
            last = exc
        if attempt == policy.tries or time.monotonic() + wait > deadline:
            break
        outcome.retries += 1
        await asyncio.sleep(wait)
        wait = min(wait * 2, policy.max_wait_s)
    raise RuntimeError(f"{method} {url} failed after {attempt} tries: {last!r}")


async def _participant(
    client, index: int, model: ObserverModel, seed: int, admin: dict, policy: RetryPolicy
) -> Outcome:
    outcome = Outcome(index=index, status="failed")
    body = {
        "prolific_pid": f"sim-{seed}-{index:05d}",
        "study_id": f"fvlab-simulation-{seed}",
        "session_id": f"sim-session-{index:05d}",
    }
    try:
        # With the admin token the server resumes an unsubmitted participant (a re-run).
        enrolment, _ = await _request(
            client, "POST", "api/participants", policy, outcome, json=body, headers=admin
        )
    except _Gone as exc:
        outcome.status = "already_submitted" if exc.status == 409 else "failed"
        outcome.error = str(exc)
        return outcome
    except RuntimeError as exc:
        outcome.error = str(exc)
        return outcome
    pid = enrolment["participant_id"]
    outcome.participant_id, outcome.condition = pid, enrolment["condition"]
    try:
        key, _ = await _request(
            client, "GET", f"api/participants/{pid}/key", policy, outcome, headers=admin
        )
        submission, outcome.main_correct, outcome.main_trials = make_submission(
            enrolment, key, model, seed
        )
        outcome.submission = submission
        _, outcome.tries = await _request(
            client, "POST", f"api/participants/{pid}/submission", policy, outcome, json=submission
        )
        outcome.status = "stored"
    except _Gone as exc:
        # A 409 after a retry: an earlier try was stored but its answer was lost.
        lost_answer = exc.status == 409 and "(after retry)" in str(exc)
        outcome.status = "stored_earlier" if lost_answer else "failed"
        outcome.error = str(exc)
    except RuntimeError as exc:
        outcome.error = str(exc)
    return outcome


async def _run(
    url: str,
    n: int,
    model: ObserverModel,
    seed: int,
    concurrency: int,
    admin_token: str,
    policy: RetryPolicy,
    on_done,
    transport=None,
) -> list[Outcome]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    admin = {"Authorization": f"Bearer {admin_token}"}
    base = url.rstrip("/") + "/"
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=20.0, transport=transport
    ) as client:

        async def one(i: int) -> Outcome:
            async with semaphore:
                outcome = await _participant(client, i, model, seed, admin, policy)
            on_done(outcome)
            return outcome

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def simulate_participants(
    url: str,
    n_participants: int,
    admin_token: str,
    model: ObserverModel | None = None,
    seed: int = 0,
    concurrency: int = 20,
    policy: RetryPolicy | None = None,
    timeout_s: float = 900.0,
    show_progress: bool = True,
    on_outcome: Callable[[Outcome], None] | None = None,
    transport=None,
) -> list[Outcome]:
    """Run ``n_participants`` simulated participants against the server at ``url``.

    ``on_outcome`` is called as each participant finishes (after the server's answer);
    ``transport`` replaces httpx's network transport (tests use it to lose answers).
    """
    from fvlab.progress import progress_bar

    if n_participants < 1 or concurrency < 1:
        raise FvlabError(
            f"need >= 1 participant and concurrency >= 1, got {n_participants}, {concurrency}"
        )
    model = model or ObserverModel()
    policy = policy or RetryPolicy()
    with progress_bar("simulated participants", n_participants, show_progress) as advance:

        def done(outcome: Outcome) -> None:
            advance(1, info=outcome.status)
            if on_outcome is not None:
                on_outcome(outcome)

        coroutine = _run(
            url, n_participants, model, seed, concurrency, admin_token, policy, done, transport
        )
        try:
            return asyncio.run(asyncio.wait_for(coroutine, timeout_s))
        except TimeoutError as exc:
            raise FvlabError(
                f"the simulation did not finish within {timeout_s:.0f} s; is the server at "
                f"{url} overloaded or down?"
            ) from exc


def summarise(outcomes: list[Outcome], model: ObserverModel) -> dict[str, Any]:
    """Counts by status, and per condition the simulated vs realised main-trial accuracy."""
    by_status: dict[str, int] = {}
    per_condition: dict[str, dict[str, float]] = {}
    for o in outcomes:
        by_status[o.status] = by_status.get(o.status, 0) + 1
        if o.condition and o.status in ("stored", "stored_earlier"):
            entry = per_condition.setdefault(
                o.condition,
                {
                    "participants": 0,
                    "correct": 0,
                    "trials": 0,
                    "simulated_accuracy": model.accuracy[o.condition],
                },
            )
            entry["participants"] += 1
            entry["correct"] += o.main_correct
            entry["trials"] += o.main_trials
    for entry in per_condition.values():
        entry["realised_accuracy"] = entry["correct"] / max(entry["trials"], 1)
    return {
        "participants": len(outcomes),
        "by_status": by_status,
        "conditions": per_condition,
        "outcomes": [{k: v for k, v in asdict(o).items() if k != "submission"} for o in outcomes],
    }
