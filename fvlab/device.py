"""Choosing the torch device at call time (never at import time)."""

from __future__ import annotations

import torch

from fvlab.errors import FvlabError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return a concrete device; ``"auto"`` (or None) means cuda, then mps, then cpu."""
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise FvlabError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise FvlabError(
            f"device {device!r} requested but CUDA is not available; "
            "use device='cpu' (--device cpu)"
        )
    return resolved
