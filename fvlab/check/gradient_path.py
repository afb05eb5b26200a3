"""Does the gradient a visualization follows belong to the function it visualizes?

Along the straight path x(t) = (1 − t)·x₀ + t·x₁ (a natural exemplar x₀ → the FV x₁) let r(t)
be the unit's activation (spatial mean of its channel) and r'(t) = ⟨∇_x r(x(t)), x₁ − x₀⟩ its
derivative as autograd computes it — the gradient every FV procedure ascends. If the network is
continuous and its autograd gradient is the true derivative almost everywhere (convolutions,
ReLUs, pooling, batch norm, linear layers: a piecewise-linear r), the fundamental theorem of
calculus holds on every interval of a grid t₀ < … < t_G:

    Δr_j = r(t_{j+1}) − r(t_j)  =  ∫ r'(t) dt  ≈  T_j = ½ (r'(t_j) + r'(t_{j+1})) (t_{j+1} − t_j),

exactly for a linear piece and up to the kinks inside the interval otherwise. The **gradient
residual**

    ρ = Σ_j |Δr_j − T_j| / (Σ_j |Δr_j| + Σ_j |T_j| + ε)   ∈ [0, 1]

is ≈ 0 for such networks and large where the function changes in a way its gradient does not
report: a hard gate (a jump, no gradient: ρ → ½ of the jump's share), a continuous gate whose
switch carries no gradient (a detector behind ``torch.no_grad`` or a straight-through
estimator: the ramp's rise is missing from T), any gradient masking. It needs no knowledge of
the manipulation, no discontinuity and no extra module — only a mismatch between a function
and its gradient, which is exactly what steers an FV somewhere the function does not justify.
Honest weight-only manipulations (a gradient slingshot) keep ρ ≈ 0: the field they impose is
the function's true gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fvlab.models.hooks import capture


@dataclass
class GradientPath:
    """r on the grid (N, G), autograd r' on the grid (N, G), ρ per path (N,)."""

    t: torch.Tensor
    response: torch.Tensor
    derivative: torch.Tensor
    residual: torch.Tensor


def _value_and_derivative(
    model, layer: str, units: torch.Tensor, x: torch.Tensor, direction: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """r(x_i) of unit units[i] and ⟨∇r(x_i), direction_i⟩ (float64, (n,))."""
    x = x.detach().to(model.device).requires_grad_(True)
    with torch.enable_grad(), capture(model.module, [layer]) as cap:
        model(x)
        out = cap[layer]
        out = out.flatten(2).mean(2) if out.ndim > 2 else out.reshape(out.shape[0], -1)
        r = out[torch.arange(len(units), device=out.device), units.to(out.device)]
        (grad,) = torch.autograd.grad(r.sum(), x)
    derivative = (grad.double() * direction.to(grad.device).double()).flatten(1).sum(1)
    return r.detach().double().cpu(), derivative.detach().cpu()


def gradient_path(
    model,
    layer: str,
    units: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    *,
    grid: int = 33,
    batch_size: int = 256,
) -> GradientPath:
    """ρ of unit units[i] along start[i] → end[i] (module docstring); images in [0, 1]."""
    units = torch.as_tensor(units, dtype=torch.int64)
    n = len(units)
    t = torch.linspace(0, 1, grid, dtype=torch.float64)
    rows = torch.arange(n).repeat_interleave(grid)
    ts = t.repeat(n).to(start.dtype).view(-1, 1, 1, 1)
    values, derivatives = [], []
    for first in range(0, n * grid, batch_size):
        idx = rows[first : first + batch_size]
        tt = ts[first : first + batch_size]
        x = (1 - tt) * start[idx] + tt * end[idx]
        r, d = _value_and_derivative(model, layer, units[idx], x, end[idx] - start[idx])
        values.append(r)
        derivatives.append(d)
    response = torch.cat(values).view(n, grid)
    derivative = torch.cat(derivatives).view(n, grid)
    delta = response.diff(dim=1)
    trapezoid = 0.5 * (derivative[:, 1:] + derivative[:, :-1]) * t.diff()
    error = (delta - trapezoid).abs().sum(1)
    scale = delta.abs().sum(1) + trapezoid.abs().sum(1) + 1e-12
    return GradientPath(t, response, derivative, error / scale)
