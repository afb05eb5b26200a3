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
