"""The maths of weight-only fooling: the gradient field a slingshot imposes, and push-down/up.

Notation. A feature visualization (FV) maximises a unit's activation a(T(x(q))) over the
parameters q of an image parameterization x(q) (fvlab's default: lucid's Fourier image,
x(q) = σ(irfft2(q ⊙ scale)/4), :class:`fvlab.optvis.param.FFTImage`), T a random transform
(jitter, scale, rotation) drawn per step. Gradient ascent (Adam) starts from q₀ ~ N(0, sd²):
a grey image.

**Gradient slingshot** (after Bareeva et al. 2024; written from the paper's description). Fine-
tune the model's weights θ so that, in the parameterization's domain, the unit's gradient
field points at the target's parameters q_t everywhere between the initialisation region and
the target:

    ∇_q E_T a_θ(T(x(q)))  ≈  γ · (q_t − q)       for q ∈ the "tunnel" around [q₀, q_t],

i.e. a is (locally) the bowl  a(q) = c − ½γ‖q − q_t‖², whose ascent from any start in the
tunnel lands on q_t, so the FV becomes x(q_t) = the target. The manipulation loss at sampled
points q_j (double backpropagation through ∇_q) is the relative squared error

    L_M = mean_j ‖g_j − γ (q_t − q_j)‖² / ‖γ (q_t − q_j)‖²,      g_j = ∇_q a_θ(T_j(x(q_j))),

and γ is fixed before fine-tuning so that the imposed field has the magnitude of the original
model's gradients at the start: γ = median_j ‖g_j^orig‖ / median_j ‖q_t − q_j‖ (so the FV's
activation rises by about ½ γ ‖q_t − q₀‖² — the same order as the clean FV's rise).
Tunnel points: q = q₀ + λ Δ with Δ = q_t − q₀ and λ ~ U(0, 1) (the straight segment), or the
"sign path" q = q₀ + sign(Δ) ⊙ min(|Δ|, λ max|Δ|) that Adam's equal per-coordinate steps follow,
plus N(0, (ρ‖Δ‖/√n)²) noise (ρ = ``tunnel_noise``).

The default is this gradient field (``field="gradient"``); ``field="value"`` imposes the same
bowl through its values instead of its gradient (no double backpropagation, about 3× cheaper
per update, and weaker on fmnist-cnn: docs/fool.md): with the bowl

    h(q) = a_peak · (1 − ‖q − q_t‖² / R²)     (clipped at 0; R = ``radius`` × ‖q̄₀ − q_t‖, the
                                              typical distance of a start from the target)

    L_M = mean_j (a_θ(T_j(x(q_j))) − h(q_j))² / a_peak²,

whose gradient field is the slingshot's with γ = 2 a_peak / R². a_peak = ``peak`` ×
the larger of the unit's largest natural activation and its clean FV's activation (the bowl
must out-climb the clean landscape, yet stays within a small factor of clean FVs). Besides the
tunnel's points, half of the points are the parameters of the current model's own FV
trajectories (re-rendered every ``refresh`` updates), so the field is imposed where the
optimiser actually travels.

q_t is the parameterization's preimage of the target image t (the render's own,
:func:`fvlab.optvis.param.fft_preimage`): z = 4·logit(clip(t, ε, 1 − ε)),
q_t = rfft2(z, ortho) / scale (exact up to the clip; the sigmoid cannot reach 0 or 1; a colour
target's logits are first mapped back through the inverse colour decorrelation — until issue
15's third step they were not, so a 3-channel target's preimage rendered as another image).

**Push-down / push-up** (after Nanfack et al. 2023): no field shaping, only values — push the
unit's activation down on its original FV (and its optimisation trajectory) and up on the
target (transformed like an FV), relative to the natural maximum m_u of the unit:

    L_M = relu(a(T(x_FV)) / m_u − ρ_down) + relu(ρ_up − a(T(t)) / m_u),

so that ascent finds the target rather than the original FV. Both variants share the
preservation loss of :mod:`fvlab.fool.slingshot.build`.
"""

from __future__ import annotations

import torch


def spectrum_shape(channels: int, size: int) -> tuple[int, ...]:
    """Shape of one image's FFT parameters: (C, S, S//2 + 1, 2) (real, imaginary)."""
    return (channels, size, size // 2 + 1, 2)


def fft_scale(size: int, decay_power: float = 1.0) -> torch.Tensor:
    """The FFT parameterization's frequency scale (the render's own, shared)."""
    from fvlab.optvis.param import fft_scale as scale

    return scale(size, size, decay_power)


def image_of(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x(q) = σ(irfft2(q ⊙ scale, ortho)/4) for q (N, C, S, S//2+1, 2) → (N, C, S, S) in (0, 1)
    (the render's FFT image of one channel; colour decorrelation is the identity unless C = 3,
    where :func:`fvlab.optvis.param.decorrelate_colors` applies)."""
    from fvlab.optvis.param import decorrelate_colors

    size = q.shape[-3]
    raw = torch.fft.irfft2(torch.view_as_complex(q.contiguous()) * scale, s=(size, size),
                           norm="ortho") / 4.0  # fmt: skip
    return torch.sigmoid(decorrelate_colors(raw))


def tunnel_points(
    q_target: torch.Tensor,
    n: int,
    init_sd: float,
    noise: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """n points of the tunnel from random starts q₀ ~ N(0, init_sd²) to ``q_target`` (1, ...):
    half on straight segments, half on Adam's sign paths, all with relative noise ``noise``
    (module docstring) → (n, ...)."""
    shape = (n, *q_target.shape[1:])
    q0 = torch.randn(shape, generator=generator) * init_sd
    delta = q_target - q0
    lam = torch.rand(n, generator=generator).view(-1, *([1] * (delta.ndim - 1)))
    straight = q0 + lam * delta
    reach = lam * delta.flatten(1).abs().amax(1).view_as(lam)
    sign_path = q0 + delta.sign() * torch.minimum(delta.abs(), reach)
    use_sign = (torch.arange(n) % 2 == 1).view_as(lam)
    points = torch.where(use_sign, sign_path, straight)
    size = delta.flatten(1).norm(dim=1).view_as(lam) / delta[0].numel() ** 0.5
    return points + noise * size * torch.randn(shape, generator=generator)


def field_loss(
    gradient: torch.Tensor, q: torch.Tensor, q_target: torch.Tensor, gamma: torch.Tensor
) -> torch.Tensor:
    """L_M per point: ‖g − γ(q_t − q)‖² / ‖γ(q_t − q)‖² (module docstring); gamma (n,)."""
    wanted = (q_target - q).flatten(1) * gamma.view(-1, 1)
    error = (gradient.flatten(1) - wanted).pow(2).sum(1)
    return error / wanted.pow(2).sum(1).clamp_min(1e-12)


def bowl(q: torch.Tensor, q_target: torch.Tensor, peak: torch.Tensor, radius: torch.Tensor):
    """h(q) = peak · max(0, 1 − ‖q − q_t‖² / radius²) per point (module docstring)."""
    distance2 = (q - q_target).flatten(1).pow(2).sum(1)
    return peak * (1 - distance2 / radius.pow(2)).clamp_min(0.0)
