"""Execution engines for a job's heavy work: shards run locally or on Ray (docs/scale.md).

``make_engine("local" | "ray", address=…)`` builds one; ``run_shards`` runs a job's shards
through it into a resumable :class:`ShardStore`.
"""

from fvlab.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Engine": "fvlab.engine.base",
        "ENGINE_NAMES": "fvlab.engine.base",
        "make_engine": "fvlab.engine.base",
        "LocalEngine": "fvlab.engine.local",
        "RayEngine": "fvlab.engine.ray_engine",
        "ShardStore": "fvlab.engine.store",
        "model_sha256": "fvlab.engine.store",
        "run_shards": "fvlab.engine.run",
    },
)
