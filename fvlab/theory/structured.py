"""Structured units: an enforced architecture under which the visualization orders every pair.

Single-index monotone network: a ReLU MLP d → k → k → 1 of the same shape as an unstructured
one, with the structure enforced in its weights:

    layer 1:  W₁ = w aᵀ (rank one, w_j > 0), b_j = −w_j τ_j   (unit j: w_j relu(t − τ_j), t = a·x)
    layers 2, 3: every weight ≥ 0

so f(x) = h(a·x) with h non-decreasing (a composition of non-decreasing maps of t). Layer-1
unit 0 has τ₀ below the cube's range of t and layer-2 unit 0 a bias of +1, so both are active on
the whole cube and h is strictly increasing there. Hence f(x) > f(y) ⟺ a·(x − y) > 0, and
∇f = h′(t) a ∥ a: the visualization's first ascent step from the grey start is parallel to a,
and the "single index" decoder (:mod:`fvlab.theory.decoders`) that orders points by their
projection on that step orders every pair correctly.

Measured: the pair-ordering accuracy of every decoder on ``n_nets`` seeded structured networks
and ``n_nets`` unstructured ones (:func:`~fvlab.theory.mlp.random_relu_mlp`, same widths), each
on ``n_pairs`` pairs x, y iid uniform on [0, 1]^d; a tie between the two predictions counts ½.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fvlab.errors import FvlabError
from fvlab.theory.ascent import AscentSchedule, default_starts, visualize
from fvlab.theory.decoders import DECODERS
from fvlab.theory.mlp import as_scalar_fn, random_relu_mlp

#: the decoder that uses the structure
STRUCTURE_DECODER = "single index (first ascent step)"


def single_index_mlp(d: int, width: int, seed: int) -> nn.Sequential:
    """A seeded ReLU MLP d → width → width → 1 computing h(a·x), h strictly increasing on the
    cube (see the module docstring); a ~ N(0, I_d), float64."""
    if d < 1 or width < 2:
        raise FvlabError(f"need d >= 1 and width >= 2, got d={d}, width={width}")
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, generator=g, dtype=torch.float64)
    t_low, t_high = float(a.clamp(max=0).sum()), float(a.clamp(min=0).sum())
    w = 0.5 + torch.rand(width, generator=g, dtype=torch.float64)
    tau = t_low + (t_high - t_low) * torch.rand(width, generator=g, dtype=torch.float64)
    tau[0] = t_low - 1.0
    w2 = torch.rand(width, width, generator=g, dtype=torch.float64) * width**-0.5
    b2 = (torch.rand(width, generator=g, dtype=torch.float64) * 2 - 1) * 0.5
    b2[0] = 1.0
    w3 = torch.rand(1, width, generator=g, dtype=torch.float64) * width**-0.5
    layers = [(w[:, None] * a[None], -w * tau), (w2, b2), (w3, torch.zeros(1, dtype=torch.float64))]
    modules: list[nn.Module] = []
    for i, (W, b) in enumerate(layers):
        linear = nn.Linear(W.shape[1], W.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(W)
            linear.bias.copy_(b)
        modules.append(linear)
        if i < len(layers) - 1:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def pair_accuracy(
    model: nn.Module, n_pairs: int, seed: int, n_starts: int, schedule: AscentSchedule
) -> dict[str, float]:
    """Decoder name → share of pairs (x, y iid uniform) whose order it predicts correctly from
    the visualization of ``model`` (ties ½)."""
    f = as_scalar_fn(model)
    d = model[0].in_features
    vis = visualize(f, default_starts(d, n_starts, seed), schedule)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(n_pairs, d, generator=g, dtype=torch.float64)
    y = torch.rand(n_pairs, d, generator=g, dtype=torch.float64)
    with torch.no_grad():
        truth = f(x) > f(y)
    accuracy = {}
    for name, decoder in DECODERS.items():
        gx, gy = decoder(vis, x), decoder(vis, y)
        right = ((gx > gy) == truth) & (gx != gy)
        accuracy[name] = float((right.double() + 0.5 * (gx == gy).double()).mean())
    return accuracy


@dataclass
class StructuredDemo:
    """Per class ("structured", "unstructured"): per decoder, the accuracy on each network."""

    d: int
    width: int
    n_pairs: int
    accuracy: dict[str, dict[str, list[float]]]

    def worst(self, kind: str, decoder: str = STRUCTURE_DECODER) -> float:
        return min(self.accuracy[kind][decoder])

    def mean(self, kind: str, decoder: str = STRUCTURE_DECODER) -> float:
        values = self.accuracy[kind][decoder]
        return sum(values) / len(values)

    def best_unstructured(self) -> tuple[str, float]:
        """The decoder with the highest mean accuracy on the unstructured networks."""
        name = max(DECODERS, key=lambda n: self.mean("unstructured", n))
        return name, self.mean("unstructured", name)

    def checks(self) -> dict[str, bool]:
        return {
            "structured_every_pair_ordered_on_every_net": self.worst("structured") >= 0.999,
            "unstructured_same_decoder_worse_by_10_points": self.mean("unstructured")
            <= self.worst("structured") - 0.10,
            "no_decoder_reliable_on_unstructured": self.best_unstructured()[1] < 0.999,
        }

    def summary(self) -> dict:
        best_name, best_value = self.best_unstructured()
        return {
            "d": self.d,
            "architecture": f"{self.d} → {self.width} → {self.width} → 1 ReLU MLP (both classes)",
            "structure": "f(x) = h(a·x), h strictly increasing (rank-one first layer, "
            "non-negative later weights)",
            "decoder": STRUCTURE_DECODER,
            "n_nets": len(self.accuracy["structured"][STRUCTURE_DECODER]),
            "n_pairs": self.n_pairs,
            "structured_worst_accuracy": self.worst("structured"),
            "unstructured_mean_accuracy": self.mean("unstructured"),
            "unstructured_worst_accuracy": self.worst("unstructured"),
            "unstructured_best_decoder": {"name": best_name, "mean_accuracy": best_value},
            "mean_accuracy": {
                kind: {name: self.mean(kind, name) for name in DECODERS} for kind in self.accuracy
            },
            "accuracy_per_net": self.accuracy,
            "checks": self.checks(),
        }


def demonstrate_structured(
    d: int = 8,
    width: int = 32,
    n_nets: int = 8,
    n_pairs: int = 2000,
    n_starts: int = 8,
    schedule: AscentSchedule = AscentSchedule(steps=100),
    seed: int = 0,
) -> StructuredDemo:
    """Pair-ordering accuracies of every decoder on ``n_nets`` networks of each class."""
    from fvlab.theory.threads import limited_threads

    if n_nets < 1 or n_pairs < 2:
        raise FvlabError(f"need n_nets >= 1 and n_pairs >= 2, got {n_nets}, {n_pairs}")
    builders = {
        "structured": lambda s: single_index_mlp(d, width, s),
        "unstructured": lambda s: random_relu_mlp(d, (width, width), s),
    }
    accuracy: dict[str, dict[str, list[float]]] = {}
    with limited_threads(1):
        for kind, build in builders.items():
            per_decoder: dict[str, list[float]] = {name: [] for name in DECODERS}
            for k in range(n_nets):
                net_seed = 1000 * seed + k
                for name, value in pair_accuracy(
                    build(net_seed), n_pairs, net_seed, n_starts, schedule
                ).items():
                    per_decoder[name].append(value)
            accuracy[kind] = per_decoder
    return StructuredDemo(d, width, n_pairs, accuracy)


def plot_structured(demo: StructuredDemo, path: str | Path) -> Path:
    """Mean pair-ordering accuracy of each decoder on both classes (dots: single networks)."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 4.6), constrained_layout=True)
    ax = fig.subplots()
    names = list(DECODERS)
    y = np.arange(len(names))
    for shift, kind, color in ((-0.18, "structured", "tab:green"), (0.18, "unstructured", "gray")):
        means = [demo.mean(kind, n) for n in names]
        ax.barh(y + shift, means, height=0.34, color=color, alpha=0.7, label=f"{kind} networks")
        for i, n in enumerate(names):
            values = demo.accuracy[kind][n]
            ax.plot(values, [y[i] + shift] * len(values), "k.", ms=3)
    ax.axvline(0.5, color="k", lw=0.8, ls=":")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0.4, 1.01)
    ax.set_xlabel("P(pair of inputs ordered correctly from the visualization)")
    ax.set_title(
        f"Single-index monotone vs unstructured {demo.d} → {demo.width} → {demo.width} → 1 networks"
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
