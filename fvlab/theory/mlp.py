"""Plain ReLU MLPs as lists of (W, b): validation, evaluation, interval bounds, random nets.

A ReLU MLP is an ``nn.Sequential`` alternating ``Linear`` and ``ReLU`` and ending with
``Linear``; :func:`mlp_layers` turns it into float64 (W, b) pairs so that the constructions in
:mod:`fvlab.theory.relu_tents` can be computed and certified exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fvlab.errors import FvlabError
from fvlab.theory.ascent import ScalarFn

Layers = list[tuple[torch.Tensor, torch.Tensor]]


def mlp_layers(model: nn.Module, unit: int = 0) -> Layers:
    """(W, b) of each Linear of a ``Linear, ReLU, …, Linear`` Sequential (or of a bare Linear),
    float64; the last one restricted to output ``unit``."""
    modules = list(model.children()) if isinstance(model, nn.Sequential) else [model]
    kinds = [type(m).__name__ for m in modules]
    bad = [
        i for i, m in enumerate(modules) if not isinstance(m, nn.Linear if i % 2 == 0 else nn.ReLU)
    ]
    if not isinstance(model, nn.Sequential | nn.Linear) or bad or len(modules) % 2 == 0:
        where = f" (position {bad[0]} is {kinds[bad[0]]})" if bad else ""
        raise FvlabError(
            "f must be an nn.Sequential alternating Linear and ReLU and ending with Linear "
            f"(Linear, ReLU, …, Linear); got [{', '.join(kinds)}]{where}"
        )
    layers = [(m.weight.detach().double(), _bias(m)) for m in modules[::2]]
    W, b = layers[-1]
    if not 0 <= unit < W.shape[0]:
        raise FvlabError(
            f"unit {unit} out of range: f has {W.shape[0]} outputs (0–{W.shape[0] - 1})"
        )
    layers[-1] = (W[unit : unit + 1], b[unit : unit + 1])
    return layers


def _bias(linear: nn.Linear) -> torch.Tensor:
    if linear.bias is None:
        return torch.zeros(linear.out_features, dtype=torch.float64)
    return linear.bias.detach().double()


def forward_layers(layers: Layers, x: torch.Tensor) -> torch.Tensor:
    """Evaluate the MLP given by ``layers`` at x (N, d) → (N,)."""
    for i, (W, b) in enumerate(layers):
        x = x @ W.T + b
        if i < len(layers) - 1:
            x = torch.relu(x)
    return x[:, 0]


def interval_bounds(layers: Layers, lo: torch.Tensor, hi: torch.Tensor):
    """Certified (lower, upper) bounds of the MLP on the boxes [lo, hi] (N, d) → two (N,).

    Interval bound propagation: for a box with centre c and half-width ρ, W x + b lies in
    [W c + b − |W| ρ, W c + b + |W| ρ]; ReLU is monotone, so it maps bounds to bounds.
    """
    for i, (W, b) in enumerate(layers):
        centre, half = (lo + hi) / 2, (hi - lo) / 2
        centre, half = centre @ W.T + b, half @ W.abs().T
        lo, hi = centre - half, centre + half
        if i < len(layers) - 1:
            lo, hi = torch.relu(lo), torch.relu(hi)
    return lo[:, 0], hi[:, 0]


def random_relu_mlp(
    d: int, widths: Sequence[int], seed: int, outputs: int = 1, input_gain: float = 1.0
) -> nn.Sequential:
    """A ReLU MLP d → widths → outputs with PyTorch's default initialisation, seeded; the first
    layer's weights are multiplied by ``input_gain`` (more kinks inside the unit cube)."""
    generator = torch.Generator().manual_seed(seed)
    sizes = [d, *widths, outputs]
    modules: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        bound = n_in**-0.5
        linear = nn.Linear(n_in, n_out)
        with torch.no_grad():
            weight = (torch.rand(n_out, n_in, generator=generator) * 2 - 1) * bound
            linear.weight.copy_(weight * (input_gain if i == 0 else 1.0))
            linear.bias.copy_((torch.rand(n_out, generator=generator) * 2 - 1) * bound)
        modules.append(linear)
        if i < len(sizes) - 2:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def as_scalar_fn(model: nn.Module, unit: int = 0) -> ScalarFn:
    """x (N, d) float64 → output ``unit`` of a float64 copy of ``model`` (N,)."""
    layers = mlp_layers(model, unit)
    return lambda x: forward_layers(layers, x)
