"""What server and browser agree on: image ids and bytes, strict JSON, the trial view sent out.

The server's settings are :class:`fvlab.study.settings.ServerSettings`.

Nothing the page receives before answering may tell the correct side or the trial kind
(main or catch) — only the pixels may:

* **Image URLs** are ``study/<participant id>/<id>.png`` with ``id = HMAC-SHA256(server
  secret, participant id ‖ trial id ‖ path)`` (32 hex digits, :class:`ImageIds`): opaque,
  different for every participant (ids cannot be pooled across enrolments) and for every
  trial (a unit's references shown in two trials get two ids, so how often an id recurs says
  nothing about the unit, hence the kind), and not computable without the secret, which
  lives in the database (:func:`fvlab.study.storage.server_secret`).
* **Image bytes** are every study PNG padded to ONE common length with a private ancillary
  chunk (``fvPd``, ignored by decoders; :func:`pad_png`), so the size of a response says
  nothing (the wrong occlusion covers more structure and compresses better: left alone, the
  larger file would be the correct one more often). No ``Last-Modified``; no ETag.
* **Trials** carry no answer for main and catch trials, the same ``kind`` (``test``) for both,
  and ids that only give their position (see :mod:`fvlab.study.trials`).

Request bodies are parsed by :func:`strict_json`: NaN, ±Infinity, numbers too large for a
float, lone surrogates and NUL characters are refused (422) instead of reaching the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fvlab.errors import FvlabError
from fvlab.study.trials import Trial

IMAGE_PREFIX = "study/"
PAD_CHUNK = b"fvPd"  # ancillary (f), private (v), reserved bit clear (P), safe to copy (d)
_CHUNK_OVERHEAD = 12  # length, type, CRC
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


class RequestRejected(FvlabError):
    """A request the server refuses; ``status`` is the HTTP status (4xx) to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ImageIds:
    """Per-participant, per-trial opaque ids of the study's images (see the module docstring).

    ``trial_paths(participant id)`` gives ``{trial id: [paths]}`` of a participant (None:
    unknown); the id → path table of a participant is built from it on first use and kept
    (an LRU of ``cache_size`` participants)."""

    def __init__(
        self,
        secret: bytes,
        trial_paths: Callable[[str], dict[str, list[str]] | None],
        cache_size: int = 512,
    ) -> None:
        self.secret = secret
        self.trial_paths = trial_paths
        self.cache: OrderedDict[str, dict[str, str]] = OrderedDict()
        self.cache_size = cache_size

    def image_id(self, participant_id: str, trial_id: str, path: str) -> str:
        message = f"{participant_id}\x00{trial_id}\x00{path}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:32]

    def url(self, participant_id: str, trial_id: str, path: str) -> str:
        """The relative URL of ``path`` in one trial of one participant."""
        return f"{IMAGE_PREFIX}{participant_id}/{self.image_id(participant_id, trial_id, path)}.png"

    def path(self, participant_id: str, image_id: str) -> str | None:
        """The study path of ``image_id`` for this participant (None: not one of theirs)."""
        table = self.cache.get(participant_id)
        if table is None:
            trials = self.trial_paths(participant_id)
            if trials is None:
                return None
            table = {
                self.image_id(participant_id, trial_id, p): p
                for trial_id, paths in trials.items()
                for p in paths
            }
            self.cache[participant_id] = table
            if len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(participant_id)
        return table.get(image_id)


def pad_png(data: bytes, length: int) -> bytes:
    """``data`` (a PNG) grown to exactly ``length`` bytes by a zero-filled ``fvPd`` chunk
    inserted before IEND; needs ``length >= len(data) + 12``."""
    if not data.endswith(_IEND):
        raise FvlabError("not a PNG file ending in IEND; rebuild the study")
    n = length - len(data) - _CHUNK_OVERHEAD
    if n < 0:
        raise FvlabError(f"cannot pad a {len(data)}-byte PNG to {length} bytes")
    payload = bytes(n)
    chunk = struct.pack(">I", n) + PAD_CHUNK + payload
    chunk += struct.pack(">I", zlib.crc32(PAD_CHUNK + payload) & 0xFFFFFFFF)
    return data[: -len(_IEND)] + chunk + _IEND


class PaddedImages:
    """The study's PNG files served at one common length (the largest file + 12 bytes), read
    once and kept (an LRU of ``cache_size`` files)."""

    def __init__(self, files: dict[str, Path], cache_size: int = 20_000) -> None:
        self.files = files
        self.length = max((p.stat().st_size for p in files.values()), default=0) + _CHUNK_OVERHEAD
        self.cache: OrderedDict[str, bytes] = OrderedDict()
        self.cache_size = cache_size

    def get(self, path: str) -> bytes:
        data = self.cache.get(path)
        if data is None:
            data = pad_png(self.files[path].read_bytes(), self.length)
            self.cache[path] = data
            if len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return data


def _reject_constant(name: str) -> Any:
    raise RequestRejected(422, f"{name} is not valid JSON; send null or a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise RequestRejected(422, f"number {text[:40]} is too large")
    return value


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise RequestRejected(422, "text may not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestRejected(422, "text contains a lone surrogate (invalid Unicode)") from exc


def strict_json(body: bytes) -> Any:
    """Parse a request body: UTF-8 JSON with only finite numbers and valid, NUL-free text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestRejected(422, "the request body is not UTF-8") from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except RequestRejected:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers
        raise RequestRejected(422, f"the request body is not valid JSON: {exc}") from exc
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                _check_text(key)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**63:
            raise RequestRejected(422, "integer out of range")
    return data


def trial_images(trial: dict[str, Any]) -> list[str]:
    """Every image path a stored trial (as a dict) shows."""
    return [trial["query"], trial["left"], trial["right"], *trial["references"]]


def browser_trial(trial: Trial, image_url: Callable[[str, str], str]) -> dict[str, Any]:
    """The part of a stored trial the browser gets (image URLs by ``image_url(trial id,
    path)``; no answer for scored trials)."""
    url = lambda path: image_url(trial.trial_id, path)  # noqa: E731
    return {
        "trial_id": trial.trial_id,
        "kind": "practice" if trial.kind == "practice" else "test",  # catch trials look alike
        "condition": trial.condition,
        "references": [url(p) for p in trial.references],
        "query": url(trial.query),
        "left": url(trial.left),
        "right": url(trial.right),
        "correct_side": trial.correct_side if trial.kind == "practice" else None,
    }
