"""The Ray engine: each shard is a Ray task, on a local Ray or on a cluster.

The common argument (the model) is put into Ray's object store once; every task gets a
reference to it and its own shard. A task asks for ``threads`` CPUs (and one GPU when the
cluster has GPUs) and sets torch's intra-op threads to match, so ``n`` workers × ``threads``
fill the machine without oversubscription. A task whose worker process dies (killed, out of
memory, node lost) is resubmitted by Ray up to ``max_retries`` times; because a shard's result
depends only on its arguments, the retried result is identical. Results come back in
completion order and are handed to ``on_done`` at once.

With ``address=None`` a local Ray is started for the job (one CPU per core, no dashboard) and
shut down afterwards; if Ray is already initialised in this process (a notebook, a test
fixture) that instance is used and left running.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from fvlab.engine.base import OnDone, ShardFn
from fvlab.errors import FvlabError
from fvlab.progress import progress_bar


def _ray():
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise FvlabError(
            "engine ray: Ray is not installed; install the extra: pip install 'fvlab[ray]'"
        ) from exc
    return ray


def run_shard(fn: ShardFn, common: Any, shard: Any, threads: int) -> Any:
    """What a Ray worker runs: fn(common, shard) with ``threads`` torch threads (on the GPU Ray
    assigned, when it assigned one)."""
    import torch

    torch.set_num_threads(threads)
    if torch.cuda.is_available() and hasattr(common, "to"):
        common = common.to("cuda")
    return fn(common, shard)


class RayEngine:
    """Runs shards as Ray tasks; see the module docstring."""

    name = "ray"

    def __init__(self, address: str | None = None, threads: int = 1, max_retries: int = 3) -> None:
        if threads < 1:
            raise FvlabError(f"threads: must be at least 1, not {threads}")
        self.address, self.threads, self.max_retries = address, threads, max_retries

    def _connect(self, ray) -> bool:
        """Connect to (or start) Ray; True when this call started it (and must stop it)."""
        if ray.is_initialized():
            return False
        options: dict[str, Any] = dict(
            include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
        )
        try:
            if self.address is None:
                ray.init(num_cpus=os.cpu_count() or 1, **options)
            else:
                ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray"
            raise FvlabError(f"ray_address: could not connect to {where}: {exc}") from exc
        return True

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
        if not shards:
            return
        ray = _ray()
        started = self._connect(ray)
        try:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
            task = ray.remote(run_shard).options(
                num_cpus=self.threads, num_gpus=gpus, max_retries=self.max_retries
            )
            common_ref = ray.put(common)
            pending = {
                task.remote(fn, common_ref, shard, self.threads): i
                for i, shard in enumerate(shards)
            }
            with progress_bar(description, len(shards), show_progress) as advance:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    index = pending.pop(done[0])
                    on_done(index, ray.get(done[0]))
                    advance(1)
        finally:
            if started:
                ray.shutdown()
