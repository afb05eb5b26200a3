"""A sweep split into dataset slices, run by an engine, merged in slice order.

``sharded_sweep`` cuts the dataset into slices of ``shard_images`` images (a multiple of the
batch size, so every shard sees the same batches one process would), sweeps each slice as one
shard (:func:`fvlab.activations.sweep.sweep` on ``dataset.slice(a, b)``; image indices stay
global) and merges the shards' statistics with :func:`merge_sweeps` in slice order. Because
the plan and the merge order are fixed by the arguments alone, the local and the Ray engine
give bit-identical statistics. Against one unsharded pass, counts, min, max, the active count,
the top-k values and indices and the sample are identical; mean and variance agree to float64
rounding (Chan et al.'s pairwise update, merged in a different tree).

Shard payloads (for ``out/shards``) are plain dicts of tensors and numbers, so a resumed job
reads them back without unpickling code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fvlab.activations.accumulators import Moments, Sample, TopK
from fvlab.activations.sweep import LayerStats, SweepResult, merge_sweeps, sweep
from fvlab.errors import FvlabError

if TYPE_CHECKING:
    from fvlab.data.dataset import Dataset
    from fvlab.engine.base import Engine
    from fvlab.jobs import Settings
    from fvlab.models.zoo import LoadedModel

_ACCUMULATORS = {cls.__name__: cls for cls in (Moments, TopK, Sample)}


def _accumulator_payload(acc: Any) -> dict[str, Any] | None:
    if acc is None:
        return None
    fields = {}
    for f in dataclasses.fields(acc):
        value = getattr(acc, f.name)
        fields[f.name] = (
            torch.from_numpy(np.ascontiguousarray(value))
            if isinstance(value, np.ndarray)
            else value
        )
    return {"kind": type(acc).__name__, "fields": fields}


def _accumulator(payload: dict[str, Any] | None) -> Any:
    if payload is None:
        return None
    fields = {
        k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in payload["fields"].items()
    }
    return _ACCUMULATORS[payload["kind"]](**fields)


def sweep_payload(result: SweepResult) -> dict[str, Any]:
    """A :class:`SweepResult` as plain data (tensors, numbers, strings)."""
    return {
        "ranges": [list(r) for r in result.ranges],
        "stats": [
            {
                "layer": s.layer,
                "reduction": s.reduction,
                "moments": _accumulator_payload(s.moments),
                "top": _accumulator_payload(s.top),
                "sample": _accumulator_payload(s.sample),
            }
            for s in result.stats.values()
        ],
    }


def sweep_from_payload(payload: dict[str, Any]) -> SweepResult:
    """The :class:`SweepResult` of :func:`sweep_payload`."""
    stats = {}
    for s in payload["stats"]:
        stats[(s["layer"], s["reduction"])] = LayerStats(
            s["layer"],
            s["reduction"],
            _accumulator(s["moments"]),
            _accumulator(s["top"]),
            _accumulator(s["sample"]),
        )
    return SweepResult(stats, [tuple(r) for r in payload["ranges"]])


def sweep_shard(model: LoadedModel, shard: tuple) -> dict[str, Any]:
    """One shard: ``(dataset slice, layers, sweep keyword arguments)`` → its payload."""
    dataset, layers, options = shard
    return sweep_payload(sweep(model, dataset, layers, show_progress=False, **options))


def slice_plan(n_images: int, shard_images: int, batch_size: int) -> list[tuple[int, int]]:
    """Positions [a, b) of the shards: ``shard_images`` rounded up to whole batches."""
    if shard_images < 1:
        raise FvlabError(f"shard_images: must be at least 1, not {shard_images}")
    step = -(-shard_images // batch_size) * batch_size
    return [(a, min(a + step, n_images)) for a in range(0, n_images, step)]


def sharded_sweep(
    model: LoadedModel,
    dataset: Dataset,
    layers: Sequence[str] | Mapping[str, str | Sequence[str]],
    *,
    shard_images: int = 2048,
    engine: Engine | None = None,
    out: Path | None = None,
    resume: bool = False,
    job_settings: Settings | None = None,
    show_progress: bool = True,
    part: str | None = None,
    **options: Any,
) -> SweepResult:
    """:func:`~fvlab.activations.sweep.sweep` of ``dataset`` in shards of ``shard_images``
    images (see the module docstring); ``options`` are sweep's (reduce, moments, top_k, sample,
    seed, batch_size). With ``out``, each shard is kept in ``out/shards`` (``job_settings``
    name the job in the store's fingerprint; ``part``: keep them in ``out/shards/<part>``, next
    to a job's other shards) and ``resume`` reuses intact ones."""
    from fvlab.engine.jobs import shard_store
    from fvlab.engine.run import run_shards

    if "consumer" in options:
        raise FvlabError("a sharded sweep keeps statistics only; a consumer cannot be sharded")
    batch_size = options.setdefault("batch_size", 256)
    plan = slice_plan(len(dataset), shard_images, batch_size)
    layer_spec = dict(layers) if isinstance(layers, Mapping) else list(layers)
    shards = [(dataset.slice(a, b), layer_spec, options) for a, b in plan]
    what = {"layers": layer_spec, "options": dict(options), "dataset": repr(dataset)}
    if job_settings is not None:
        what["job"] = job_settings.to_dict()
    described = [[dataset.start + a, dataset.start + b] for a, b in plan]
    store = shard_store(model, "sweep", what, described, out, resume, part=part)
    payloads = run_shards(
        sweep_shard,
        model,
        shards,
        [f"sweep-{k:05d}" for k in range(len(shards))],
        engine=engine,
        store=store,
        show_progress=show_progress,
        description=f"sweeping {len(dataset)} images",
    )
    return merge_sweeps(sweep_from_payload(p) for p in payloads)
