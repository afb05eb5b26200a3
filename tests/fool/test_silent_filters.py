"""Silent units on small synthetic models: filter arithmetic, padding and the bias rule."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fvlab
from fvlab.fool.silent import CHILD, silent
from fvlab.fool.silent.filters import (
    contrast_direction,
    fooling_filters,
    orthogonalise,
    target_directions,
)
from fvlab.fool.silent.responses import dense_filters, parallel_conv, patch_stats
from fvlab.models.hooks import capture
from fvlab.models.inceptionv1 import SameConv2d, same_padding


def _flat_dot(a, b):
    return (a.flatten(1) * b.flatten(1)).sum(1)


def test_fooling_filters_follow_the_paper_rule():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(7, 5, 3, 3, generator=g)
    d = torch.randn(7, 5, 3, 3, generator=g)
    d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    w_new, delta = fooling_filters(w, d, lam=3.0, weight_factor=100.0)
    w2 = w.flatten(1).pow(2).sum(1)
    # orthogonal to the unit's own filter
    assert _flat_dot(delta, w).abs().max() <= 1e-5 * w2.max()
    # Δ = d⊥ · ‖w‖² / ‖d⊥‖²
    d_perp = orthogonalise(d, w)
    expected_delta = d_perp * (w2 / d_perp.flatten(1).pow(2).sum(1)).view(-1, 1, 1, 1)
    torch.testing.assert_close(delta, expected_delta)
    # w_new = (w + 3Δ) · ‖w‖² / ‖w + 3Δ‖² · 100
    combined = w + 3.0 * delta
    scale = (w2 / combined.flatten(1).pow(2).sum(1) * 100.0).view(-1, 1, 1, 1)
    torch.testing.assert_close(w_new, combined * scale)
    # the part of w_new along w and the orthogonal part stand in ratio 1 : 3‖Δ‖/‖w‖
    along = _flat_dot(w_new, w) / w2
    rest = w_new - along.view(-1, 1, 1, 1) * w
    ratio = rest.flatten(1).norm(dim=1) / (along * w.flatten(1).norm(dim=1))
    torch.testing.assert_close(ratio, 3.0 * delta.flatten(1).norm(dim=1) / w2.sqrt())


def test_target_directions_converge_to_the_normalised_gradient():
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    g = torch.Generator().manual_seed(1)
    target_input = torch.rand(1, 3, 9, 9, generator=g)
    mask = torch.ones(4, 3, 3, 3)
    probe = parallel_conv(conv, torch.zeros(4, 3, 3, 3), None)
    for objective in ("sum", "centre"):
        d = target_directions(probe, target_input, mask, objective=objective, steps=40, lr=1.0)
        x = torch.zeros(1, 3, 3, 3, requires_grad=True)
        response = F.conv2d(target_input, x, padding=1)
        value = response.sum() if objective == "sum" else response[0, 0, 4, 4]
        (grad,) = torch.autograd.grad(value, x)
        expected = (grad / grad.norm()).expand(4, -1, -1, -1)
        torch.testing.assert_close(d, expected, atol=1e-4, rtol=1e-4)
    # the paper's 50 steps of lr 1e-3: unit norm per unit, same seed → same directions
    a = target_directions(probe, target_input, mask, seed=3)
    b = target_directions(probe, target_input, mask, seed=3)
    assert torch.equal(a, b)
    torch.testing.assert_close(a.flatten(1).norm(dim=1), torch.ones(4))


def test_contrast_direction_solves_the_regularised_system():
    g = torch.Generator().manual_seed(2)
    samples = torch.randn(500, 6, generator=g, dtype=torch.float64) * torch.arange(1, 7)
    mean, cov = samples.mean(0), torch.cov(samples.T, correction=0)
    target = torch.randn(6, generator=g, dtype=torch.float64)
    d = contrast_direction(target, mean, cov, ridge=0.01).double()
    rho = 0.01 * cov.trace() / 6
    residual = (cov + rho * torch.eye(6, dtype=torch.float64)) @ d
    direction = (target - mean) / (target - mean).norm()
    cosine = residual @ direction / residual.norm()
    assert cosine > 1 - 1e-6 and abs(d.norm() - 1) < 1e-6


def test_grouped_conv_filters_become_dense_with_the_same_output():
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2)
    dense, mask = dense_filters(conv)
    x = torch.rand(2, 4, 7, 7)
    torch.testing.assert_close(F.conv2d(x, dense, conv.bias, padding=1), conv(x))
    assert mask[:3, 2:].sum() == 0 and mask[3:, :2].sum() == 0 and mask[:3, :2].all()


class TinyNet(nn.Module):
    """A symmetric-padding conv and a TensorFlow-'SAME' stride-2 conv (asymmetric padding)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = SameConv2d(4, 6, 3, stride=2)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.gap(self.relu2(self.conv2(self.relu1(self.conv1(x))))).flatten(1))


def _live_pad(layer: str, x: torch.Tensor) -> torch.Tensor:
    if layer == "conv1":
        return F.pad(x, (1, 1, 1, 1))
    top, bottom = same_padding(x.shape[-2], 3, 2)
    left, right = same_padding(x.shape[-1], 3, 2)
    assert (top, bottom) == (0, 1)  # 10 px, stride 2: the asymmetric TensorFlow case
    return F.pad(x, (left, right, top, bottom))


@pytest.mark.parametrize("layer", ["conv1", "conv2"])
@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_bias_rule_uses_the_live_padding(layer, margin):
    torch.manual_seed(0)
    net = TinyNet()
    model = fvlab.from_module(net, fvlab.InputSpec(channels=1, size=10), "tiny")
    natural = torch.rand(96, 1, 10, 10, generator=torch.Generator().manual_seed(4))
    target = torch.rand(1, 10, 10, generator=torch.Generator().manual_seed(5))
    result = silent(
        model,
        layer,
        target,
        natural,
        units=[0, 2, 3],
        margin=margin,
        batch_size=40,
        show_progress=False,
    )
    assert result.attach == ("relu1" if layer == "conv1" else "relu2")
    with torch.no_grad():
        a = natural
        if layer == "conv2":
            a = net.relu1(net.conv1(natural))
        response = F.conv2d(
            _live_pad(layer, a), result.weight, None, stride=1 if layer == "conv1" else 2
        )
    top = response.amax(dim=(0, 2, 3))
    spread = top - response.mean(dim=(0, 2, 3))
    torch.testing.assert_close(result.natural.max, top, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(result.bias, -(top + margin * spread), rtol=1e-5, atol=1e-5)
    with torch.no_grad(), capture(result.model.module, [f"{CHILD}.pool", f"{CHILD}.relu"]) as cap:
        out_fooled = result.model(natural)
        pre = cap[f"{CHILD}.pool"]
        branch = cap[f"{CHILD}.relu"]
        out_original = model(natural)
    assert pre.shape == response.shape  # the border positions the padding creates are there
    torch.testing.assert_close(pre, response + result.bias.view(1, -1, 1, 1), rtol=0, atol=1e-4)
    # the highest natural pre-activation per unit is −margin · (max − mean): at margin 0 the
    # threshold touches the natural maximum, above 0 it keeps that distance
    tolerance = 1e-6 * float(top.abs().max())
    torch.testing.assert_close(pre.amax(dim=(0, 2, 3)), -margin * spread, rtol=0, atol=tolerance)
    assert float(branch.max()) <= tolerance
    if margin > 0:
        assert float(branch.max()) == 0.0
        assert torch.equal(out_fooled, out_original)


def test_patch_stats_pool_over_positions():
    torch.manual_seed(0)
    model = fvlab.from_module(TinyNet(), fvlab.InputSpec(channels=1, size=10), "tiny")
    natural = torch.rand(20, 1, 10, 10, generator=torch.Generator().manual_seed(6))
    conv = model.module.conv2
    stats = patch_stats(model, conv, natural, max_images=20)
    assert stats.n_patches == 20 * 5 * 5 and stats.cov.shape == (36, 36)
    pooled = patch_stats(model, conv, natural, max_images=12, pooled=True)
    assert pooled.n_patches == 12
    torch.testing.assert_close(stats.cov, stats.cov.T)
