"""Render engine behaviour on the real embedded model and on non-RGB models."""

import json

import numpy as np
import pytest
import torch

import fvlab
from fvlab.errors import FvlabError, UnknownLayerError
from fvlab.optvis import LUCID, RenderSettings
from fvlab.optvis import objectives as obj
from fvlab.optvis.draws import Draws
from fvlab.optvis.param import PixelImage
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


# -- settings, presets, parameterization modules -------------------------------------------------
def test_render_settings_validate_once_and_name_the_parameter():
    from fvlab.jobs import SettingsError

    with pytest.raises(SettingsError, match="^param: must be one of fft, pixel, maco"):
        RenderSettings(param="cppn")
    with pytest.raises(SettingsError, match="^thresholds: must be update counts >= 1"):
        RenderSettings(thresholds=(0, 4))
    with pytest.raises(SettingsError, match="^thresholds: threshold 24 exceeds steps=20"):
        RenderSettings(steps=20, thresholds=(24,))
    with pytest.raises(SettingsError, match="^transforms: "):
        RenderSettings(transforms="fancy")
    with pytest.raises(SettingsError, match="^preset: "):
        RenderSettings.from_preset("lucent")
    assert RenderSettings(thresholds=[8, 1, 8]).thresholds == (1, 8)
    assert RenderSettings().schedule() == (512, ())
    assert RenderSettings(thresholds=(4, 8)).schedule() == (8, (4, 8))
    assert LUCID.schedule() == (513, (512,))
    assert LUCID.replace(thresholds=(4, 8)).schedule() == (9, (4, 8))
    assert LUCID.transforms == "lucid" and LUCID.preset == "lucid"
    # the CLI's defaults keep the preset's values; other values replace them
    assert RenderSettings.from_preset("lucid", transforms="standard", steps=None) == LUCID
    assert RenderSettings.from_preset("lucid", transforms="none").transforms == "none"


def test_settings_object_equals_keyword_overrides_and_the_lucid_preset(reference_model):
    quick = dict(show_progress=False)
    by_keyword = fvlab.render(reference_model, "fc", [1], preset="lucid", thresholds=[4], **quick)
    by_settings = fvlab.render(
        reference_model, "fc", [1], settings=LUCID.replace(thresholds=(4,)), **quick
    )
    assert torch.equal(by_keyword.images, by_settings.images)
    assert by_settings.steps_run == 5 and by_settings.settings["preset"] == "lucid"
    assert by_settings.settings["transforms"] == "lucid"
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['stepz'\\]"):
        fvlab.render(reference_model, "fc", [1], stepz=3, **quick)


def test_render_accepts_a_parameterization_module(reference_model):
    module = PixelImage(2, 1, 28, 0.01, Draws(0, [5, 9]))  # the start render keys by unit
    by_module = fvlab.render(
        reference_model, "fc", [5, 9], param=module, steps=48, show_progress=False
    )
    by_name = fvlab.render(
        reference_model, "fc", [5, 9], param="pixel", steps=48, show_progress=False
    )
    assert torch.equal(by_module.images, by_name.images)  # same start, same updates
    assert by_module.settings["param"] == "custom" and by_name.settings["param"] == "pixel"

    class Blobs(torch.nn.Module):
        """A user parameterization: a 7×7 grid of free values, upsampled and squashed."""

        def __init__(self):
            super().__init__()
            self.coarse = torch.nn.Parameter(torch.zeros(2, 1, 7, 7))

        def forward(self):
            up = torch.nn.functional.interpolate(self.coarse, size=28, mode="bilinear")
            return torch.sigmoid(up)

    start = fvlab.render(reference_model, "fc", [5, 9], param=Blobs(), steps=1, show_progress=False)
    end = fvlab.render(reference_model, "fc", [5, 9], param=Blobs(), steps=64, show_progress=False)
    assert end.images.shape == (2, 1, 28, 28)
    assert (end.objective > start.objective + 1).all(), (start.objective, end.objective)
    with pytest.raises(FvlabError, match=r"param: the module returns images of shape \(2, 1"):
        fvlab.render(reference_model, "fc", [5, 9, 1], param=Blobs(), steps=1, show_progress=False)


# -- the input image as an activation --------------------------------------------------------
def test_input_objectives_see_the_image_and_a_tv_penalty_smooths(reference_model):
    tv = obj.total_variation()
    # transforms "none": "input" is exactly the parameterization's image
    start = PixelImage(1, 1, 28, 0.01, Draws(0, [0]))()  # an objective's element 0, seed 0
    alone = fvlab.render(
        reference_model,
        objective=obj.l1(),
        param="pixel",
        transforms="none",
        steps=2,
        show_progress=False,
    )
    assert torch.isclose(alone.trace[0, 0], start.sum())
    assert torch.allclose(alone.objective, obj.l1()({"input": alone.images}))
    base = obj.channel("bn3", 5)
    kwargs = dict(batch=2, steps=64, show_progress=False)
    plain = fvlab.render(reference_model, objective=base, **kwargs)
    smooth = fvlab.render(reference_model, objective=base - 0.01 * tv, **kwargs)
    plain_tv, smooth_tv = tv({"input": plain.images}), tv({"input": smooth.images})
    assert (smooth_tv < 0.5 * plain_tv).all(), (plain_tv, smooth_tv)  # 17 vs 220 at 28 px
    expected = base({"bn3": _bn3(reference_model, smooth.images)}) - 0.01 * smooth_tv
    assert torch.allclose(smooth.objective, expected, atol=1e-4)


def _bn3(model, images):
    with torch.no_grad(), fvlab.capture(model.module, ["bn3"]) as cap:
        model(images)
        return cap["bn3"]


# -- ReLU redirection by step ------------------------------------------------------------------
def test_relu_redirect_switches_off_after_n_steps_as_before(reference_model):
    kwargs = dict(steps=24, seed=2, thresholds=[8, 24], show_progress=False)
    switched = fvlab.render(reference_model, "relu3", [1, 29, 5], relu_redirect_steps=8, **kwargs)
    always = fvlab.render(reference_model, "relu3", [1, 29, 5], relu_redirect_steps=24, **kwargs)
    never = fvlab.render(reference_model, "relu3", [1, 29, 5], **kwargs)
    # on for updates 1-8 (identical to always-on), off from update 9 on
    assert torch.equal(switched.snapshots[8], always.snapshots[8])
    assert not torch.equal(switched.snapshots[8], never.snapshots[8])
    assert not torch.equal(switched.images, always.images)
    # pinned values (same seed and steps) since the draws became keyed by unit; the earlier
    # close-and-re-enter implementation matched the stateful-generator values of its day
    expected_objective = [0.18591329, 0.00056540, 0.03442776]
    expected_sums = [429.97632, 386.48129, 375.29977]
    assert torch.allclose(switched.objective, torch.tensor(expected_objective), atol=1e-4)
    sums = switched.images.sum((1, 2, 3))
    assert torch.allclose(sums, torch.tensor(expected_sums), rtol=1e-4)
    assert abs(float(switched.snapshots[8].sum()) - 1183.757) < 0.1


# -- the render job --------------------------------------------------------------------------
def test_run_render_writes_pngs_grid_and_summary(reference_model, tmp_path):
    from fvlab.jobs import SettingsError
    from fvlab.optvis import RenderJobSettings, run_render

    how = RenderSettings(steps=4, thresholds=(2, 4), seed=5)
    settings = RenderJobSettings(layer="fc", units=(0, 3, 9), batch_size=2, render=how)
    result = run_render(reference_model, settings, tmp_path, show_progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary()))
    assert list(summary) == ["model", "layer", "units", "settings"]
    assert summary["model"] == "fmnist-cnn" and summary["layer"] == "fc"
    assert [u["unit"] for u in summary["units"]] == [0, 3, 9]
    assert [u["file"] for u in summary["units"]] == [
        "unit_0000.png",
        "unit_0003.png",
        "unit_0009.png",
    ]
    assert summary["settings"]["seed"] == 5 and summary["settings"]["steps"] == 4
    for unit in (0, 3, 9):
        for name in (
            f"unit_{unit:04d}.png",
            f"unit_{unit:04d}_step0002.png",
            f"unit_{unit:04d}_step0004.png",
        ):
            assert (tmp_path / name).is_file()
    assert (tmp_path / "grid.png").is_file()
    assert result.labels[1] == f"3 {reference_model.class_names[3]}"  # fc is the logits layer
    # the second chunk ([9]) uses the job's seed: unit 9's image is the one it gets alone
    alone = fvlab.render(reference_model, "fc", [9], settings=how, show_progress=False)
    assert torch.equal(result.images[2], alone.images[0])
    assert torch.equal(result.snapshots[2][2], alone.snapshots[2][0])
    assert float(result.objective[2]) == summary["units"][2]["objective"]
    with pytest.raises(SettingsError, match="^units: is empty"):
        RenderJobSettings(layer="fc", units=())
    with pytest.raises(SettingsError, match="^batch_size: "):
        RenderJobSettings(layer="fc", batch_size=0)
    with pytest.raises(FvlabError, match="has 10 units"):
        run_render(reference_model, RenderJobSettings(layer="fc", units=(10,)), show_progress=False)
