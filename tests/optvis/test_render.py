"""Render engine behaviour on the real embedded model and on non-RGB models."""

import json

import numpy as np
import pytest
import torch

import fvlab
from fvlab.errors import FvlabError, UnknownLayerError
from fvlab.optvis import objectives as obj
from fvlab.optvis.relu_redirect import redirected_relu


@pytest.fixture(scope="module")
def class_renders(reference_model):
    return fvlab.render(reference_model, "fc", units=range(10), show_progress=False)


def test_class_visualizations_are_classified_as_their_class(
    class_renders, reference_model, fmnist_test
):
    with torch.no_grad():
        logits = reference_model(class_renders.images)
        natural_max = torch.cat([reference_model(x) for x in fmnist_test[0].split(2000)]).amax(0)
    probs = logits.softmax(1)
    for c in range(10):
        assert probs[c, c] >= 0.99, (c, probs[c])
        assert logits[c, c] > natural_max[c], (c, logits[c, c], natural_max[c])
    assert torch.allclose(class_renders.objective, logits.diagonal(), atol=1e-4)


def test_same_seed_same_images_other_seed_other_images(reference_model):
    kwargs = dict(steps=24, show_progress=False, thresholds=[1, 8, 24])
    a = fvlab.render(reference_model, "bn3", [1, 2], seed=3, **kwargs)
    b = fvlab.render(reference_model, "bn3", [1, 2], seed=3, **kwargs)
    c = fvlab.render(reference_model, "bn3", [1, 2], seed=4, **kwargs)
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(a.snapshots[t], b.snapshots[t]) for t in (1, 8, 24))
    assert not torch.equal(a.images, c.images)
    assert sorted(a.snapshots) == [1, 8, 24] and torch.equal(a.snapshots[24], a.images)


def test_batched_units_reach_single_unit_objectives(reference_model):
    """Many units in one optimisation ≈ each unit alone (ratio per unit, mean ≥ 0.95)."""
    units = [0, 3, 7, 12, 21, 30, 41, 55]
    batched = fvlab.render(reference_model, "bn4", units, steps=256, show_progress=False)
    single = torch.stack(
        [
            fvlab.render(reference_model, "bn4", [u], steps=256, show_progress=False).objective[0]
            for u in units
        ]
    )
    ratios = batched.objective / single
    assert (single > 0).all()
    assert ratios.mean() >= 0.95, ratios
    assert ratios.min() >= 0.8, ratios


@pytest.mark.parametrize("channels", [1, 4])
def test_grayscale_and_four_channel_models_render(channels):
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 6, 3, padding=1),
        torch.nn.ReLU(),
    )
    model = fvlab.from_module(module, fvlab.InputSpec(channels=channels, size=20), "toy")
    start = fvlab.render(model, "2", [0, 5], steps=1, show_progress=False)
    result = fvlab.render(model, "2", [0, 5], steps=64, show_progress=False)
    assert result.images.shape == (2, channels, 20, 20)
    assert (result.objective > start.objective).all()


@pytest.mark.parametrize("param", ["pixel", "maco"])
def test_other_parameterizations_improve_the_objective(reference_model, param):
    start = fvlab.render(reference_model, "fc", [5, 9], steps=1, param=param, show_progress=False)
    end = fvlab.render(reference_model, "fc", [5, 9], steps=96, param=param, show_progress=False)
    assert (end.objective > start.objective + 1).all(), (start.objective, end.objective)


def test_lucid_preset_counts_updates_like_lucid(reference_model):
    result = fvlab.render(
        reference_model, "fc", [1], preset="lucid", thresholds=[4, 8], show_progress=False
    )
    assert result.steps_run == 9 and sorted(result.snapshots) == [4, 8]
    assert result.trace.shape == (9, 1)


def test_diversity_objective_in_a_batch(reference_model):
    base = obj.channel("bn3", 5)
    plain = fvlab.render(reference_model, objective=base, batch=4, steps=64, show_progress=False)
    diverse = fvlab.render(
        reference_model,
        objective=base + 50 * obj.diversity("bn3"),
        batch=4,
        steps=64,
        show_progress=False,
    )

    def mean_pairwise_corr(images):
        flat = images.flatten(1)
        flat = flat - flat.mean(1, keepdim=True)
        flat = flat / flat.norm(dim=1, keepdim=True)
        c = flat @ flat.T
        return (c.sum() - c.trace()) / 12

    assert mean_pairwise_corr(diverse.images) < mean_pairwise_corr(plain.images)


def test_redirected_relu_passes_gradient_to_dead_elements():
    x = torch.tensor([[-1.0, -2.0], [1.0, -1.0]], requires_grad=True)
    redirected_relu(x).backward(torch.tensor([[-1.0, 1.0], [-1.0, -1.0]]))
    # element 0 is all dead: gradient passes except where x<0 and grad>0; element 1 keeps its own
    assert x.grad.tolist() == [[-1.0, 0.0], [-1.0, 0.0]]


def test_relu_redirect_is_scoped(reference_model):
    result = fvlab.render(
        reference_model, "bn3", [0], steps=12, relu_redirect_steps=6, show_progress=False
    )
    assert result.steps_run == 12
    hooks = sum(len(m._forward_hooks) for m in reference_model.module.modules())
    assert hooks == 0


def test_relu_redirect_revives_units_dead_at_the_start(reference_model):
    # relu3 channels 1 and 29 are zero everywhere on the grey start image: without redirection
    # their objective has no gradient; redirection must also reach an objective that reads the
    # ReLU's own output (the redirecting hook runs before the capture hook)
    dead = [1, 29]
    plain = fvlab.render(reference_model, "relu3", dead, steps=64, show_progress=False)
    revived = fvlab.render(
        reference_model, "relu3", dead, steps=64, relu_redirect_steps=16, show_progress=False
    )
    assert plain.objective.max() == 0
    assert (revived.objective > 0.01).all(), revived.objective  # 0.29, 0.03 at 64 steps


def test_bad_requests_have_clear_errors(reference_model):
    with pytest.raises(UnknownLayerError, match="'bn3'"):
        fvlab.render(reference_model, "bn33", [0], steps=1, show_progress=False)
    with pytest.raises(FvlabError, match="has 64 units"):
        fvlab.render(reference_model, "bn3", [64], steps=1, show_progress=False)
    with pytest.raises(FvlabError, match="from_module"):
        fvlab.render(reference_model.module, "bn3", [0], steps=1, show_progress=False)
    with pytest.raises(FvlabError, match="fft, pixel, maco"):
        fvlab.render(reference_model, "bn3", [0], steps=1, param="cppn", show_progress=False)


def test_cli_render_writes_pngs_grid_and_summary(tmp_path):
    from fvlab.cli import main

    main(
        [
            "render",
            "--layer",
            "bn3",
            "--units",
            "0-2,5",
            "--steps",
            "8",
            "--thresholds",
            "2,8",
            "--batch-size",
            "3",
            "--out",
            str(tmp_path),
            "-q",
        ]
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [u["unit"] for u in summary["units"]] == [0, 1, 2, 5]
    assert all(np.isfinite(u["objective"]) for u in summary["units"])
    for unit in (0, 1, 2, 5):
        assert (tmp_path / f"unit_{unit:04d}.png").is_file()
        assert (tmp_path / f"unit_{unit:04d}_step0002.png").is_file()
    assert (tmp_path / "grid.png").is_file()
