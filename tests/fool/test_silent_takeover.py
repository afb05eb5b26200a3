"""Silent units, issue 18: the feature-space takeover measure, the reach diagnostic, mixing by
angle and the 'rare' target direction."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fvlab.fool.silent import CHILD, silent
from fvlab.fool.silent.filters import angle_between, fooling_filters, rare_direction
from fvlab.fool.silent.reach import branch_reach
from fvlab.fool.silent.takeover import (
    gram_distance,
    measure_takeover,
    normalised_gram,
    unit_activation,
)
from fvlab.models.hooks import capture


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.floats(0.01, 100.0),
)
def test_gram_distance_is_a_texture_distance(seed, scale):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(3, 5, 4, 4, generator=g)  # non-negative features, as after a ReLU
    b = torch.rand(3, 5, 4, 4, generator=g)
    ga, gb = normalised_gram(a), normalised_gram(b)
    assert torch.allclose(gram_distance(ga, ga), torch.zeros(3), atol=1e-6)
    assert torch.allclose(gram_distance(ga, gb), gram_distance(gb, ga))
    d = gram_distance(ga, gb)
    assert (d >= -1e-6).all() and (d <= 1 + 1e-6).all()
    # a texture: invariant to the features' scale and to where in the image things are
    assert torch.allclose(gram_distance(normalised_gram(a * scale), gb), d, atol=1e-5)
    shuffled = a.flatten(2)[:, :, torch.randperm(16, generator=g)].view_as(a)
    assert torch.allclose(gram_distance(normalised_gram(shuffled), gb), d, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), angle=st.floats(1.0, 89.0))
def test_mixing_by_angle_gives_that_angle_for_every_unit(seed, angle):
    g = torch.Generator().manual_seed(seed)
    # filters of very different norms: λ alone would give each unit another angle
    w = torch.randn(6, 4, 3, 3, generator=g) * torch.logspace(-2, 1, 6).view(-1, 1, 1, 1)
    d = torch.randn(6, 4, 3, 3, generator=g)
    d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    w_new, _ = fooling_filters(w, d, weight_factor=100.0, angle=angle)
    assert torch.allclose(angle_between(w, w_new), torch.full((6,), angle), atol=1e-2)
    # the paper's λ = 3: α = atan(3 ‖w‖ / sin∠(d, w)) — it depends on the filter norm
    w_paper, _ = fooling_filters(w, d, lam=3.0)
    cos = (d * w).flatten(1).sum(1) / w.flatten(1).norm(dim=1)
    expected = torch.rad2deg(torch.atan(3 * w.flatten(1).norm(dim=1) / (1 - cos**2).sqrt()))
    assert torch.allclose(angle_between(w, w_paper), expected, atol=1e-2)


def test_rare_direction_lies_where_natural_patches_have_little_energy():
    g = torch.Generator().manual_seed(0)
    # natural patches: most energy in the first 3 of 8 coordinates
    scales = torch.tensor([3.0, 2.0, 1.5, 0.1, 0.05, 0.05, 0.02, 0.01], dtype=torch.float64)
    patches = torch.randn(20_000, 8, generator=g, dtype=torch.float64) * scales + 0.2
    mean = patches.mean(0)
    cov = patches.T @ patches / len(patches) - torch.outer(mean, mean)
    target = torch.ones(8, dtype=torch.float64)
    d, kept = rare_direction(target, mean, cov, rare_energy=0.01)
    moment = cov + torch.outer(mean, mean)
    natural_energy = float(d.double() @ moment @ d.double())
    assert 1 <= kept < 8
    assert natural_energy <= 0.01 * float(moment.trace())
    assert float(d.double() @ target) > 0  # it still responds to the target
    with pytest.raises(Exception, match="rare_energy"):
        rare_direction(target, mean, cov, rare_energy=1.5)


def test_takeover_rule_on_real_activations(reference_model, fmnist_test):
    """Fooled FVs that *are* the target count as taken over unless the original already drove
    the target unit; identical original and fooled FVs never do."""
    images, _ = fmnist_test
    target = images[:1]
    units = [0, 1, 2, 3]
    a_target = unit_activation(reference_model, "relu4", 0, target)[0]
    assert a_target > 0
    weak = images[10:14]
    q_weak = unit_activation(reference_model, "relu4", 0, weak) / a_target
    same = measure_takeover(reference_model, "conv3", units, weak, weak, target, "relu4:0")
    assert same.fraction == 0.0
    assert torch.allclose(same.gram_to_original, torch.zeros(4), atol=1e-6)
    took = measure_takeover(
        reference_model, "conv3", units, weak, target.expand(4, -1, -1, -1), target, "relu4:0"
    )
    assert torch.allclose(took.q_fooled, torch.ones(4), atol=1e-5)
    assert took.taken_over.tolist() == (q_weak <= 0.2).tolist()
    share = float((q_weak <= 0.2).float().mean())
    assert took.summary()["taken_over_fraction"] == pytest.approx(share)
    assert torch.allclose(took.gram_to_target, torch.zeros(4), atol=1e-6)
    # the target unit itself, when manipulated, is left out
    own = measure_takeover(reference_model, "conv3", [0, 5], weak[:2], weak[:2], target, "conv3:5")
    assert own.excluded == [5]


def test_reach_predicts_exactly_whether_the_branch_fires(reference_model, fmnist_test):
    """The diagnostic's to_threshold ≥ 1 on an image ⇔ the installed branch fires on it. With
    the bias from only 3 images, held-out images cross some thresholds but not others."""
    images, _ = fmnist_test
    built = silent(reference_model, "conv3", "builtin:ring", images[:3], units=list(range(24)),
                   margin=0.0, show_progress=False)  # fmt: skip
    probe = images[100:124]  # image i plays unit i's "original FV"
    reach = branch_reach(reference_model, built, probe)
    with torch.no_grad(), capture(built.model.module, [f"{CHILD}.relu"], detach=True) as cap:
        built.model(probe)
        branch = cap[f"{CHILD}.relu"]
    idx = torch.arange(24)
    fires = branch[idx, idx].flatten(1).amax(1) > 0
    assert 0 < int(fires.sum()) < 24
    assert fires.tolist() == reach.fires.tolist()
    assert torch.allclose(reach.reach, reach.to_threshold)  # margin 0: threshold = natural max
    assert torch.isfinite(reach.own).all()
    summary = reach.summary()
    assert summary["takeover_likely"] == (float(reach.to_threshold.median()) >= 1)
    assert 0 < summary["fires_on_original_fv_share"] < 1


def test_cli_suggest_layer_ranks_the_conv_layers(tmp_path, capsys):
    import json

    from fvlab.cli import main

    out = tmp_path / "suggest"
    main(["fool", "silent", "--suggest-layer", "--target", "builtin:ring", "--suggest-units", "2",
          "--natural-limit", "400", "--fv-steps", "12", "--out", str(out), "-q"])  # fmt: skip
    rows = json.loads((out / "suggest.json").read_text())["layers"]
    assert sorted(r["layer"] for r in rows) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    scores = [r["fv_over_threshold_median"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(r["attach"] == "relu" + r["layer"][-1] for r in rows)
    printed = capsys.readouterr().out
    assert f"suggested: {rows[0]['layer']}" in printed
