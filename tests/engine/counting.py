"""A local engine that counts the shards it runs (how the resume tests see what was redone).
Import it as ``from tests.engine.counting import CountingEngine``."""

from __future__ import annotations

from fvlab.engine.local import LocalEngine


class CountingEngine(LocalEngine):
    """The local engine, recording how many shards it was asked to run."""

    def __init__(self) -> None:
        self.ran = 0

    def map(self, fn, common, shards, **kw):
        self.ran += len(shards)
        super().map(fn, common, shards, **kw)
