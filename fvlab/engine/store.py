"""Shard results in a job's output folder, so a job can be resumed and its shards checked.

Layout: ``OUT/shards/index.json`` (``OUT/shards/<part>/index.json`` for each part of a job with
several kinds of shards) holds the job's *fingerprint* (what was computed: the job's
name, its settings, the shard plan and a SHA-256 of the model's parameters and buffers) and, per
finished shard, the SHA-256 of its file ``OUT/shards/<name>.pt``. A shard file is a plain
payload (dicts, lists, numbers, strings, tensors) written with ``torch.save`` to a temporary
name and renamed into place, and the index is rewritten the same way after each shard, so an
interrupted job leaves only whole, listed shards.

On ``resume``, a shard counts as done when it is listed, its file exists and the file's SHA-256
matches the index — a missing, truncated or altered file is computed again. A folder whose
fingerprint differs (other settings, another model) is refused rather than mixed in. Without
``resume``, earlier shard files of the folder are removed first.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from fvlab.errors import FvlabError

INDEX = "index.json"
FORMAT = "fvlab-shards"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_sha256(module: torch.nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in list(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ShardStore:
    """The shard files of one job in ``out/shards``; see the module docstring."""

    def __init__(
        self,
        out: Path,
        fingerprint: dict[str, Any],
        *,
        resume: bool = False,
        part: str | None = None,
    ) -> None:
        self.folder = Path(out) / "shards" / part if part else Path(out) / "shards"
        self.fingerprint = json.loads(json.dumps(fingerprint))  # JSON-normalised for comparison
        self.done: dict[str, str] = {}
        index = self.folder / INDEX
        if resume and index.is_file():
            self.done = self._read_index(index)
        elif not resume and self.folder.is_dir():
            for old in [*self.folder.glob("*.pt"), index]:
                old.unlink(missing_ok=True)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _read_index(self, index: Path) -> dict[str, str]:
        try:
            data = json.loads(index.read_text())
        except (OSError, ValueError) as exc:
            raise FvlabError(f"resume: {index} is not a readable shard index ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise FvlabError(f"resume: {index} is not an fvlab shard index")
        theirs = data.get("fingerprint", {})
        if theirs != self.fingerprint:
            keys = sorted(
                k
                for k in set(theirs) | set(self.fingerprint)
                if theirs.get(k) != self.fingerprint.get(k)
            )
            raise FvlabError(
                f"resume: {self.folder} holds shards of a different job (differs in: "
                f"{', '.join(keys)}); use another --out, or run without --resume to start over"
            )
        return dict(data.get("shards", {}))

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.pt"

    def load(self, name: str) -> Any | None:
        """The shard's payload if it is done and intact, else None."""
        expected = self.done.get(name)
        path = self._path(name)
        if expected is None or not path.is_file() or file_sha256(path) != expected:
            self.done.pop(name, None)
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    def save(self, name: str, payload: Any) -> None:
        """Write the shard's payload and list it in the index (both atomically)."""
        path = self._path(name)
        _write_atomic(path, lambda f: torch.save(payload, f))
        self.done[name] = file_sha256(path)
        record = {"format": FORMAT, "fingerprint": self.fingerprint, "shards": self.done}
        text = json.dumps(record, indent=1, sort_keys=True).encode()
        _write_atomic(self.folder / INDEX, lambda f: f.write(text))
