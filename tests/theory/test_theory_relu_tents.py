"""ReLU tents: f′ has f's visualization but differs by delta at the chosen points."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from fvlab.errors import FvlabError
from fvlab.theory.ascent import AscentSchedule, default_starts, visualize
from fvlab.theory.mlp import as_scalar_fn, interval_bounds, mlp_layers, random_relu_mlp
from fvlab.theory.relu_tents import (
    InfeasibleTentError,
    Tent,
    add_tents,
    demonstrate_tents,
    fit_tents,
)

FAST = AscentSchedule(steps=60)


def test_default_demonstration_holds_every_claim():
    demo = demonstrate_tents(seed=0)
    checks = demo.checks()
    assert all(checks.values()), checks
    # f′ is a plain ReLU MLP
    kinds = {type(m) for m in demo.fooled}
    assert kinds == {nn.Linear, nn.ReLU}
    # same visualization, bit for bit in float64 …
    assert demo.trajectory_gap == 0.0
    assert demo.vis.max_value == demo.fooled_vis.max_value
    # … yet the chosen points moved by exactly delta, and every decoder is off by >= delta / 2
    torch.testing.assert_close(demo.difference, torch.full((3,), demo.delta, dtype=torch.float64))
    for name, errors in demo.decoder_worst_error.items():
        assert min(errors) >= demo.delta / 2 - 1e-12, name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    d=st.integers(1, 4),
    widths=st.lists(st.integers(2, 10), min_size=0, max_size=3),
    gain=st.floats(0.5, 6.0),
    coords=st.lists(st.floats(0.01, 0.99), min_size=4, max_size=12),
    fraction=st.floats(0.05, 0.45),
)
def test_tents_hide_in_any_relu_mlp(seed, d, widths, gain, coords, fraction):
    model = random_relu_mlp(d, widths, seed, input_gain=gain)
    k = max(1, len(coords) // d)
    points = torch.tensor(coords[: k * d], dtype=torch.float64).reshape(k, d)[:3]
    try:
        demo = demonstrate_tents(
            model,
            points,
            delta_fraction=fraction,
            seed=seed,
            n_starts=4,
            schedule=FAST,
            n_check=2000,
        )
    except InfeasibleTentError as exc:
        # the only legitimate reasons with delta < range / 2: a point sits on a visited point
        # (or on another chosen point), or f there already reaches the visualized extremes
        assert "visualization's path" in str(exc) or "visualized extremes" in str(exc)
        assume(False)
    except FvlabError as exc:
        assert "constant" in str(exc)
        assume(False)
    checks = demo.checks()
    assert all(checks.values()), checks
    assert (demo.difference >= demo.delta * (1 - 1e-9)).all()


def test_a_tent_on_the_path_changes_the_visualization():
    """Negative control: the same construction without the placement rule is detected."""
    model = random_relu_mlp(2, (16, 16), 3, input_gain=4.0)
    f = as_scalar_fn(model)
    starts = default_starts(2, 4, 0)
    vis = visualize(f, starts, FAST)
    delta = vis.max_value - vis.min_value
    bad = add_tents(model, [Tent(tuple(vis.argmax.tolist()), 0.2, delta)])
    bad_vis = visualize(as_scalar_fn(bad), starts, FAST)
    assert bad_vis.max_value >= vis.max_value + 0.9 * delta
    assert (bad_vis.ascent.points - vis.ascent.points).abs().max() > 1e-3


def test_infeasible_requests_are_clear_errors():
    model = random_relu_mlp(2, (8,), 1, input_gain=3.0)
    layers = mlp_layers(model)
    starts = default_starts(2, 3, 0)
    vis = visualize(as_scalar_fn(model), starts, FAST)
    centre = torch.tensor([[0.5, 0.5]], dtype=torch.float64)  # the first start
    with pytest.raises(InfeasibleTentError, match="visualization's path"):
        fit_tents(layers, vis, centre, 0.1)
    away = torch.tensor([[0.123, 0.877]], dtype=torch.float64)
    spread = vis.max_value - vis.min_value
    with pytest.raises(InfeasibleTentError, match="use delta <"):
        fit_tents(layers, vis, away, 10 * spread)
    with pytest.raises(FvlabError, match="unit cube"):
        fit_tents(layers, vis, torch.tensor([[1.5, 0.2]]), 0.1)
    with pytest.raises(FvlabError, match="alternating Linear and ReLU"):
        mlp_layers(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)))


def test_affine_f_and_other_outputs_are_supported():
    model = nn.Sequential(nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]]))
    demo = demonstrate_tents(model, seed=1, unit=1, n_starts=4, schedule=FAST, n_check=2000)
    assert all(demo.checks().values()), demo.checks()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), half=st.floats(0.0, 0.3), centre=st.floats(0.0, 1.0))
def test_interval_bounds_contain_every_value(seed, half, centre):
    layers = mlp_layers(random_relu_mlp(3, (6, 5), seed, input_gain=3.0))
    c = torch.full((1, 3), centre, dtype=torch.float64)
    lo, hi = interval_bounds(layers, c - half, c + half)
    inside = c + half * (2 * torch.rand(500, 3, generator=torch.Generator().manual_seed(seed)) - 1)
    values = as_scalar_fn(random_relu_mlp(3, (6, 5), seed, input_gain=3.0))(inside.double())
    assert (values >= lo - 1e-12).all() and (values <= hi + 1e-12).all()
