"""ReLU tents: change a ReLU network anywhere except where its visualization looks.

Given a ReLU MLP f on [0, 1]^d and chosen points p_1..p_K, build the ReLU MLP

    f′(x) = f(x) + Σ_k h_k · T_k(x),    T_k(x) = relu(1 − ‖x − p_k‖₁ / r_k),

where each tent T_k is made of ReLUs of affine functions (2d units relu(±(x_i − p_ki)/r_k),
then one unit relu(1 − their sum)), equals 1 at p_k and 0 outside the L1 ball of radius r_k,
and h_k = ±δ. The radii are chosen so that

* no point the visualization visited (starts, every ascent and descent step, arg max, arg min)
  lies in a tent's support, so f′ = f on a neighbourhood of each of them: same gradients,
  same trajectories, same arg max / arg min and values;
* the tent cannot create, move or hide a maximum or minimum: interval bound propagation (on
  a grid of cells covering the support) certifies that on the support f and f ± δ stay in
  [min f + margin, max f − margin] (max f, min f: the visualized extremes), so f′ = f
  wherever f comes within the margin of them — even at extremes the gradient search missed;
* supports are disjoint, so |f′(p_k) − f(p_k)| = δ exactly.

A decoder sees the same visualization for f and f′ and must output one prediction u for the
value at p_k; max(|u − f(p_k)|, |u − f′(p_k)|) ≥ δ / 2 whatever it does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fvlab.errors import FvlabError
from fvlab.theory.ascent import AscentSchedule, Visualization, default_starts, visualize
from fvlab.theory.decoders import DECODERS
from fvlab.theory.mlp import (
    Layers,
    as_scalar_fn,
    forward_layers,
    interval_bounds,
    mlp_layers,
    random_relu_mlp,
)


class InfeasibleTentError(FvlabError):
    """No tent of the requested height fits at a chosen point."""


@dataclass(frozen=True)
class Tent:
    """relu(1 − ‖x − centre‖₁ / radius) scaled by ``height`` (signed)."""

    centre: tuple[float, ...]
    radius: float
    height: float


def tent_values(x: torch.Tensor, tents: Sequence[Tent]) -> torch.Tensor:
    """Σ_k height_k · T_k(x) for x (N, d) → (N,), float64."""
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for tent in tents:
        centre = torch.tensor(tent.centre, dtype=torch.float64)
        dist = (x.double() - centre).abs().sum(dim=1)
        total = total + tent.height * torch.relu(1 - dist / tent.radius)
    return total


def l1_ball_cells(d: int, budget: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """A grid of s^d cells (s = ⌊budget^{1/d}⌋) over [−1, 1]^d, keeping those that meet the L1
    unit ball; (low corners, high corners), each (cells, d)."""
    s = max(1, int(budget ** (1 / d) + 1e-9))
    edges = torch.linspace(-1, 1, s + 1, dtype=torch.float64)
    index = torch.cartesian_prod(*[torch.arange(s)] * d).reshape(-1, d)
    low, high = edges[index], edges[index + 1]
    nearest = torch.maximum(torch.maximum(low, -high), torch.zeros_like(low))  # |closest coord|
    keep = nearest.sum(dim=1) <= 1
    return low[keep], high[keep]


def ball_bounds(layers: Layers, points: torch.Tensor, radius: torch.Tensor):
    """Certified (lower, upper) bounds of the MLP on the L1 balls ‖x − p_k‖₁ ≤ r_k: interval
    bounds on a grid of cells covering each ball, then the min / max over cells."""
    d = points.shape[1]
    low, high = l1_ball_cells(d)
    scale = radius[:, None, None]
    lo_box = (points[:, None] + scale * low).reshape(-1, d)
    hi_box = (points[:, None] + scale * high).reshape(-1, d)
    lo, hi = interval_bounds(layers, lo_box, hi_box)
    return lo.reshape(len(points), -1).min(dim=1).values, hi.reshape(len(points), -1).max(
        dim=1
    ).values


def _largest_radius(
    layers: Layers, points: torch.Tensor, cap: torch.Tensor, feasible: Callable, iters: int = 50
) -> torch.Tensor:
    """Largest r ≤ cap (per point, by bisection) for which ``feasible(lower, upper)`` holds for
    the certified bounds on the L1 ball of radius r; 0 if it fails at r = 0. Every returned
    radius passed the test itself, so the result is certified even where bisection is not
    optimal."""

    def ok(r: torch.Tensor) -> torch.Tensor:
        return feasible(*ball_bounds(layers, points, r))

    good = torch.zeros_like(cap)
    bad = cap.clone()
    for _ in range(iters):
        mid = (good + bad) / 2
        passed = ok(mid)
        good = torch.where(passed, mid, good)
        bad = torch.where(passed, bad, mid)
    radius = torch.where(ok(cap), cap, good)
    return torch.where(ok(torch.zeros_like(cap)), radius, torch.zeros_like(cap))


def fit_tents(
    layers: Layers,
    vis: Visualization,
    points: torch.Tensor,
    delta: float,
    max_radius: float = 0.25,
    margin: float | None = None,
) -> list[Tent]:
    """Tents of height ±δ at ``points`` (K, d) that leave the visualization ``vis`` unchanged.

    Radius (L1) = the largest value ≤ ``max_radius`` that keeps the support disjoint from the
    other tents and from every visited point (with a relative gap of 1e-3) and keeps both f and
    f ± δ certifiably inside [min f + margin, max f − margin] on it (margin: 1e-3 of the
    visualized range by default); the sign with the larger radius wins.
    """
    points = points.double()
    if delta <= 0:
        raise FvlabError(f"delta must be positive, got {delta}")
    if points.ndim != 2 or points.shape[1] != vis.starts.shape[1]:
        raise FvlabError(
            f"points must have shape (K, {vis.starts.shape[1]}), got {tuple(points.shape)}"
        )
    if ((points < 0) | (points > 1)).any():
        raise FvlabError("chosen points must lie in the unit cube [0, 1]^d")
    spread = vis.max_value - vis.min_value
    margin = 1e-3 * spread if margin is None else margin
    to_visited = torch.cdist(points, vis.visited().double(), p=1).min(dim=1).values
    cap = torch.minimum(torch.full_like(to_visited, max_radius), (1 - 1e-3) * to_visited)
    if len(points) > 1:
        pairwise = torch.cdist(points, points, p=1) + torch.eye(len(points)) * 1e9
        cap = torch.minimum(cap, 0.5 * pairwise.min(dim=1).values)
    for k in range(len(points)):
        if cap[k] <= 1e-9:
            raise InfeasibleTentError(
                f"chosen point {k} {points[k].tolist()} lies on the visualization's path or on "
                f"another chosen point (L1 distance {float(to_visited[k]):.2e}); choose points "
                "away from the ascent/descent trajectories"
            )
    top, bottom = vis.max_value - margin, vis.min_value + margin
    up = _largest_radius(layers, points, cap, lambda lo, hi: (hi + delta <= top) & (lo >= bottom))
    down = _largest_radius(layers, points, cap, lambda lo, hi: (lo - delta >= bottom) & (hi <= top))
    tents = []
    values = forward_layers(layers, points)
    for k in range(len(points)):
        radius, height = (float(up[k]), delta) if up[k] >= down[k] else (float(down[k]), -delta)
        if radius <= 0 and not bottom < values[k] < top:
            raise InfeasibleTentError(
                f"f at chosen point {k} is {values[k]:.6g}, at or beyond the visualized extremes "
                f"[{vis.min_value:.6g}, {vis.max_value:.6g}] (margin {margin:.2g}): a tent there "
                "would change them; choose another point"
            )
        if radius <= 0:
            largest = max(vis.max_value - values[k], values[k] - vis.min_value) - margin
            raise InfeasibleTentError(
                f"no tent of height {delta:.4g} fits at point {k}: f there is {values[k]:.4g} "
                f"and f ranges over [{vis.min_value:.4g}, {vis.max_value:.4g}]; use delta < "
                f"{float(largest):.4g}"
            )
        tents.append(Tent(tuple(points[k].tolist()), radius, height))
    return tents


def points_far_from(
    vis: Visualization, n: int, seed: int, fn=None, candidates: int = 4096
) -> torch.Tensor:
    """``n`` points of the cube where the visualization never looked: greedily, the candidate
    (seeded uniform, in [0.05, 0.95]^d) farthest in L1 from every visited and every picked
    point. With ``fn``, candidates are first restricted to values in the middle half of the
    visualized range (room for a tent of either sign), if any are there."""
    d = vis.starts.shape[1]
    generator = torch.Generator().manual_seed(seed)
    pool = 0.05 + 0.9 * torch.rand(candidates, d, generator=generator, dtype=torch.float64)
    if fn is not None:
        with torch.no_grad():
            values = fn(pool)
        quarter = (vis.max_value - vis.min_value) / 4
        middle = (values >= vis.min_value + quarter) & (values <= vis.max_value - quarter)
        if int(middle.sum()) >= n:
            pool = pool[middle]
    gap = torch.cdist(pool, vis.visited().double(), p=1).min(dim=1).values
    picked = []
    for _ in range(n):
        best = int(gap.argmax())
        picked.append(pool[best])
        gap = torch.minimum(gap, (pool - pool[best]).abs().sum(dim=1))
    return torch.stack(picked)


def _f_branch(layers: Layers) -> tuple[Layers, tuple[torch.Tensor, torch.Tensor]]:
    """Hidden layers and output layer of f; an affine f gets one hidden layer [z, −z]."""
    if len(layers) == 1:
        W, b = layers[0]
        one = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
        return [(torch.cat([W, -W]), torch.cat([b, -b]))], (one, torch.zeros(1, dtype=W.dtype))
    return layers[:-1], layers[-1]


def _tent_branch(tents: Sequence[Tent], d: int) -> Layers:
    """Two hidden layers: relu(±(x − p_k)/r_k) (2d per tent), then relu(1 − Σ of them)."""
    eye = torch.eye(d, dtype=torch.float64)
    first_w, first_b, second_w = [], [], []
    for k, tent in enumerate(tents):
        centre = torch.tensor(tent.centre, dtype=torch.float64)
        first_w += [eye / tent.radius, -eye / tent.radius]
        first_b += [-centre / tent.radius, centre / tent.radius]
        row = torch.zeros(len(tents), 2 * d, dtype=torch.float64)
        row[k] = -1.0
        second_w.append(row)
    W1, b1 = torch.cat(first_w), torch.cat(first_b)
    W2 = torch.cat(second_w, dim=1)
    return [(W1, b1), (W2, torch.ones(len(tents), dtype=torch.float64))]


def _pad_identity(hidden: Layers, depth: int) -> Layers:
    """Append identity layers (activations after a ReLU are ≥ 0, so relu(I h) = h)."""
    width = hidden[-1][0].shape[0]
    eye = torch.eye(width, dtype=torch.float64)
    return hidden + [(eye, torch.zeros(width, dtype=torch.float64))] * (depth - len(hidden))


def add_tents(
    model: nn.Module, tents: Sequence[Tent], unit: int = 0, dtype: torch.dtype = torch.float64
) -> nn.Sequential:
    """The ReLU MLP f′ = f + Σ_k h_k T_k (one Sequential of Linear/ReLU), built by running f and
    the tents side by side (block-diagonal weights) and summing at the output.

    float64 by default: a narrow tent has weights 1/r and biases p/r, whose float32 rounding
    would move its peak by ~1e-7 · p/r."""
    layers = mlp_layers(model, unit)
    if not tents:
        raise FvlabError("give at least one tent")
    d = layers[0][0].shape[1]
    f_hidden, (w_out, b_out) = _f_branch(layers)
    t_hidden = _tent_branch(tents, d)
    depth = max(len(f_hidden), len(t_hidden))
    f_hidden, t_hidden = _pad_identity(f_hidden, depth), _pad_identity(t_hidden, depth)
    merged: Layers = [
        (torch.cat([f_hidden[0][0], t_hidden[0][0]]), torch.cat([f_hidden[0][1], t_hidden[0][1]]))
    ]
    for (Wf, bf), (Wt, bt) in zip(f_hidden[1:], t_hidden[1:], strict=True):
        merged.append((torch.block_diag(Wf, Wt), torch.cat([bf, bt])))
    heights = torch.tensor([[t.height for t in tents]], dtype=torch.float64)
    merged.append((torch.cat([w_out, heights], dim=1), b_out))
    modules: list[nn.Module] = []
    for i, (W, b) in enumerate(merged):
        linear = nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(W)
            linear.bias.copy_(b)
        modules.append(linear)
        if i < len(merged) - 1:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


# --- the demonstration ----------------------------------------------------------------------


@dataclass
class TentDemo:
    """Everything measured by :func:`demonstrate_tents` (tensors are float64)."""

    model: nn.Module
    fooled: nn.Sequential
    tents: list[Tent]
    delta: float
    points: torch.Tensor
    f_values: torch.Tensor
    fooled_values: torch.Tensor
    vis: Visualization
    fooled_vis: Visualization
    exactness: float  # max |f′ − f − Σ tents| on random points
    trajectory_gap: float
    argmax_gap: float
    argmin_gap: float
    extreme_value_gap: float
    sampled_extrema_agree: bool
    decoder_worst_error: dict[str, list[float]] = field(default_factory=dict)

    @property
    def difference(self) -> torch.Tensor:
        return (self.fooled_values - self.f_values).abs()

    def checks(self, tol: float = 1e-6) -> dict[str, bool]:
        """The claims, each True or False."""
        scale = max(1.0, abs(self.vis.max_value), abs(self.vis.min_value))
        return {
            "fooled_is_f_plus_tents": self.exactness <= tol * scale,
            "same_trajectories": self.trajectory_gap <= 1e-6,
            "same_argmax_argmin": max(self.argmax_gap, self.argmin_gap) <= 1e-6
            and self.extreme_value_gap <= tol * scale,
            "same_extrema_on_dense_sample": self.sampled_extrema_agree,
            "difference_at_points_at_least_delta": bool(
                (self.difference >= self.delta - tol * scale).all()
            ),
            "every_decoder_errs_at_least_half_delta": all(
                min(errors) >= self.delta / 2 - tol * scale
                for errors in self.decoder_worst_error.values()
            ),
        }

    def summary(self) -> dict:
        return {
            "d": int(self.points.shape[1]),
            "delta": self.delta,
            "points": self.points.tolist(),
            "tent_radii_l1": [t.radius for t in self.tents],
            "tent_heights": [t.height for t in self.tents],
            "f_at_points": self.f_values.tolist(),
            "fooled_at_points": self.fooled_values.tolist(),
            "abs_difference_at_points": self.difference.tolist(),
            "max_value": self.vis.max_value,
            "min_value": self.vis.min_value,
            "argmax": self.vis.argmax.tolist(),
            "argmin": self.vis.argmin.tolist(),
            "trajectory_gap": self.trajectory_gap,
            "argmax_gap": self.argmax_gap,
            "argmin_gap": self.argmin_gap,
            "extreme_value_gap": self.extreme_value_gap,
            "exactness": self.exactness,
            "decoder_worst_error": self.decoder_worst_error,
            "fooled_layers": [type(m).__name__ for m in self.fooled],
            "checks": self.checks(),
        }


def demonstrate_tents(
    model: nn.Module | None = None,
    points: torch.Tensor | None = None,
    *,
    d: int = 2,
    n_points: int = 3,
    delta: float | None = None,
    delta_fraction: float = 0.25,
    unit: int = 0,
    seed: int = 0,
    n_starts: int = 16,
    schedule: AscentSchedule = AscentSchedule(),
    max_radius: float = 0.25,
    n_check: int = 20000,
) -> TentDemo:
    """Build f′ for ``model`` (default: a seeded random ReLU MLP d → 32 → 32 → 1) with
    tents of height ``delta`` (default: ``delta_fraction`` of f's visualized range) at
    ``points`` (default: ``n_points`` points far from everything the visualization visited,
    see :func:`points_far_from`) and measure every claim.

    The visualization: ``n_starts`` ascent and descent runs (the cube's centre and seeded
    uniform starts). The independent arg max / arg min check evaluates f and f′ on ``n_check``
    uniform points plus the visualized extremes."""
    from fvlab.theory.threads import limited_threads

    with limited_threads(1):
        if model is None:
            model = random_relu_mlp(d, (32, 32), seed, input_gain=4.0)
        layers = mlp_layers(model, unit)
        d = layers[0][0].shape[1]
        f = as_scalar_fn(model, unit)
        generator = torch.Generator().manual_seed(seed + 1)
        starts = default_starts(d, n_starts, seed + 2)
        vis = visualize(f, starts, schedule)
        if points is None:
            points = points_far_from(vis, n_points, seed + 3, f)
        points = torch.as_tensor(points, dtype=torch.float64)
        if vis.max_value - vis.min_value <= 1e-12 * max(1.0, abs(vis.max_value)):
            raise FvlabError(
                f"f is constant ({vis.max_value:.4g}) on every visualized path: nothing to hide; "
                "use a network whose output varies on [0, 1]^d"
            )
        delta = delta_fraction * (vis.max_value - vis.min_value) if delta is None else float(delta)
        tents = fit_tents(layers, vis, points, delta, max_radius)
        fooled = add_tents(model, tents, unit)
        f_fooled = as_scalar_fn(fooled)
        fooled_vis = visualize(f_fooled, starts, schedule)
        with torch.no_grad():
            probe = torch.rand(n_check, d, generator=generator, dtype=torch.float64)
            exactness = float((f_fooled(probe) - f(probe) - tent_values(probe, tents)).abs().max())
            candidates = torch.cat([probe, vis.argmax[None], vis.argmin[None]])
            f_c, g_c = f(candidates), f_fooled(candidates)
            scale = 1e-9 * max(1.0, float(f_c.abs().max()))
            # f′'s best candidate is a best candidate of f, with the same value (ties allowed)
            same_max = bool(
                (g_c.max() - f_c.max()).abs() <= scale and f_c[g_c.argmax()] >= f_c.max() - scale
            )
            same_min = bool(
                (g_c.min() - f_c.min()).abs() <= scale and f_c[g_c.argmin()] <= f_c.min() + scale
            )
            f_values, fooled_values = f(points), f_fooled(points)
        gaps = [
            (vis.ascent.points - fooled_vis.ascent.points).abs().max(),
            (vis.descent.points - fooled_vis.descent.points).abs().max(),
        ]
        worst = {}
        for name, decoder in DECODERS.items():
            guess_f, guess_fooled = decoder(vis, points), decoder(fooled_vis, points)
            error = torch.maximum((guess_f - f_values).abs(), (guess_fooled - fooled_values).abs())
            worst[name] = error.tolist()
        return TentDemo(
            model=model,
            fooled=fooled,
            tents=tents,
            delta=delta,
            points=points,
            f_values=f_values,
            fooled_values=fooled_values,
            vis=vis,
            fooled_vis=fooled_vis,
            exactness=exactness,
            trajectory_gap=float(max(gaps)),
            argmax_gap=float((vis.argmax - fooled_vis.argmax).abs().max()),
            argmin_gap=float((vis.argmin - fooled_vis.argmin).abs().max()),
            extreme_value_gap=max(
                abs(vis.max_value - fooled_vis.max_value), abs(vis.min_value - fooled_vis.min_value)
            ),
            sampled_extrema_agree=same_max and same_min,
            decoder_worst_error=worst,
        )


def plot_tents(demo: TentDemo, path: str | Path, resolution: int = 241) -> Path:
    """Heatmaps of f, f′ and f′ − f (d = 2) with trajectories, extrema, points and supports."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.patches import Polygon

    if demo.points.shape[1] != 2:
        raise FvlabError(f"plot_tents draws d = 2 only, got d = {demo.points.shape[1]}")
    axis = torch.linspace(0, 1, resolution, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)  # (x0, x1) with x1 fastest
    f = as_scalar_fn(demo.model)
    g = as_scalar_fn(demo.fooled)
    with torch.no_grad():
        fv = f(grid).reshape(resolution, resolution).T.numpy()
        gv = g(grid).reshape(resolution, resolution).T.numpy()
    fig = Figure(figsize=(13.5, 4.4), constrained_layout=True)
    axes = fig.subplots(1, 3)
    vmin, vmax = float(min(fv.min(), gv.min())), float(max(fv.max(), gv.max()))
    extent = (0, 1, 0, 1)
    titles = ("f (original)", "f′ = f + tents", "f′ − f")
    for ax, data, title in zip(axes, (fv, gv, gv - fv), titles, strict=True):
        if title == "f′ − f":
            lim = float(np.abs(data).max()) or 1.0
            scale = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}
        else:
            scale = {"cmap": "viridis", "vmin": vmin, "vmax": vmax}
        im = ax.imshow(data, origin="lower", extent=extent, **scale)
        fig.colorbar(im, ax=ax, shrink=0.85)
        ax.set_title(title)
        ax.set_xlabel("x₀")
        ax.set_ylabel("x₁")
    for ax, vis in zip(axes[:2], (demo.vis, demo.fooled_vis), strict=True):
        for s in range(vis.starts.shape[0]):
            ax.plot(*vis.ascent.points[:, s].T.numpy(), color="white", lw=0.7, alpha=0.8)
            ax.plot(*vis.descent.points[:, s].T.numpy(), color="black", lw=0.7, alpha=0.6)
        marks = {"clip_on": False, "zorder": 5, "mec": "black", "ls": ""}
        ax.plot(*vis.argmax.numpy(), marker="*", color="gold", ms=15, label="arg max", **marks)
        ax.plot(*vis.argmin.numpy(), marker="v", color="cyan", ms=11, label="arg min", **marks)
    for ax in axes:
        for tent in demo.tents:
            cx, cy, r = tent.centre[0], tent.centre[1], tent.radius
            diamond = [(cx + r, cy), (cx, cy + r), (cx - r, cy), (cx, cy - r)]
            ax.add_patch(Polygon(diamond, fill=False, ec="red", lw=1.0))
        ax.plot(*demo.points.T.numpy(), marker="x", color="red", ls="", ms=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    fig.suptitle(
        f"ReLU tents: same arg max/min and ascent paths; |f′ − f| = {demo.delta:.3g} at the "
        "red points (supports: red diamonds)"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
