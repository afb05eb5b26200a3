"""run_shards: the one way a job runs its shards — through an engine, into a store, resumable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fvlab.engine.base import Engine, ShardFn
from fvlab.engine.store import ShardStore


def run_shards(
    fn: ShardFn,
    common: Any,
    shards: Sequence[Any],
    names: Sequence[str],
    *,
    engine: Engine | None = None,
    store: ShardStore | None = None,
    show_progress: bool = True,
    description: str = "shards",
) -> list[Any]:
    """``[fn(common, shard) for shard in shards]``, in shard order.

    Shards the ``store`` already holds intact (a resumed job) are read back instead of being
    computed; every other shard runs on ``engine`` (default: this process) and is saved into the
    store the moment it finishes. ``names[i]`` is shard i's file name in the store.
    """
    from fvlab.engine.local import LocalEngine

    engine = engine or LocalEngine()
    results: list[Any] = [None] * len(shards)
    todo = []
    for i, name in enumerate(names):
        cached = store.load(name) if store is not None else None
        if cached is None:
            todo.append(i)
        else:
            results[i] = cached

    def done(position: int, result: Any) -> None:
        i = todo[position]
        if store is not None:
            store.save(names[i], result)
        results[i] = result

    engine.map(
        fn,
        common,
        [shards[i] for i in todo],
        on_done=done,
        show_progress=show_progress,
        description=description,
    )
    return results
