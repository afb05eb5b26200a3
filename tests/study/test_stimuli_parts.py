"""Stimulus building blocks on real Fashion-MNIST data: top-k, occlusion, blur, FV objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.errors import FvlabError
from fvlab.models.hooks import capture
from fvlab.optvis import objectives as obj
from fvlab.study.exemplars import top_exemplars
from fvlab.study.occlusion import (
    grid_positions,
    occluded_images,
    occluder_side,
    occlusion_sweep,
    quantise,
)
from fvlab.study.references import (
    blur_kernel,
    blurred_references,
    gaussian_blur,
    grouped_diversity_objective,
)
from fvlab.study.settings import StudySettings, parse_units
from fvlab.study.stimuli import random_sets


def _unit_activation(model, image: torch.Tensor, layer: str, unit: int) -> float:
    """Brute force: one image, one forward, spatial mean of one channel."""
    with torch.no_grad(), capture(model, [layer]) as cap:
        model(image[None])
        return float(cap[layer][0, unit].mean())


def _all_means(model, dataset, layers, batch_size):
    parts = {layer: [] for layer in layers}
    for images, _ in dataset.batches(batch_size):
        with torch.no_grad(), capture(model, layers) as cap:
            model(images)
            for layer in layers:
                parts[layer].append(cap[layer].mean((2, 3)))
    return {layer: torch.cat(p) for layer, p in parts.items()}


def test_top_exemplars_equal_brute_force_on_fashion_mnist(reference_model):
    layers, k = ["bn2", "bn4"], 50
    data = FashionMNIST("test")
    states = top_exemplars(
        reference_model, data, layers, k, batch_size=128, max_images=1500, show_progress=False
    )
    full = _all_means(reference_model, FashionMNIST("test", stop=1500), layers, 128)
    for layer in layers:
        acts = full[layer].double()  # (1500, C); the sweep keeps float64 copies of float32 values
        top, _ = torch.topk(acts.T, k, dim=1)
        state = states[layer]
        assert state.moments.count == states.n_images == 1500
        assert np.array_equal(state.top.values, top.numpy())
        # the kept indices point at images with exactly those activations (robust to ties)
        units = torch.arange(acts.shape[1])[:, None]
        assert torch.equal(acts[torch.from_numpy(state.top.indices), units], top)
        assert len(set(state.top.indices[0].tolist())) == k
        np.testing.assert_allclose(state.moments.mean, acts.mean(0).numpy(), atol=1e-6, rtol=0)
        np.testing.assert_allclose(
            state.moments.std, acts.std(0, unbiased=False).numpy(), atol=1e-6, rtol=0
        )


def test_topk_rejects_bad_k_and_short_streams(reference_model):
    with pytest.raises(FvlabError, match="top_k"):
        top_exemplars(reference_model, FashionMNIST("test", stop=100), ["bn3"], 0)
    with pytest.raises(FvlabError, match="needs at least 500 images"):
        top_exemplars(reference_model, FashionMNIST("test", stop=100), ["bn3"], 500)


def test_occluder_geometry_scales_with_the_image():
    assert occluder_side(28, 0.4) == 11
    assert occluder_side(224, 0.4) == 90  # P2's 90 px
    positions = grid_positions(28, 11, 2)
    assert len(positions) == 81 and positions[-1].tolist() == [16, 16]
    assert positions[1].tolist() == [0, 2]  # (y, x), row-major
    assert blur_kernel(224) == (21, pytest.approx(3.5))
    assert blur_kernel(28) == (3, pytest.approx(0.8))
    with pytest.raises(FvlabError, match="fraction"):
        occluder_side(28, 1.5)


def test_mean_colour_fill_per_channel_and_nothing_else_changes():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((2, 3, 10, 10), dtype=np.float32))
    variants = occluded_images(image, side=4, stride=3)  # positions 0, 3, 6 per axis
    positions = grid_positions(10, 4, 3)
    assert variants.shape == (2, 9, 3, 10, 10)
    for n in range(2):
        for p, (y, x) in enumerate(positions.tolist()):
            patch = image[n, :, y : y + 4, x : x + 4].numpy().astype(np.float64)
            expected = np.round(patch.mean((1, 2)) * 255) / 255  # per channel, 8-bit level
            inside = variants[n, p, :, y : y + 4, x : x + 4]
            assert np.allclose(inside.numpy(), expected[:, None, None], atol=1e-6)
            outside = torch.ones(10, 10, dtype=torch.bool)
            outside[y : y + 4, x : x + 4] = False
            assert torch.equal(variants[n, p][:, outside], image[n][:, outside])


def test_batched_occlusion_sweep_equals_a_per_position_loop(reference_model, fmnist_test):
    queries = fmnist_test[0][[0, 7]]
    layer_units = [("bn3", 5), ("bn2", 1)]
    side, stride = 11, 4
    sweep = occlusion_sweep(
        reference_model, queries, layer_units, side=side, stride=stride, batch_size=50
    )
    positions = grid_positions(28, side, stride)
    assert sweep.activations.shape == (2, len(positions))
    for n, (layer, unit) in enumerate(layer_units):
        looped = []
        for y, x in positions.tolist():
            image = queries[n].clone()
            patch = image[:, y : y + side, x : x + side]
            image[:, y : y + side, x : x + side] = quantise(patch.mean((1, 2)))[:, None, None]
            looped.append(_unit_activation(reference_model, image, layer, unit))
        looped = torch.tensor(looped)
        torch.testing.assert_close(sweep.activations[n], looped, atol=1e-5, rtol=0)
        assert looped[sweep.best[n]] == pytest.approx(float(looped.max()), abs=1e-5)
        assert looped[sweep.worst[n]] == pytest.approx(float(looped.min()), abs=1e-5)
        assert looped.max() - looped.min() > 1e-3  # occlusion matters for these units


def test_blur_keeps_the_best_window_sharp(reference_model, fmnist_test):
    images = fmnist_test[0][[1, 2]].view(2, 1, 1, 28, 28)
    layer_units = [("bn3", 2), ("bn4", 9)]
    window, stride, kernel, sigma = 11, 6, 3, 0.8
    blurred, corners = blurred_references(
        reference_model,
        images,
        layer_units,
        window=window,
        stride=stride,
        kernel=kernel,
        sigma=sigma,
        batch_size=64,
    )
    soft = gaussian_blur(images, kernel, sigma)
    positions = grid_positions(28, window, stride)
    for g, (layer, unit) in enumerate(layer_units):
        for m in range(images.shape[1]):
            y, x = corners[g, m].tolist()
            inside = torch.zeros(28, 28, dtype=torch.bool)
            inside[y : y + window, x : x + window] = True
            assert torch.equal(blurred[g, m][:, inside], images[g, m][:, inside])
            assert torch.equal(blurred[g, m][:, ~inside], soft[g, m][:, ~inside])
            assert not torch.equal(blurred[g, m][:, ~inside], images[g, m][:, ~inside])
            scores = []
            for py, px in positions.tolist():
                candidate = soft[g, m].clone()
                candidate[:, py : py + window, px : px + window] = images[
                    g, m, :, py : py + window, px : px + window
                ]
                scores.append(_unit_activation(reference_model, candidate, layer, unit))
            chosen = _unit_activation(reference_model, blurred[g, m], layer, unit)
            assert chosen == pytest.approx(max(scores), abs=1e-5)


def test_grouped_diversity_objective_matches_per_unit_objectives():
    gen = torch.Generator().manual_seed(0)
    acts = {
        "bn3": torch.randn(6, 8, 5, 5, generator=gen),
        "bn4": torch.randn(6, 4, 3, 3, generator=gen),
    }
    layer_units, lam, scales = [("bn3", 1), ("bn4", 2)], 2.5, [0.5, 2.0]
    got = grouped_diversity_objective(layer_units, 3, lam, scales)(acts)
    for g, (layer, unit) in enumerate(layer_units):
        sub = {layer: acts[layer][3 * g : 3 * g + 3]}
        expected = obj.channel(layer, unit)(sub) / scales[g] - lam * obj.gram_similarity(layer)(sub)
        torch.testing.assert_close(got[3 * g : 3 * g + 3], expected)


def test_parse_units():
    assert parse_units("bn2:0-1,bn3:5,7,bn4:2") == [
        ("bn2", 0),
        ("bn2", 1),
        ("bn3", 5),
        ("bn3", 7),
        ("bn4", 2),
    ]
    assert parse_units("0-1", ["bn3", "bn4"]) == [("bn3", 0), ("bn3", 1), ("bn4", 0), ("bn4", 1)]
    assert parse_units("layer4.1.conv2:3,3") == [("layer4.1.conv2", 3)]
    with pytest.raises(FvlabError, match="LAYER:UNITS"):
        parse_units("0-3")
    with pytest.raises(FvlabError, match="cannot read"):
        parse_units("bn3:a-b")


def test_image_sets_use_distinct_ranks_and_are_seeded():
    rng = np.random.default_rng(1)
    queries, refs = random_sets(10, 200, 10, rng)
    assert len(set(queries)) == 10 and all(0 <= q < 20 for q in queries)
    for b in range(9):
        column = [r[b] for r in refs]
        assert len(set(column)) == 10
        assert all(20 * (b + 1) <= r < 20 * (b + 2) for r in column)
    again = random_sets(10, 200, 10, np.random.default_rng(1))
    assert again == (queries, refs)
    units = (("bn3", 0),)
    with pytest.raises(FvlabError, match="sets_per_unit"):
        StudySettings(units, sets_per_unit=30)
    with pytest.raises(FvlabError, match="equal rank"):
        StudySettings(units, top_k=205)


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"units": ()}, "units"),
        ({"units": (("bn3", -1),)}, "units"),
        ({"split": "val"}, "split"),
        ({"bins": 1}, "bins"),
        ({"occluder_fraction": 1.0}, "occluder_fraction"),
        ({"stride": 0}, "stride"),
        ({"catch_units": -1}, "catch_units"),
        ({"max_images": 100}, "max_images"),
        ({"blur_kernel": 4}, "blur_kernel"),
        ({"blur_sigma": 0.0}, "blur_sigma"),
    ],
)
def test_study_settings_validation_names_the_parameter(changes, parameter):
    from fvlab.jobs import SettingsError

    settings = StudySettings((("bn3", 0),))
    with pytest.raises(SettingsError, match=f"^{parameter}: ") as error:
        settings.replace(**changes)
    assert error.value.parameter == parameter
    assert "--" not in str(error.value)  # names the parameter, not a command-line flag
