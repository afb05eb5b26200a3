"""Toy fooling: a 2-D classifier whose unit's visualization shows another unit.

A small MLP (2 → 16 → 16 → 2, ReLU) is trained on a seeded two-moons dataset in [0, 1]². Its
inputs are "images" of 2 channels and 1×1 pixel, so :func:`fvlab.render` (pixel
parameterization, no transforms, Adam) visualizes its units exactly as it visualizes a CNN's:
start at the grey point sigmoid(≈0) = (0.5, 0.5) and ascend.

The fooled model replaces the pre-activation of hidden unit A by a gated unit

    A′(x) = A(x)          if ‖z‖_∞ ≤ τ      (z = standardised input: natural inputs)
    A′(x) = B(x) + c      otherwise          (inputs far outside the data: visualization-like)

with a hard threshold τ = 1.5 · max over training inputs of ‖z‖_∞ and c large enough that the
second branch exceeds A everywhere. Every test input has ‖z‖_∞ ≤ τ, so test logits are bit-for-
bit unchanged; gradient ascent on A′ follows A until it leaves the data's neighbourhood and then
follows B to B's arg max corner. B is chosen among the other hidden units so that its arg max
corner is adjacent to A's (one coordinate keeps growing across the switch, so the ascent never
re-enters the natural region) and far from A's in B's own values.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fvlab.errors import FvlabError
from fvlab.models.spec import InputSpec

LAYER = "gate"


def two_moons(n: int, seed: int, noise: float = 0.08) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles with Gaussian noise, scaled into the centre of [0, 1]²;
    (points (n, 2) float32, labels (n,) int64)."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=generator) * math.pi
    label = torch.randint(0, 2, (n,), generator=generator)
    upper = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    raw = torch.where(label[:, None] == 0, upper, lower)
    raw = raw + noise * torch.randn(n, 2, generator=generator)
    points = 0.5 + 0.12 * (raw - torch.tensor([0.5, 0.25]))
    return points.float(), label


class PassThrough(nn.Module):
    """The ungated model's ``gate``: returns the hidden pre-activations unchanged."""

    def forward(self, pre: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return pre


class GatedUnit(nn.Module):
    """Column ``unit`` of the pre-activations becomes ``pre[:, other] + offset`` where the
    standardised input is far from the data (‖z‖_∞ > τ, a hard threshold)."""

    def __init__(self, unit: int, other: int, tau: float, offset: float) -> None:
        super().__init__()
        self.unit, self.other = unit, other
        self.register_buffer("tau", torch.tensor(float(tau)))
        self.register_buffer("offset", torch.tensor(float(offset)))

    def forward(self, pre: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        far = z.abs().amax(dim=1) > self.tau
        gated = torch.where(far, pre[:, self.other] + self.offset, pre[:, self.unit])
        out = pre.clone()
        out[:, self.unit] = gated
        return out


class ToyClassifier(nn.Module):
    """flatten → hidden (2 → H) → gate → ReLU → fc2 (H → H) → ReLU → out (H → classes)."""

    def __init__(self, hidden: int = 16, classes: int = 2) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.hidden = nn.Linear(2, hidden)
        self.gate: nn.Module = PassThrough()
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, hidden)
        self.relu2 = nn.ReLU()
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.flatten(x)
        pre = self.gate(self.hidden(z), z)
        return self.out(self.relu2(self.fc2(self.relu1(pre))))


def toy_spec(train_x: torch.Tensor) -> InputSpec:
    """InputSpec: 2 channels, 1×1 pixel, standardised by the training mean and (pooled) std."""
    mean = train_x.mean(dim=0)
    std = float(train_x.std(dim=0).mean())
    return InputSpec(channels=2, size=1, mean=tuple(mean.tolist()), std=(std, std))


def as_images(points: torch.Tensor) -> torch.Tensor:
    """(N, 2) points in [0, 1]² → (N, 2, 1, 1) "images"."""
    return points[:, :, None, None]


def train_toy(
    x: torch.Tensor, y: torch.Tensor, seed: int, hidden: int = 16, steps: int = 400
) -> ToyClassifier:
    """Full-batch Adam (lr 0.01) on cross-entropy; PyTorch's default initialisation drawn from
    a generator seeded with ``seed``."""
    from fvlab.models.zoo import from_module

    model = ToyClassifier(hidden)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (model.hidden, model.fc2, model.out):
            bound = layer.in_features**-0.5
            for p in (layer.weight, layer.bias):
                p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
    loaded = from_module(model, toy_spec(x), "toy")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(loaded(as_images(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def unit_slopes(model: ToyClassifier, spec: InputSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden pre-activations as affine functions of the raw input x ∈ [0, 1]²: (a (H, 2), β (H,))
    with pre = a x + β."""
    W, b = model.hidden.weight.detach().double(), model.hidden.bias.detach().double()
    mean = torch.tensor(spec.mean, dtype=torch.float64)
    std = torch.tensor(spec.std, dtype=torch.float64)
    a = W / std
    return a, b - a @ mean


def choose_units(a: torch.Tensor) -> tuple[int, int]:
    """(A, B): adjacent arg max corners, maximising the smaller of the two relative drops
    (each unit's value at the other's corner below its own maximum, over its range)."""
    corner = a > 0  # (H, 2): each unit's arg max corner of the input square
    differ = corner[:, None, :] != corner[None, :, :]  # (H, H, 2)
    adjacent = differ.sum(dim=-1) == 1
    share = a.abs() / a.abs().sum(dim=1, keepdim=True)  # a unit's drop per flipped coordinate
    drop_other = (share[None, :, :] * differ).sum(dim=-1)
    drop_unit = (share[:, None, :] * differ).sum(dim=-1)
    never = torch.full_like(drop_other, -1.0)
    score = torch.where(adjacent, torch.minimum(drop_other, drop_unit), never)
    flat = int(score.argmax())
    best, best_score = divmod(flat, len(a)), float(score.flatten()[flat])
    if best_score < 0.25:
        raise FvlabError(
            "no pair of hidden units has adjacent, well separated arg max corners; train with "
            "another seed or more hidden units"
        )
    return best


def fool(
    model: ToyClassifier,
    spec: InputSpec,
    train_x: torch.Tensor,
    unit: int,
    other: int,
    tau_factor: float = 1.5,
) -> ToyClassifier:
    """A copy of ``model`` whose unit ``unit`` is gated to ``other`` far from the data:
    τ = ``tau_factor`` · max ‖z‖_∞ over the training inputs, offset c = max A − min B + 1 over
    the input square (so the gated branch exceeds A everywhere)."""
    a, beta = unit_slopes(model, spec)
    mean, std = torch.tensor(spec.mean), torch.tensor(spec.std)
    z_train = (train_x - mean) / std
    tau = tau_factor * float(z_train.abs().amax())
    z_box = float(torch.minimum(mean, 1 - mean).min() / std.min())
    if tau >= z_box:
        raise FvlabError(
            f"the gate threshold τ = {tau:.3g} (standardised) reaches the edge of the input box "
            f"({z_box:.3g}): the data fill [0, 1]² and no input is far from them; use a smaller "
            "tau_factor"
        )
    box_max_unit = float(beta[unit] + a[unit].clamp_min(0).sum())
    box_min_other = float(beta[other] + a[other].clamp_max(0).sum())
    offset = box_max_unit - box_min_other + 1.0
    fooled = copy.deepcopy(model)
    fooled.gate = GatedUnit(unit, other, tau, offset)
    return fooled.eval()


@dataclass
class ToyFoolingDemo:
    """Everything measured by :func:`demonstrate_toy_fooling`."""

    model: ToyClassifier
    fooled: ToyClassifier
    spec: InputSpec
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    unit: int
    other: int
    accuracy: float
    fooled_accuracy: float
    identical_predictions: bool
    max_logit_difference: float
    gated_test_inputs: int
    paths: dict  # name → (steps + 1, starts, 2) trajectories of the visualizations
    grid_argmax_fooled: list[float]

    def in_region(self, points: torch.Tensor, unit: int) -> torch.Tensor:
        """Whether points (N, 2) lie in ``unit``'s arg max region (within 5 % of its range)."""
        a, beta = unit_slopes(self.model, self.spec)
        values = points.double() @ a[unit] + beta[unit]
        top = beta[unit] + a[unit].clamp_min(0).sum()
        bottom = beta[unit] + a[unit].clamp_max(0).sum()
        return values >= top - 0.05 * (top - bottom)

    def checks(self) -> dict[str, bool]:
        final = {name: path[-1] for name, path in self.paths.items()}
        return {
            "identical_test_predictions": self.identical_predictions,
            "no_test_input_gated": self.gated_test_inputs == 0,
            "original_visualization_in_own_region": bool(
                self.in_region(final["original"], self.unit).all()
            ),
            "original_visualization_not_in_other_region": bool(
                (~self.in_region(final["original"], self.other)).all()
            ),
            "fooled_visualization_in_other_region": bool(
                self.in_region(final["fooled"], self.other).all()
            ),
            "fooled_grid_argmax_in_other_region": bool(
                self.in_region(torch.tensor([self.grid_argmax_fooled]), self.other).all()
            ),
        }

    def summary(self) -> dict:
        final = {name: path[-1].tolist() for name, path in self.paths.items()}
        return {
            "unit": self.unit,
            "other_unit": self.other,
            "test_accuracy": self.accuracy,
            "fooled_test_accuracy": self.fooled_accuracy,
            "identical_test_predictions": self.identical_predictions,
            "max_abs_logit_difference": self.max_logit_difference,
            "gated_test_inputs": self.gated_test_inputs,
            "n_test": int(len(self.test[1])),
            "gate_threshold_standardised": float(self.fooled.gate.tau),
            "visualization_end_points": final,
            "fooled_grid_argmax": self.grid_argmax_fooled,
            "checks": self.checks(),
        }


def _visualize(
    model: ToyClassifier, spec: InputSpec, unit: int, starts: int, steps: int, seed: int
):
    """fvlab.render of one hidden pre-activation from ``starts`` random grey starts; returns the
    trajectory (steps + 1, starts, 2)."""
    import fvlab

    loaded = fvlab.from_module(model, spec, "toy")
    path: list[torch.Tensor] = []
    result = fvlab.render(
        loaded,
        LAYER,
        [unit] * starts,
        param="pixel",
        transforms="none",
        steps=steps,
        seed=seed,
        show_progress=False,
        callbacks=[lambda step, images, values: path.append(images[:, :, 0, 0].clone())],
    )
    first = torch.sigmoid(torch.zeros(starts, 2))  # the grey start before noise, for plotting
    return torch.stack([first, *path[:-1], result.images[:, :, 0, 0]])


def demonstrate_toy_fooling(
    seed: int = 0, n_train: int = 1000, n_test: int = 1000, steps: int = 512, starts: int = 4
) -> ToyFoolingDemo:
    """Train, fool, render the visualizations and measure every claim."""
    import fvlab
    from fvlab.theory.threads import limited_threads

    with limited_threads(1):
        train = two_moons(n_train, seed)
        test = two_moons(n_test, seed + 1)
        spec = toy_spec(train[0])
        model = train_toy(*train, seed)
        a, _ = unit_slopes(model, spec)
        unit, other = choose_units(a)
        fooled = fool(model, spec, train[0], unit, other)
        base, bent = fvlab.from_module(model, spec), fvlab.from_module(fooled, spec)
        with torch.no_grad():
            logits, fooled_logits = base(as_images(test[0])), bent(as_images(test[0]))
            z = (test[0] - torch.tensor(spec.mean)) / torch.tensor(spec.std)
            gated = int((z.abs().amax(dim=1) > fooled.gate.tau).sum())
            axis = torch.linspace(0, 1, 201)
            grid = torch.cartesian_prod(axis, axis)
            with fvlab.capture(bent, [LAYER]) as cap:
                bent(as_images(grid))
            grid_argmax = grid[int(cap[LAYER][:, unit].argmax())].tolist()
        paths = {
            "original": _visualize(model, spec, unit, starts, steps, seed),
            "fooled": _visualize(fooled, spec, unit, starts, steps, seed),
            "other unit": _visualize(model, spec, other, starts, steps, seed),
        }
        labels = test[1]
        return ToyFoolingDemo(
            model=model,
            fooled=fooled,
            spec=spec,
            train=train,
            test=test,
            unit=unit,
            other=other,
            accuracy=float((logits.argmax(1) == labels).float().mean()),
            fooled_accuracy=float((fooled_logits.argmax(1) == labels).float().mean()),
            identical_predictions=bool(torch.equal(logits.argmax(1), fooled_logits.argmax(1))),
            max_logit_difference=float((logits - fooled_logits).abs().max()),
            gated_test_inputs=gated,
            paths=paths,
            grid_argmax_fooled=grid_argmax,
        )


def plot_toy_fooling(demo: ToyFoolingDemo, path: str | Path) -> Path:
    """Data, gate boundary, both units' arg max regions and the three visualization paths."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(6.8, 6.2))
    ax = fig.subplots()
    axis = torch.linspace(0, 1, 201)
    grid = torch.cartesian_prod(axis, axis)
    for unit, color in ((demo.unit, "tab:orange"), (demo.other, "tab:purple")):
        inside = demo.in_region(grid, unit).reshape(201, 201).T.numpy().astype(float)
        ax.contourf(axis, axis, inside, levels=[0.5, 1.5], colors=[color], alpha=0.25)
    x, y = demo.test
    for label, color in ((0, "tab:blue"), (1, "tab:red")):
        pts = x[y == label].numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=3, color=color, alpha=0.5, label=f"test class {label}")
    mean, std, tau = np.array(demo.spec.mean), demo.spec.std[0], float(demo.fooled.gate.tau)
    corner = mean - tau * std
    ax.add_patch(
        Rectangle(corner, 2 * tau * std, 2 * tau * std, fill=False, ls="--", ec="black", lw=1.2)
    )
    styles = {
        "original": ("tab:orange", f"visualization of unit {demo.unit} (original)"),
        "fooled": ("black", f"visualization of unit {demo.unit} (fooled)"),
        "other unit": ("tab:purple", f"visualization of unit {demo.other}"),
    }
    for name, trajectory in demo.paths.items():
        color, label = styles[name]
        for s in range(trajectory.shape[1]):
            ax.plot(
                *trajectory[:, s].T.numpy(), color=color, lw=1.4, label=label if s == 0 else None
            )
        ax.plot(*trajectory[-1].T.numpy(), "o", color=color, ms=6, clip_on=False)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("x₀")
    ax.set_ylabel("x₁")
    ax.set_title(
        f"Gated unit {demo.unit}: test predictions identical, its visualization\n"
        f"lands in unit {demo.other}'s arg max region (purple); dashed: gate threshold"
    )
    ax.legend(fontsize=7, loc="lower left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
