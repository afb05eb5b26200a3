"""What a job needs to shard its work: the store of its output folder, named by a fingerprint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fvlab.jobs import SettingsError

if TYPE_CHECKING:
    from fvlab.engine.store import ShardStore
    from fvlab.jobs import Settings
    from fvlab.models.zoo import LoadedModel


def shard_store(
    model: LoadedModel,
    job: str,
    settings: Settings | Mapping[str, Any],
    plan: Sequence[Any],
    out: Path | None,
    resume: bool,
    *,
    part: str | None = None,
) -> ShardStore | None:
    """The :class:`~fvlab.engine.store.ShardStore` of ``out`` for this job (None without
    ``out``). Its fingerprint: the job's name, its settings, the shard ``plan`` and the model's
    name and parameter hash — a resumed folder must match all of them. A job with several kinds
    of shards (an audit's sweep and renders) gives each its ``part``: its own store in
    ``out/shards/<part>``."""
    if out is None:
        if resume:
            raise SettingsError("resume", "needs the output folder of the earlier run (--out)")
        return None
    from fvlab.engine.store import ShardStore, model_sha256

    fingerprint = {
        "job": job,
        "settings": dict(settings) if isinstance(settings, Mapping) else settings.to_dict(),
        "plan": [p if isinstance(p, str) or not isinstance(p, Sequence) else list(p) for p in plan],
        "model": model.name,
        "model_sha256": model_sha256(model.module),
    }
    return ShardStore(Path(out), fingerprint, resume=resume, part=part)
