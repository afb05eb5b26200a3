"""Gradient-ascent "visualization" of a scalar function on the unit cube [0, 1]^d.

A feature visualization of a unit is the end point of gradient ascent on the unit's activation
(and, for the "minimal" visualization, of gradient descent). Here the input is a point of
[0, 1]^d and the update is projected, normalised gradient ascent:

    x_{t+1} = clip(x_t + η_t g_t / ‖g_t‖₂, 0, 1),   η_t = η_0 (η_end / η_0)^{t / (T−1)}

where g_t is ±∇f(x_t) without the components that push against a face of the cube the point
already lies on (so an ascent slides along faces at full speed); the step length η_t is in
input units, independent of the scale of f. Everything a decoder
may see — starts, whole trajectories, values along them, the best points found — is collected
in a :class:`Visualization`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fvlab.errors import FvlabError

#: a scalar function on a batch of points: (N, d) → (N,)
ScalarFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AscentSchedule:
    """Number of updates and the geometric step-length schedule (input units)."""

    steps: int = 200
    lr_start: float = 0.1
    lr_end: float = 1e-4

    def step_sizes(self) -> torch.Tensor:
        """(steps,) float64 step lengths from ``lr_start`` to ``lr_end``."""
        if self.steps < 1 or not 0 < self.lr_end <= self.lr_start:
            raise FvlabError(
                f"ascent schedule needs steps >= 1 and 0 < lr_end <= lr_start, got {self}"
            )
        if self.steps == 1:
            return torch.tensor([self.lr_start], dtype=torch.float64)
        t = torch.arange(self.steps, dtype=torch.float64) / (self.steps - 1)
        return self.lr_start * (self.lr_end / self.lr_start) ** t


@dataclass(frozen=True)
class Trajectory:
    """Points (steps + 1, S, d) and values (steps + 1, S) of S runs, start included."""

    points: torch.Tensor
    values: torch.Tensor


def projected_ascent(
    fn: ScalarFn,
    starts: torch.Tensor,
    schedule: AscentSchedule = AscentSchedule(),
    maximise: bool = True,
) -> Trajectory:
    """Run projected normalised gradient ascent (or descent) from every start at once."""
    x = starts.detach().clone()
    sign = 1.0 if maximise else -1.0
    points, values = [x.clone()], []
    for eta in schedule.step_sizes().tolist():
        x.requires_grad_(True)
        y = fn(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        values.append(y.detach())
        with torch.no_grad():
            x = x.detach()
            direction = sign * grad
            blocked = ((x <= 0) & (direction < 0)) | ((x >= 1) & (direction > 0))
            direction = direction.masked_fill(blocked, 0.0)
            norm = direction.norm(dim=1, keepdim=True).clamp_min(1e-30)
            x = (x + eta * direction / norm).clamp(0.0, 1.0)
        points.append(x.clone())
    with torch.no_grad():
        values.append(fn(x))
    return Trajectory(torch.stack(points), torch.stack(values))


@dataclass(frozen=True)
class Visualization:
    """Everything a feature visualization reveals about a unit on [0, 1]^d."""

    starts: torch.Tensor
    ascent: Trajectory
    descent: Trajectory
    argmax: torch.Tensor
    max_value: float
    argmin: torch.Tensor
    min_value: float

    def visited(self) -> torch.Tensor:
        """Every point the visualization evaluated, (N, d)."""
        d = self.starts.shape[1]
        return torch.cat([self.ascent.points.reshape(-1, d), self.descent.points.reshape(-1, d)])

    def visited_values(self) -> torch.Tensor:
        """The unit's values at :meth:`visited`, (N,)."""
        return torch.cat([self.ascent.values.reshape(-1), self.descent.values.reshape(-1)])


def default_starts(d: int, n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """The cube's centre (the "grey image") followed by ``n − 1`` uniform random points."""
    if d < 1 or n < 1:
        raise FvlabError(f"need d >= 1 and at least one start, got d={d}, n={n}")
    generator = torch.Generator().manual_seed(seed)
    random = torch.rand(n - 1, d, generator=generator, dtype=dtype)
    return torch.cat([torch.full((1, d), 0.5, dtype=dtype), random])


def visualize(
    fn: ScalarFn, starts: torch.Tensor, schedule: AscentSchedule = AscentSchedule()
) -> Visualization:
    """Ascent and descent from ``starts``; arg max / arg min = best point visited."""
    up = projected_ascent(fn, starts, schedule, maximise=True)
    down = projected_ascent(fn, starts, schedule, maximise=False)
    d = starts.shape[1]
    best = int(up.values.reshape(-1).argmax())
    worst = int(down.values.reshape(-1).argmin())
    return Visualization(
        starts=starts.detach().clone(),
        ascent=up,
        descent=down,
        argmax=up.points.reshape(-1, d)[best].clone(),
        max_value=float(up.values.reshape(-1)[best]),
        argmin=down.points.reshape(-1, d)[worst].clone(),
        min_value=float(down.values.reshape(-1)[worst]),
    )
