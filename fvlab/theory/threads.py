"""Scoped limit on PyTorch's intra-op threads (the theory demonstrations use tiny tensors)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def limited_threads(n: int = 1) -> Iterator[None]:
    """Run the block with at most ``n`` intra-op threads, then restore the previous setting.

    On tensors of a few hundred elements extra threads only add synchronisation cost (and on a
    busy machine they can slow work down by orders of magnitude).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, previous)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
