"""Writing machine-readable results (``summary.json``) atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_summary(out: Path, summary: dict[str, Any], name: str = "summary.json") -> Path:
    """Write a JSON summary atomically (non-finite floats become null)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_clean(summary), indent=2))
    tmp.replace(path)
    return path


def read_versioned_json(path: Path, format: str, version: int, remedy: str) -> dict[str, Any]:
    """The JSON object in ``path`` whose ``format`` field is ``format`` and ``version`` field is
    ``version`` (torch-free; saved-model and study manifests use it). A missing file is an
    :class:`~fvlab.errors.FvlabError`; invalid JSON, another format or another version a
    :class:`~fvlab.errors.CorruptFileError`. Every message ends with ``remedy``."""
    from fvlab.errors import CorruptFileError, FvlabError

    path = Path(path)
    if not path.is_file():
        raise FvlabError(f"{path.parent} has no {path.name}. {remedy}")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON ({exc}). {remedy}") from exc
    if not isinstance(document, dict) or document.get("format") != format:
        raise CorruptFileError(f"{path} is not a {format!r} file. {remedy}")
    if document.get("version") != version:
        raise CorruptFileError(
            f"{path} has {format} version {document.get('version')!r}; this fvlab reads version "
            f"{version}. {remedy}"
        )
    return document
