"""ERM-trained networks: same data, same small loss, same visualization, different elsewhere.

Data: ``n_train`` seeded uniform points of [0, 1]² outside the two corner triangles
|x₂ − x₁| > ``gap`` (the held-out region), plus the corners (0, 0) and (1, 1), labelled by the
target f*(x) = (x₁ + x₂)/2 (range [0, 1], arg max (1, 1), arg min (0, 0)). The held-out points
are (0.05, 0.95) and (0.95, 0.05), deep inside the two triangles.

Two ReLU MLPs 2 → 32 → 32 → 1 (float64) are trained by full-batch L-BFGS on the mean squared
error over those data until it is at most ``loss_tol``:

* A from PyTorch-style random initialisation (seed s);
* B from the random initialisation with seed s + 1, first pre-trained (to MSE ≤
  ``pretrain_tol``) on the data plus decoy points in the held-out triangles labelled
  f* + h (|x₂ − x₁| − gap)/(1 − gap), then trained on the data alone — ERM on the same data from
  another starting point, like fine-tuning a pre-trained network.

Both minimise the same empirical risk to the same tolerance; their visualizations (projected
gradient ascent/descent, :mod:`~fvlab.theory.ascent`) give the same arg max and arg min within
``argmax_tol`` and the same values there within ``value_tol``; at the held-out points they differ
by at least ``margin``. The loss never sees the held-out region, so nothing in ERM removes what B
learnt there. A decoder that sees only the arg max, the arg min and the values there
(:data:`~fvlab.theory.decoders.EXTREMES_ONLY`) predicts nearly the same value for both and errs by
≥ margin / 2 − value_tol on one of them. For comparison, a third network A′ (random init, seed
s + 2) trained like A shows how far random seeds alone move the held-out values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fvlab.errors import FvlabError
from fvlab.theory.ascent import AscentSchedule, Visualization, default_starts, visualize
from fvlab.theory.decoders import DECODERS, EXTREMES_ONLY
from fvlab.theory.mlp import as_scalar_fn, random_relu_mlp

HELD_OUT = ((0.05, 0.95), (0.95, 0.05))


def target(x: torch.Tensor) -> torch.Tensor:
    """f*(x) = (x₁ + x₂) / 2."""
    return x.mean(dim=1)


def held_out_depth(x: torch.Tensor, gap: float) -> torch.Tensor:
    """|x₂ − x₁| − gap: positive inside the held-out corner triangles."""
    return (x[:, 1] - x[:, 0]).abs() - gap


@dataclass(frozen=True)
class ErmData:
    """Training points (N, 2) and labels (N,), decoy points and labels, held-out points."""

    x: torch.Tensor
    y: torch.Tensor
    decoy_x: torch.Tensor
    decoy_y: torch.Tensor
    held_out: torch.Tensor
    gap: float


def make_data(n_train: int, gap: float, height: float, seed: int) -> ErmData:
    """Seeded training data outside the held-out triangles and decoy data inside them."""
    if not 0 < gap < 0.85:
        raise FvlabError(
            f"gap must be in (0, 0.85) (the held-out points must be inside), got {gap}"
        )
    if n_train < 8:
        raise FvlabError(f"n_train must be at least 8, got {n_train}")
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(n_train, 2, generator=g, dtype=torch.float64)
    corners = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    x = torch.cat([points[held_out_depth(points, gap) < 0], corners])
    pool = torch.rand(20 * n_train, 2, generator=g, dtype=torch.float64)
    decoy_x = pool[held_out_depth(pool, gap) > 0][: max(16, n_train // 2)]
    decoy_y = target(decoy_x) + height * held_out_depth(decoy_x, gap) / (1 - gap)
    held_out = torch.tensor(HELD_OUT, dtype=torch.float64)
    return ErmData(x, target(x), decoy_x, decoy_y, held_out, gap)


def mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x)[:, 0] - y) ** 2).mean())


def train_erm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_tol: float, budget: int = 1200
) -> int:
    """Full-batch L-BFGS (strong Wolfe line search) on the mean squared error, in rounds of 20
    iterations, until the loss is ≤ ``loss_tol`` or ``budget`` iterations; returns the number of
    loss evaluations."""
    model.train()
    opt = torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=20,
        history_size=50,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        opt.zero_grad()
        loss = ((model(x)[:, 0] - y) ** 2).mean()
        loss.backward()
        evaluations += 1
        return loss

    for _ in range(max(1, budget // 20)):
        opt.step(closure)
        if mse(model, x, y) <= loss_tol:
            break
    model.eval()
    return evaluations


@dataclass
class ErmDemo:
    """The two trained networks, their visualizations and every measured number."""

    data: ErmData
    a: nn.Module
    b: nn.Module
    vis_a: Visualization
    vis_b: Visualization
    loss_a: float
    loss_b: float
    loss_tol: float
    margin: float
    argmax_tol: float
    value_tol: float
    held_a: torch.Tensor
    held_b: torch.Tensor
    seeds_only_gap: float  # max |A − A′| at the held-out points
    decoder_worst_error: dict[str, list[float]] = field(default_factory=dict)
    evaluations: dict[str, int] = field(default_factory=dict)

    @property
    def disagreement(self) -> torch.Tensor:
        return (self.held_a - self.held_b).abs()

    def extremes_gap(self) -> dict[str, float]:
        return {
            "argmax": float((self.vis_a.argmax - self.vis_b.argmax).abs().max()),
            "argmin": float((self.vis_a.argmin - self.vis_b.argmin).abs().max()),
            "max_value": abs(self.vis_a.max_value - self.vis_b.max_value),
            "min_value": abs(self.vis_a.min_value - self.vis_b.min_value),
        }

    def checks(self) -> dict[str, bool]:
        gap = self.extremes_gap()
        bound = self.margin / 2 - self.value_tol
        return {
            "same_small_training_loss": max(self.loss_a, self.loss_b) <= self.loss_tol,
            "same_argmax_argmin": max(gap["argmax"], gap["argmin"]) <= self.argmax_tol,
            "same_extreme_values": max(gap["max_value"], gap["min_value"]) <= self.value_tol,
            "held_out_disagreement_at_least_margin": bool((self.disagreement >= self.margin).all()),
            "extremes_only_decoders_err_at_least_half_margin": all(
                min(self.decoder_worst_error[name]) >= bound for name in EXTREMES_ONLY
            ),
        }

    def summary(self) -> dict:
        return {
            "target": "f*(x) = (x₁ + x₂)/2 on [0, 1]²",
            "n_train": int(len(self.data.x)),
            "architecture": "2 → 32 → 32 → 1 ReLU MLP, float64, full-batch L-BFGS on MSE",
            "held_out_points": self.data.held_out.tolist(),
            "loss_tol": self.loss_tol,
            "train_loss_a": self.loss_a,
            "train_loss_b": self.loss_b,
            "loss_evaluations": self.evaluations,
            "argmax_a": self.vis_a.argmax.tolist(),
            "argmax_b": self.vis_b.argmax.tolist(),
            "argmin_a": self.vis_a.argmin.tolist(),
            "argmin_b": self.vis_b.argmin.tolist(),
            "extremes_gap": self.extremes_gap(),
            "tolerances": {"argmax_argmin": self.argmax_tol, "values": self.value_tol},
            "margin": self.margin,
            "held_out_a": self.held_a.tolist(),
            "held_out_b": self.held_b.tolist(),
            "held_out_disagreement": self.disagreement.tolist(),
            "min_held_out_disagreement": float(self.disagreement.min()),
            "seeds_only_held_out_gap": self.seeds_only_gap,
            "decoder_worst_error": self.decoder_worst_error,
            "checks": self.checks(),
        }


def demonstrate_erm(
    seed: int = 0,
    n_train: int = 200,
    width: int = 32,
    gap: float = 0.5,
    height: float = 0.4,
    loss_tol: float = 1e-6,
    pretrain_tol: float = 1e-7,
    margin: float = 0.2,
    argmax_tol: float = 1e-3,
    value_tol: float = 0.01,
    n_starts: int = 8,
    schedule: AscentSchedule = AscentSchedule(steps=100),
) -> ErmDemo:
    """Train A, B (and A′) as in the module docstring and measure every claim."""
    from fvlab.theory.threads import limited_threads

    data = make_data(n_train, gap, height, seed + 100)
    with limited_threads(1):
        a = random_relu_mlp(2, (width, width), seed).double()
        b = random_relu_mlp(2, (width, width), seed + 1).double()
        again = random_relu_mlp(2, (width, width), seed + 2).double()
        evaluations = {
            "a": train_erm(a, data.x, data.y, loss_tol),
            "b_pretraining": train_erm(
                b,
                torch.cat([data.x, data.decoy_x]),
                torch.cat([data.y, data.decoy_y]),
                pretrain_tol,
            ),
            "b": train_erm(b, data.x, data.y, loss_tol),
            "a_prime": train_erm(again, data.x, data.y, loss_tol),
        }
        starts = default_starts(2, n_starts, seed + 3)
        fa, fb = as_scalar_fn(a), as_scalar_fn(b)
        vis_a, vis_b = visualize(fa, starts, schedule), visualize(fb, starts, schedule)
        with torch.no_grad():
            held_a, held_b = fa(data.held_out), fb(data.held_out)
            seeds_only = float((as_scalar_fn(again)(data.held_out) - held_a).abs().max())
        worst = {}
        for name, decoder in DECODERS.items():
            error = torch.maximum(
                (decoder(vis_a, data.held_out) - held_a).abs(),
                (decoder(vis_b, data.held_out) - held_b).abs(),
            )
            worst[name] = error.tolist()
    return ErmDemo(
        data=data,
        a=a,
        b=b,
        vis_a=vis_a,
        vis_b=vis_b,
        loss_a=mse(a, data.x, data.y),
        loss_b=mse(b, data.x, data.y),
        loss_tol=loss_tol,
        margin=margin,
        argmax_tol=argmax_tol,
        value_tol=value_tol,
        held_a=held_a,
        held_b=held_b,
        seeds_only_gap=seeds_only,
        decoder_worst_error=worst,
        evaluations=evaluations,
    )


def plot_erm(demo: ErmDemo, path: str | Path, resolution: int = 161) -> Path:
    """Heatmaps of A, B and B − A with the training data, holes, held-out points and extremes."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Polygon

    axis = torch.linspace(0, 1, resolution, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        va = as_scalar_fn(demo.a)(grid).reshape(resolution, resolution).T.numpy()
        vb = as_scalar_fn(demo.b)(grid).reshape(resolution, resolution).T.numpy()
    fig = Figure(figsize=(13.5, 4.4), constrained_layout=True)
    axes = fig.subplots(1, 3)
    low, high = float(min(va.min(), vb.min())), float(max(va.max(), vb.max()))
    diff = vb - va
    lim = float(abs(diff).max()) or 1.0
    panels = (
        (va, "A (random init, ERM)", {"cmap": "viridis", "vmin": low, "vmax": high}),
        (
            vb,
            "B (pre-trained init, ERM on the same data)",
            {"cmap": "viridis", "vmin": low, "vmax": high},
        ),
        (diff, "B − A", {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}),
    )
    for ax, (data, title, scale) in zip(axes, panels, strict=True):
        im = ax.imshow(data, origin="lower", extent=(0, 1, 0, 1), **scale)
        fig.colorbar(im, ax=ax, shrink=0.85)
        ax.plot(*demo.data.x.T.numpy(), "w.", ms=2, alpha=0.7)
        gap = demo.data.gap
        for corner in ([(0, gap), (0, 1), (1 - gap, 1)], [(gap, 0), (1, 0), (1, 1 - gap)]):
            ax.add_patch(Polygon(corner, fill=False, ec="white", ls="--", lw=0.8))
        ax.plot(*demo.data.held_out.T.numpy(), "rx", ms=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    for ax, vis in zip(axes[:2], (demo.vis_a, demo.vis_b), strict=True):
        marks = {"clip_on": False, "zorder": 5, "mec": "black", "ls": ""}
        ax.plot(*vis.argmax.numpy(), marker="*", color="gold", ms=15, **marks)
        ax.plot(*vis.argmin.numpy(), marker="v", color="cyan", ms=11, **marks)
    fig.suptitle(
        f"Same data, training MSE ≤ {demo.loss_tol:g}, same arg max/min; held-out points (red) "
        f"differ by ≥ {float(demo.disagreement.min()):.3f}"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
