"""The theory demonstrations use tiny tensors: run them on one intra-op thread."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    from fvlab.theory.threads import limited_threads

    with limited_threads(1):
        yield
