"""Naturally silent units: a planted dead unit is found; the CLI reports per-layer counts."""

import copy
import json

import torch

from fvlab.check.natural_silence import natural_silence, relu_layers, render_silent
from fvlab.cli import main
from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.models.hooks import capture
from fvlab.models.zoo import LoadedModel


def _planted(reference_model, unit: int) -> LoadedModel:
    """fmnist-cnn with relu3 unit ``unit`` switched off on natural data (bn3 bias −1000)."""
    module = copy.deepcopy(reference_model.module)
    with torch.no_grad():
        module.bn3.bias[unit] = -1000.0
    return LoadedModel(
        "planted", module, reference_model.spec, reference_model.class_names, "embedded"
    )


def test_planted_silent_unit_is_found_and_rendered(reference_model, fmnist_test):
    data = FashionMNIST("test", stop=2000)
    before = natural_silence(reference_model, ["relu3", "relu4"], data, show_progress=False)
    planted = _planted(reference_model, 7)
    after = natural_silence(planted, ["relu3", "relu4"], data, show_progress=False)
    assert after["relu3"].silent == sorted(set(before["relu3"].silent) | {7})
    assert float(after["relu3"].natural_max[7]) == 0.0
    assert float(after["relu3"].active_fraction[7]) == 0.0
    assert after["relu3"].n_images == 2000 and after["relu3"].n_units == 64
    # brute force: spatial max per image and unit, counted against the threshold
    images = fmnist_test[0][:2000]
    with torch.no_grad(), capture(planted.module, ["relu4"]) as cap:
        planted(images)
        spatial_max = cap["relu4"].amax(dim=(2, 3))
    torch.testing.assert_close(after["relu4"].natural_max, spatial_max.amax(0))
    torch.testing.assert_close(after["relu4"].active_fraction, (spatial_max > 0).float().mean(0))
    render_silent(planted, after, steps=16, show_progress=False)
    entry = after["relu3"]
    assert 7 in entry.rendered and entry.fv_images.shape[1:] == (1, 28, 28)
    assert torch.isfinite(entry.fv_max).all() and (entry.fv_max >= entry.fv_mean).all()


def test_almost_never_uses_the_fraction_and_threshold(reference_model):
    data = FashionMNIST("test", stop=1000)
    threshold = 3.0
    report = natural_silence(
        reference_model,
        ["relu5"],
        data,
        threshold=threshold,
        max_fraction=0.01,
        show_progress=False,
    )["relu5"]
    expected = (report.active_fraction <= 0.01).nonzero().flatten().tolist()
    assert report.silent == expected
    never = natural_silence(
        reference_model, ["relu5"], data, threshold=threshold, show_progress=False
    )["relu5"]
    assert set(never.silent) <= set(report.silent)
    assert all(float(never.natural_max[u]) <= threshold for u in never.silent)


def test_relu_layers_of_the_reference_model(reference_model):
    assert relu_layers(reference_model) == ["relu1", "relu2", "relu3", "relu4", "relu5"]


def test_cli_reports_per_layer_counts_on_the_test_set(tmp_path):
    out = tmp_path / "check"
    main(
        [
            "check",
            "silent",
            "--model",
            "fmnist-cnn",
            "--threshold",
            "1.0",
            "--max-fraction",
            "0.001",
            "--steps",
            "16",
            "--max-render",
            "4",
            "--batch-size",
            "1000",
            "--out",
            str(out),
            "-q",
        ]
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 10000 and summary["split"] == "test"
    assert list(summary["counts"]) == ["relu1", "relu2", "relu3", "relu4", "relu5"]
    for name, layer in summary["layers"].items():
        assert layer["n_silent"] == len(layer["silent_units"]) == summary["counts"][name]
        for row in layer["silent_units"]:
            assert row["active_fraction"] <= 0.001
        if layer["n_silent"]:
            assert (out / layer["fv_png"]).is_file()
            assert "fv_max" in layer["silent_units"][0]
    print(summary["counts"])
