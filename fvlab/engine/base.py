"""The engine contract: run a job's shards, hand each result back as soon as it is done.

A job splits its heavy work into *shards* — a unit range to render, a dataset slice to sweep —
and gives an engine one function, one *common* argument (the model: shipped to each worker
once, not once per shard) and the shards' own arguments:

    engine.map(fn, common, shards, on_done=…)   # calls on_done(i, fn(common, shards[i]))

``on_done`` runs in the calling process, in completion order (not shard order); the job writes
each result into its output folder there (:mod:`fvlab.engine.store`) and merges all of them in
shard order at the end, so the merged result does not depend on the engine or the order in
which shards finish. Engines: :class:`~fvlab.engine.local.LocalEngine` (this process, one
shard after another) and :class:`~fvlab.engine.ray_engine.RayEngine` (Ray tasks on a local or
remote cluster, retried when a worker dies).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

#: fn(common, shard) → result; must be a module-level function (it is pickled for Ray)
ShardFn = Callable[[Any, Any], Any]
#: on_done(shard index, result), called in the job's process as each shard finishes
OnDone = Callable[[int, Any], None]

ENGINE_NAMES = ("local", "ray")


class Engine(Protocol):
    """Runs shards; see the module docstring."""

    name: str

    def map(
        self,
        fn: ShardFn,
        common: Any,
        shards: Sequence[Any],
        *,
        on_done: OnDone,
        show_progress: bool = True,
        description: str = "shards",
    ) -> None: ...


def make_engine(name: str = "local", *, address: str | None = None, threads: int = 1) -> Engine:
    """The engine called ``name``: 'local', or 'ray' (``address`` of a running cluster, e.g.
    'ray://head:10001' or 'auto'; None starts a local Ray with one worker per CPU core, each
    using ``threads`` torch threads)."""
    from fvlab.errors import FvlabError

    if name == "local":
        if address is not None:
            raise FvlabError("ray_address: only used with --engine ray")
        from fvlab.engine.local import LocalEngine

        return LocalEngine()
    if name == "ray":
        from fvlab.engine.ray_engine import RayEngine

        return RayEngine(address=address, threads=threads)
    raise FvlabError(f"engine: must be one of {', '.join(ENGINE_NAMES)}, not {name!r}")
