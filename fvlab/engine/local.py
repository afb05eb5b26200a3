"""The local engine: every shard in this process, one after another, in shard order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fvlab.engine.base import OnDone, ShardFn
from fvlab.progress import progress_bar


class LocalEngine:
    """Runs ``fn(common, shard)`` for each shard here; torch uses this process's threads."""

    name = "local"

    def map(
        self,
        fn: ShardFn,
        common: Any,
        shards: Sequence[Any],
        *,
        on_done: OnDone,
        show_progress: bool = True,
        description: str = "shards",
    ) -> None:
        with progress_bar(description, len(shards), show_progress and len(shards) > 1) as advance:
            for i, shard in enumerate(shards):
                on_done(i, fn(common, shard))
                advance(1)
