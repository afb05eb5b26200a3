"""What server and browser agree on: study settings, rejections, the trial view sent out.

A trial as the browser sees it names images by opaque relative URLs (``study/<id>.png``, see
:func:`image_ids`), so neither a file name such as ``occluded_max.png`` nor the page source
gives the answer away, and the page also works under a reverse-proxy prefix. The correct side
is only revealed for practice trials, which give feedback; the server scores all answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fvlab.errors import FvlabError
from fvlab.study.trials import Trial, TrialConfig

IMAGE_PREFIX = "study/"


def image_ids(paths: Iterable[str], manifest_bytes: bytes) -> dict[str, str]:
    """Path → opaque id: ``sha256(manifest bytes, path)`` truncated to 20 hex digits.

    Stable across server restarts (it depends only on the manifest) and not guessable from
    the page without the manifest, which the server never serves.
    """
    secret = hashlib.sha256(manifest_bytes).digest()
    return {p: hashlib.sha256(secret + p.encode()).hexdigest()[:20] for p in paths}


@dataclass(frozen=True)
class StudySettings:
    """Server-side settings of one running study (all stored decisions derive from these)."""

    seed: int = 0
    trials: TrialConfig = field(default_factory=TrialConfig)
    max_practice_attempts: int = 5
    abandon_after_s: float = 3600.0  # an unsubmitted participant stops counting for balance
    feedback_ms: int = 1000
    completion_url: str | None = None  # e.g. https://app.prolific.com/submissions/complete?cc=X
    redirect_delay_ms: int = 3000
    max_body_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        if self.max_practice_attempts < 1:
            raise FvlabError(
                f"max practice attempts must be >= 1, got {self.max_practice_attempts}"
            )
        if self.max_body_bytes < 10_000:
            raise FvlabError(f"max body size must be >= 10000 bytes, got {self.max_body_bytes}")
        if self.completion_url is not None and not self.completion_url.startswith(
            ("http://", "https://", "/")
        ):
            raise FvlabError(
                f"completion URL must start with http://, https:// or /, got "
                f"{self.completion_url!r}"
            )

    def browser_view(self) -> dict[str, Any]:
        """The settings the experiment page needs."""
        return {
            "max_practice_attempts": self.max_practice_attempts,
            "feedback_ms": self.feedback_ms,
            "completion_url": self.completion_url or "complete",
            "redirect_delay_ms": self.redirect_delay_ms,
        }


class RequestRejected(FvlabError):
    """A request the server refuses; ``status`` is the HTTP status (4xx) to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def browser_trial(trial: Trial, image_url: Callable[[str], str]) -> dict[str, Any]:
    """The part of a stored trial the browser gets (image URLs; no answer for scored trials)."""
    return {
        "trial_id": trial.trial_id,
        "kind": "practice" if trial.kind == "practice" else "test",  # catch trials look alike
        "condition": trial.condition,
        "references": [image_url(p) for p in trial.references],
        "query": image_url(trial.query),
        "left": image_url(trial.left),
        "right": image_url(trial.right),
        "correct_side": trial.correct_side if trial.kind == "practice" else None,
    }
