"""What server and browser agree on: image ids, rejections, the trial view sent out.

The server's settings are :class:`fvlab.study.settings.ServerSettings`.

A trial as the browser sees it names images by opaque relative URLs (``study/<id>.png``, see
:func:`image_ids`), so neither a file name such as ``occluded_max.png`` nor the page source
gives the answer away, and the page also works under a reverse-proxy prefix. The correct side
is only revealed for practice trials, which give feedback; the server scores all answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from fvlab.errors import FvlabError
from fvlab.study.trials import Trial

IMAGE_PREFIX = "study/"


def image_ids(paths: Iterable[str], manifest_bytes: bytes) -> dict[str, str]:
    """Path → opaque id: ``sha256(manifest bytes, path)`` truncated to 20 hex digits.

    Stable across server restarts (it depends only on the manifest) and not guessable from
    the page without the manifest, which the server never serves.
    """
    secret = hashlib.sha256(manifest_bytes).digest()
    return {p: hashlib.sha256(secret + p.encode()).hexdigest()[:20] for p in paths}


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
