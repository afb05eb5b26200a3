"""A unit's response along the straight pixel-space path from a natural image to its FV.

x(t) = (1 − t)·x_natural + t·x_fv, t ∈ [0, 1]; r(t) = the unit's activation (channel spatial
mean, or a linear layer's output) at x(t). A network built from convolutions, eval-mode
BatchNorm, ReLUs, pooling and linear layers is continuous in its input, so r is continuous: the
change of r over an interval of width w shrinks to 0 as w → 0. A hard gate (a classifier that
switches a unit between two computations, P1's fooling circuit) makes r jump.

:func:`response_path` evaluates r on a grid; :func:`largest_jump` then bisects the ``candidates``
intervals with the largest changes, each step keeping the half with the larger change. After
``bisections`` steps the interval is 2^-bisections of a grid cell wide: a continuous r has
changed by ≈ slope × width there, a jump keeps its full height. All units are handled in one
batch per step (one forward pass of units × candidates images).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fvlab.check.sweep import reduce_activation
from fvlab.models.hooks import capture


def unit_response(
    model, layer: str, units: torch.Tensor, images: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """Activation of ``units[i]`` (channel spatial mean) on ``images[i]``; shape (N,)."""
    out = []
    with torch.no_grad(), capture(model.module, [layer], detach=True) as cap:
        for first in range(0, images.shape[0], batch_size):
            chunk = images[first : first + batch_size].to(model.device)
            model(chunk)
            acts = reduce_activation(cap[layer], "spatial_mean").cpu()
            ids = units[first : first + batch_size].view(-1, 1)
            out.append(acts.gather(1, ids).squeeze(1))
    return torch.cat(out).to(torch.float64)


def _mix(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x(t) for per-row t: start/end (N, C, H, W), t (N,)."""
    t = t.to(start.dtype).view(-1, 1, 1, 1)
    return (1 - t) * start + t * end


@dataclass
class PathResponse:
    """r on the grid (U, G), the largest bisected jump per unit and where it is (U,)."""

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
    """Response of ``units[i]`` along start[i] → end[i], and its largest jump (module docstring)."""
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
    response = unit_response(
        model, layer, units[rows], _mix(start[rows], end[rows], ts), batch_size
    ).view(n, grid)
    m = min(candidates, grid - 1)
    steps = response.diff(dim=1).abs()
    top = steps.topk(m, dim=1).indices  # (n, m) interval indices
    lo = t[top].reshape(-1)
    hi = t[top + 1].reshape(-1)
    r_lo = response.gather(1, top).reshape(-1)
    r_hi = response.gather(1, top + 1).reshape(-1)
    owner = torch.arange(n).repeat_interleave(m)
    for _ in range(bisections):
        mid = (lo + hi) / 2
        r_mid = unit_response(
            model, layer, units[owner], _mix(start[owner], end[owner], mid), batch_size
        )
        left = (r_mid - r_lo).abs() >= (r_hi - r_mid).abs()
        hi = torch.where(left, mid, hi)
        r_hi = torch.where(left, r_mid, r_hi)
        lo = torch.where(left, lo, mid)
        r_lo = torch.where(left, r_lo, r_mid)
    jumps = (r_hi - r_lo).abs().view(n, m)
    best = jumps.argmax(dim=1)
    where = ((lo + hi) / 2).view(n, m).gather(1, best.view(-1, 1)).squeeze(1)
    return PathResponse(
        t=t,
        response=response,
        jump=jumps.gather(1, best.view(-1, 1)).squeeze(1),
        jump_at=where,
        width=float(1 / (grid - 1) / 2**bisections),
    )
