"""The filter arithmetic of silent units (Geirhos et al. 2024; docs/fool.md, "Silent units").

For a unit with filter w (flattened, ‖·‖ the Euclidean norm, ⟨·,·⟩ the dot product):

1. d  = a unit direction that responds to the target pattern, from the target's input to
        this layer a_t, by one of three objectives:
          'sum'      Σ_{y,x} (d ∗ a_t)[y, x]      (every position; the authors' choice)
          'centre'   (d ∗ a_t)[H'/2, W'/2]        (the centre position only)
        both by projected gradient ascent on the unit sphere (SGD, ``steps`` steps of size
        ``lr``, d ← d / ‖d‖ after each step, from a seeded Gaussian start), or
          'contrast' ⟨d, p̄_t − μ⟩ / √(dᵀ(Σ + ρI)d)  maximised in closed form,
                     d ∝ (Σ + ρI)⁻¹ (p̄_t − μ)
        where p̄_t is the target's mean input patch, μ and Σ the mean and covariance of the
        natural input patches and ρ = ridge · tr(Σ)/D: the target's response above the
        natural mean in units of the natural spread. Natural images barely excite such a
        direction, so its natural maximum is low and a visualization can exceed it.
          'rare'     d ∝ V_r V_rᵀ p̄_t               (closed form)
                     V_r: the eigenvectors of the natural patches' second moment
                     M = E[p pᵀ] (uncentred: a response w ∗ x includes the mean) with the
                     smallest eigenvalues that together hold at most ``rare_energy`` of
                     tr(M) — the directions natural images barely use; d is the target's mean
                     patch projected onto them (the most target response available there).
2. d ← d − (⟨d, w⟩ / ⟨w, w⟩) w                    (orthogonal to w)
3. d ← d · ‖w‖² / ‖d‖²
4. w_new = (w + λ d) · ‖w‖² / ‖w + λ d‖² · weight_factor

The mix of step 4 as an angle: d ⊥ w, so w_new sits at α = atan(λ ‖d‖ / ‖w‖) from w, and
after step 3 ‖d‖ = ‖w‖² / ‖d⊥‖ with ‖d⊥‖ = sin∠(d₀, w) ≤ 1 for the unit direction d₀ of
step 1: α = atan(λ ‖w‖ / sin∠(d₀, w)) — for a fixed λ the angle depends on the filter's norm,
which BatchNorm makes arbitrary (the issue's 71° at conv3 but 54° at conv5 of fmnist-cnn).
Giving ``angle`` instead fixes α for every unit: λ_i = tan α · ‖w_i‖ / ‖d_i‖
(:func:`lam_for_angle`); :func:`angle_between` measures α.

All functions work on every unit at once: tensors are (n, C_in, kh, kw).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.func import functional_call

from fvlab.errors import FvlabError

DeltaObjective = Literal["sum", "centre", "contrast", "rare"]
DELTA_OBJECTIVES: tuple[str, ...] = ("sum", "centre", "contrast", "rare")


def _norm2(x: torch.Tensor) -> torch.Tensor:
    """Squared norm per unit, shaped to broadcast against (n, C, kh, kw)."""
    return x.flatten(1).pow(2).sum(1).view(-1, *([1] * (x.ndim - 1)))


def _unit_norm(x: torch.Tensor) -> torch.Tensor:
    return x / _norm2(x).sqrt().clamp_min(1e-30)


def target_directions(
    probe: nn.Module,
    target_input: torch.Tensor,
    mask: torch.Tensor,
    *,
    objective: DeltaObjective = "sum",
    steps: int = 50,
    lr: float = 1e-3,
    seed: int = 0,
) -> torch.Tensor:
    """Step 1 for all units at once: unit-norm directions d (n, C_in, kh, kw).

    ``probe`` is a hook-free copy of the live conv
    (:func:`fvlab.fool.silent.responses.parallel_conv`,
    no bias), so the response uses the live layer's padding and stride. ``target_input`` is
    (1, C_in, H, W); ``mask`` (n, C_in, kh, kw) is 1 where a unit's filter may be non-zero
    (grouped convs). The start is a seeded Gaussian direction.
    """
    if objective not in ("sum", "centre"):
        raise FvlabError(f"gradient directions take objective 'sum' or 'centre', not {objective!r}")
    if steps < 0 or lr <= 0:
        raise FvlabError(f"need steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(mask.shape, generator=generator, dtype=torch.float32)
    direction = _unit_norm(start.to(mask) * mask)
    target_input = target_input.detach()
    for _ in range(steps):
        direction.requires_grad_(True)
        response = functional_call(probe, {"weight": direction}, (target_input,))
        if objective == "sum":
            value = response.sum()
        else:
            value = response[:, :, response.shape[2] // 2, response.shape[3] // 2].sum()
        (grad,) = torch.autograd.grad(value, direction)
        with torch.no_grad():
            direction = _unit_norm((direction + lr * grad) * mask)
    return direction.detach()


def contrast_direction(
    target_patch: torch.Tensor,
    natural_mean: torch.Tensor,
    natural_cov: torch.Tensor,
    ridge: float = 1e-2,
) -> torch.Tensor:
    """Step 1, 'contrast': d ∝ (Σ + ρI)⁻¹ (p̄_t − μ), ρ = ridge · tr(Σ)/D, as a unit (D,) vector
    (float64 inputs: the target's mean patch, the natural patch mean and covariance)."""
    if ridge <= 0:
        raise FvlabError(f"ridge must be > 0, got {ridge}")
    size = natural_cov.shape[0]
    regulariser = ridge * natural_cov.trace().clamp_min(1e-30) / size
    system = natural_cov + regulariser * torch.eye(size, dtype=natural_cov.dtype)
    direction = torch.linalg.solve(system, target_patch - natural_mean)
    norm = direction.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise FvlabError("the target's patches equal the natural mean; choose another target")
    return (direction / norm).float()


def rare_direction(
    target_patch: torch.Tensor,
    natural_mean: torch.Tensor,
    natural_cov: torch.Tensor,
    rare_energy: float = 0.01,
) -> tuple[torch.Tensor, int]:
    """Step 1, 'rare': (unit (D,) vector d ∝ V_r V_rᵀ p̄_t, r = the number of eigenvectors kept),
    from float64 inputs: the target's mean patch, the natural patch mean and covariance
    (M = Σ + μμᵀ). Keeps the smallest eigenvalues of M whose sum is ≤ ``rare_energy`` · tr(M)
    (at least one)."""
    if not 0 < rare_energy < 1:
        raise FvlabError(f"rare_energy must be in (0, 1), got {rare_energy}")
    moment = natural_cov + torch.outer(natural_mean, natural_mean)
    values, vectors = torch.linalg.eigh(moment)  # ascending
    share = values.clamp_min(0).cumsum(0) / values.clamp_min(0).sum().clamp_min(1e-300)
    kept = max(1, int((share <= rare_energy).sum()))
    basis = vectors[:, :kept]
    direction = basis @ (basis.T @ target_patch)
    norm = direction.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise FvlabError(
            "the target has no component in the directions natural images barely use; raise "
            "rare_energy or choose another target"
        )
    return (direction / norm).float(), kept


def angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The angle between each unit's filters in ``a`` and ``b`` (n, …), in degrees (n,)."""
    dot = (a * b).flatten(1).sum(1).double()
    norms = (_norm2(a) * _norm2(b)).sqrt().flatten().double().clamp_min(1e-300)
    return torch.rad2deg(torch.acos((dot / norms).clamp(-1, 1))).float()


def lam_for_angle(weight: torch.Tensor, delta: torch.Tensor, angle: float) -> torch.Tensor:
    """λ_i = tan α · ‖w_i‖ / ‖Δ_i‖ per unit (n,), so that w + λ_i Δ_i sits at ``angle`` degrees
    (0 < angle < 90) from w."""
    if not 0 < angle < 90:
        raise FvlabError(f"angle must be in (0, 90) degrees, got {angle}")
    ratio = (_norm2(weight) / _norm2(delta)).sqrt().flatten()
    return torch.tan(torch.deg2rad(torch.tensor(float(angle), dtype=ratio.dtype))) * ratio


def orthogonalise(delta: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Step 2: remove from each unit's ``delta`` its component along that unit's ``weight``."""
    dot = (delta * weight).flatten(1).sum(1).view(-1, *([1] * (weight.ndim - 1)))
    return delta - dot / _norm2(weight) * weight


def fooling_filters(
    weight: torch.Tensor,
    direction: torch.Tensor,
    lam: float = 3.0,
    weight_factor: float = 100.0,
    angle: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 2–4: (w_new, d) from the units' filters ``weight`` and unit directions; with
    ``angle`` (degrees) each unit's λ is :func:`lam_for_angle` instead of ``lam``.

    Raises :class:`FvlabError` for a unit whose filter is zero (no orthogonal complement to
    scale against) or whose direction is parallel to its filter.
    """
    w2 = _norm2(weight)
    zero = (w2.flatten() == 0).nonzero().flatten().tolist()
    if zero:
        raise FvlabError(
            f"filters of units at positions {zero[:10]} of the chosen units are all zero; a "
            "silent unit needs a non-zero filter — leave those units out (units=...)"
        )
    delta = orthogonalise(direction, weight)
    d2 = _norm2(delta)
    parallel = (d2.flatten() <= 1e-12 * w2.flatten()).nonzero().flatten().tolist()
    if parallel:
        raise FvlabError(
            f"the target direction is parallel to the filters of units at positions "
            f"{parallel[:10]}; choose another target or seed"
        )
    delta = delta * w2 / d2
    if angle is not None:
        lam = lam_for_angle(weight, delta, angle).view_as(w2).to(weight)
    combined = weight + lam * delta
    w_new = combined * w2 / _norm2(combined) * weight_factor
    return w_new, delta
