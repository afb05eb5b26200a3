"""run_shards: the one way a job runs its shards — through an engine, into a store, resumable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    on_result: Callable[[int, Any], Any] | None = None,
) -> list[Any]:
    """``[fn(common, shard) for shard in shards]``, in shard order.

    Shards the ``store`` already holds intact (a resumed job) are read back instead of being
    computed; every other shard runs on ``engine`` (default: this process) and is saved into the
    store the moment it finishes. ``names[i]`` is shard i's file name in the store.

    ``on_result(i, result)``, if given, runs in this process once per shard as soon as its
    result is there (computed, or read back from the store) — e.g. to write the shard's PNGs —
    and what it returns is kept in place of the result, so a job can keep a compact record of
    each shard instead of all of them (memory bounded by one shard's result).
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
            results[i] = cached if on_result is None else on_result(i, cached)

    def done(position: int, result: Any) -> None:
        i = todo[position]
        if store is not None:
            store.save(names[i], result)
        results[i] = result if on_result is None else on_result(i, result)

    engine.map(
        fn,
        common,
        [shards[i] for i in todo],
        on_done=done,
        show_progress=show_progress,
        description=description,
    )
    return results
