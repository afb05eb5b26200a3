"""A unit's response along the straight pixel-space path from a natural image to its FV.

x(t) = (1 − t)·x_natural + t·x_fv, t ∈ [0, 1]; m(t) = the unit's activation map at x(t) (its
channel, every position; a linear layer's output is a map of one value) and r(t) its spatial
mean. A network built from convolutions, eval-mode BatchNorm, ReLUs, pooling and linear layers
is continuous in its input, so m is continuous: the change ‖m(t′) − m(t)‖∞ over an interval of
width w shrinks to 0 as w → 0. A hard gate (a classifier that switches a unit between two
computations, P1's fooling circuit) makes m jump — at every position where the two computations
differ, even where their spatial means happen to agree, which is why jumps are measured on the
map and not on r.

:func:`response_path` evaluates m on a grid, then bisects the ``candidates`` intervals with the
largest changes, each step keeping the half with the larger change. After ``bisections`` steps
the interval is 2^-bisections of a grid cell wide: a continuous m has changed by ≈ slope × width
there, a jump keeps its full height. All units are handled together in every step (units ×
grid, then units × candidates images), mixed and run ``batch_size`` images at a time
(:func:`path_maps`), so memory holds one batch of path images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fvlab.models.hooks import capture


def unit_maps(
    model, layer: str, units: torch.Tensor, images: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """Activation map of ``units[i]`` on ``images[i]``, flattened: (N, H·W), or (N, 1) for a
    linear layer."""
    out = []
    with torch.no_grad(), capture(model.module, [layer], detach=True) as cap:
        for first in range(0, images.shape[0], batch_size):
            chunk = images[first : first + batch_size].to(model.device)
            model(chunk)
            acts = cap[layer]
            acts = acts.flatten(2) if acts.ndim > 2 else acts.reshape(acts.shape[0], -1, 1)
            ids = units[first : first + batch_size].to(acts.device)
            out.append(acts[torch.arange(len(ids), device=acts.device), ids].cpu())
    return torch.cat(out).to(torch.float64)


def _mix(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x(t) for per-row t: start/end (N, C, H, W), t (N,)."""
    t = t.to(start.dtype).view(-1, 1, 1, 1)
    return (1 - t) * start + t * end


def path_maps(
    model,
    layer: str,
    units: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    owner: torch.Tensor,
    t: torch.Tensor,
    batch_size: int = 256,
) -> torch.Tensor:
    """Map of ``units[owner[k]]`` at x(t[k]) on the path ``start[owner[k]]`` → ``end[owner[k]]``
    (K, H·W). The images x(t) are mixed ``batch_size`` at a time, so memory holds one batch of
    path images (not units × grid of them); the maps are those of :func:`unit_maps`."""
    out = []
    for first in range(0, len(owner), batch_size):
        rows, ts = owner[first : first + batch_size], t[first : first + batch_size]
        out.append(unit_maps(model, layer, units[rows], _mix(start[rows], end[rows], ts)))
    return torch.cat(out)


@dataclass
class PathResponse:
    """r (the spatial mean) on the grid (U, G), the largest bisected jump of the map per unit
    (‖Δm‖∞, same units as the activations) and where it is (U,)."""

    t: torch.Tensor
    response: torch.Tensor
    jump: torch.Tensor
    jump_at: torch.Tensor
    width: float

    @property
    def total_variation(self) -> torch.Tensor:
        """Σ |r(t_{j+1}) − r(t_j)| over the grid (U,)."""
        return self.response.diff(dim=1).abs().sum(1)

    @property
    def non_monotonicity(self) -> torch.Tensor:
        """(total variation − |r(1) − r(0)|) / total variation ∈ [0, 1]; 0 = monotone (U,)."""
        net = (self.response[:, -1] - self.response[:, 0]).abs()
        tv = self.total_variation
        return torch.where(tv > 0, (tv - net) / tv.clamp_min(1e-300), torch.zeros_like(tv))


def response_path(
    model,
    layer: str,
    units: Sequence[int] | torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    *,
    grid: int = 17,
    candidates: int = 3,
    bisections: int = 12,
    batch_size: int = 256,
) -> PathResponse:
    """Response of ``units[i]`` along start[i] → end[i], and the largest jump of its map
    (module docstring)."""
    units = torch.as_tensor(list(units) if not isinstance(units, torch.Tensor) else units)
    units = units.to(torch.int64)
    n = units.shape[0]
    if start.shape != end.shape or start.shape[0] != n:
        raise ValueError(
            f"need one start and one end image per unit: {n} units, start "
            f"{tuple(start.shape)}, end {tuple(end.shape)}"
        )
    if grid < 2:
        raise ValueError(f"grid must have at least 2 points, got {grid}")
    t = torch.linspace(0, 1, grid, dtype=torch.float64)
    rows = torch.arange(n).repeat_interleave(grid)
    ts = t.repeat(n)
    maps = path_maps(model, layer, units, start, end, rows, ts, batch_size).view(n, grid, -1)
    response = maps.mean(2)
    m = min(candidates, grid - 1)
    steps = maps.diff(dim=1).abs().amax(2)  # (n, grid − 1): ‖Δm‖∞ per grid interval
    top = steps.topk(m, dim=1).indices  # (n, m) interval indices
    lo = t[top].reshape(-1)
    hi = t[top + 1].reshape(-1)
    owner = torch.arange(n).repeat_interleave(m)
    m_lo = maps[owner, top.reshape(-1)]
    m_hi = maps[owner, top.reshape(-1) + 1]

    def change(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().amax(1)

    for _ in range(bisections):
        mid = (lo + hi) / 2
        m_mid = path_maps(model, layer, units, start, end, owner, mid, batch_size)
        left = change(m_mid, m_lo) >= change(m_hi, m_mid)
        hi = torch.where(left, mid, hi)
        m_hi = torch.where(left.view(-1, 1), m_mid, m_hi)
        lo = torch.where(left, lo, mid)
        m_lo = torch.where(left.view(-1, 1), m_lo, m_mid)
    jumps = change(m_hi, m_lo).view(n, m)
    best = jumps.argmax(dim=1)
    where = ((lo + hi) / 2).view(n, m).gather(1, best.view(-1, 1)).squeeze(1)
    return PathResponse(
        t=t,
        response=response,
        jump=jumps.gather(1, best.view(-1, 1)).squeeze(1),
        jump_at=where,
        width=float(1 / (grid - 1) / 2**bisections),
    )
