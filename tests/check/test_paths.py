"""Path similarity: the fmnist-cnn acceptance check, exactness against brute force, the CLI,
and InceptionV1 (random weights) on a tiny folder of PNGs."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from fvlab.check.paths import (
    STATISTICS,
    exemplar_path_similarity,
    path_similarity,
    render_class_fvs,
)
from fvlab.check.similarity import similarity_matrix
from fvlab.cli import main
from fvlab.data.dataset import InMemoryImages, select_per_class
from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.errors import FvlabError
from fvlab.models.hooks import capture
from fvlab.models.probe import forward_order


@pytest.fixture(scope="module")
def class_fvs(reference_model):
    """3 FVs per class of the 10 class logits in one optimisation (64 steps: classified)."""
    return render_class_fvs(
        reference_model, range(10), 3, logits_layer="fc", steps=64, seed=0, show_progress=False
    )


@pytest.fixture(scope="module")
def fmnist_curves(reference_model, class_fvs):
    natural = select_per_class(FashionMNIST("test"), range(10), 50)
    return path_similarity(
        reference_model,
        natural,
        *class_fvs,
        forward_order(reference_model),
        n_boot=400,
        seed=0,
        show_progress=False,
    )


def test_fvs_are_distinct_per_seed_and_classified(reference_model, class_fvs):
    images, labels = class_fvs
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]
    assert not torch.allclose(images[0], images[1])  # repeats of a unit start differently
    with torch.no_grad():
        predicted = reference_model(images).argmax(1)
    assert (predicted == labels).float().mean() >= 0.9


def test_class_fvs_in_shards_of_whole_classes_are_the_one_batch_fvs(reference_model, class_fvs):
    """A FV depends on (seed, logit, repeat, settings), not on its shard's other classes."""
    images, labels = class_fvs
    sharded, sharded_labels = render_class_fvs(
        reference_model, range(10), 3, logits_layer="fc", steps=64, seed=0, show_progress=False,
        shard_classes=4,
    )  # fmt: skip
    assert torch.equal(sharded_labels, labels)
    assert (sharded - images).abs().max() < 1e-5
    assert torch.equal((sharded * 255).round(), (images * 255).round())  # PNG levels


def test_natural_same_class_above_different_class_at_every_layer(fmnist_curves):
    values, ci = fmnist_curves.values, fmnist_curves.ci
    assert len(fmnist_curves.layers) == 19
    assert np.all(values["nat_same"] > values["nat_other"])
    # not only the point estimates: the 95 % bands are separated at every layer
    assert np.all(ci["nat_same"][:, 0] > ci["nat_other"][:, 1])
    # the FV curve and its normalised version are reported for every layer, with bands
    for name in STATISTICS:
        assert np.all(np.isfinite(values[name])), name
        assert np.all(ci[name][:, 0] <= values[name] + 1e-12), name
        assert np.all(values[name] <= ci[name][:, 1] + 1e-12), name
    expected = (values["fv_same"] - values["nat_other"]) / (
        values["nat_same"] - values["nat_other"]
    )
    np.testing.assert_allclose(values["normalised"], expected)
    # the logits of a class FV rank the classes like natural images of that class do
    assert values["normalised"][-1] > 0.5


def test_point_estimates_equal_brute_force_pairs(reference_model, class_fvs):
    """Streamed per-class sums (cached or two-pass) equal the mean over explicit pairs."""
    natural = select_per_class(FashionMNIST("test"), [1, 5, 7], 6)
    fv_images, fv_labels = class_fvs
    keep = torch.isin(fv_labels, torch.tensor([1, 5, 7]))
    fv_images, fv_labels = fv_images[keep], fv_labels[keep]
    layers = ["conv2", "relu3", "gap", "fc"]
    results = [
        path_similarity(
            reference_model,
            natural,
            fv_images,
            fv_labels,
            layers,
            metric=metric,
            n_boot=50,
            batch_size=5,
            cache_bytes=cache,
            show_progress=False,
        )
        for metric, cache in [("pearson", 2**30), ("pearson", 0), ("spearman", 0)]
    ]
    for a, b in zip(results[0].values.values(), results[1].values.values(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    labels = natural.labels.numpy()
    fv_lab = fv_labels.numpy()
    for result, metric in [(results[0], "pearson"), (results[2], "spearman")]:
        for li, layer in enumerate(layers):
            with torch.no_grad(), capture(reference_model, [layer]) as cap:
                reference_model(natural.images)
                nat = cap[layer].flatten(1).double()
                reference_model(fv_images)
                fv = cap[layer].flatten(1).double()
            nn_sim = similarity_matrix(nat, nat, metric).numpy()
            fv_sim = similarity_matrix(fv, nat, metric).numpy()
            same, other, fv_same = [], [], []
            for c in (1, 5, 7):
                rows = labels == c
                block = nn_sim[np.ix_(rows, rows)]
                same.append((block.sum() - np.trace(block)) / (rows.sum() * (rows.sum() - 1)))
                other.append(nn_sim[np.ix_(rows, ~rows)].mean())
                fv_same.append(fv_sim[np.ix_(fv_lab == c, rows)].mean())
            assert result.values["nat_same"][li] == pytest.approx(np.mean(same), abs=1e-6)
            assert result.values["nat_other"][li] == pytest.approx(np.mean(other), abs=1e-6)
            assert result.values["fv_same"][li] == pytest.approx(np.mean(fv_same), abs=1e-6)


def test_bootstrap_is_seeded_and_inputs_are_checked(reference_model, class_fvs):
    natural = select_per_class(FashionMNIST("test"), [0, 1], 5)
    fv_images, fv_labels = class_fvs[0][:6], class_fvs[1][:6]
    run = lambda seed: path_similarity(  # noqa: E731
        reference_model, natural, fv_images, fv_labels, ["fc"], n_boot=100, seed=seed,
        show_progress=False,
    )  # fmt: skip
    np.testing.assert_array_equal(run(3).ci["normalised"], run(3).ci["normalised"])
    assert not np.array_equal(run(3).ci["nat_same"], run(4).ci["nat_same"])
    with pytest.raises(FvlabError, match="same number"):
        path_similarity(reference_model, natural, fv_images[:5], fv_labels[:5], ["fc"])
    with pytest.raises(FvlabError, match="render the FVs at the natural images' size"):
        small = torch.nn.functional.interpolate(fv_images, size=20)
        path_similarity(reference_model, natural, small, fv_labels, ["fc"])
    with pytest.raises(FvlabError, match="valid: spearman"):
        path_similarity(reference_model, natural, fv_images, fv_labels, ["fc"], metric="x")


def test_exemplar_paths_place_a_same_class_image_near_the_exemplar_level(reference_model):
    # "units" = three classes; exemplars = 4 images of the class; the "FV" = a 5th image of
    # the same class, so it should look like an exemplar (≈ 1), not a random image (0)
    chosen = select_per_class(FashionMNIST("test"), [1, 5, 9], 5)
    groups = chosen.images.view(3, 5, 1, 28, 28)
    reference = select_per_class(FashionMNIST("test"), [0, 2, 3, 4, 6, 7, 8], 3).images
    paths = exemplar_path_similarity(
        reference_model, groups[:, 4], groups[:, :4], reference, ["relu2", "relu4", "fc"]
    )
    assert paths.normalised.shape == (3, 3)
    assert np.all(paths.fv_exemplar > paths.exemplar_reference)
    assert np.all(paths.exemplar_exemplar > paths.exemplar_reference)
    assert np.all(paths.normalised[-1] > 0.5)


def test_cli_writes_plot_csv_and_summary(tmp_path):
    out = tmp_path / "paths"
    main(
        ["check", "paths", "--classes", "0,3,7", "--images-per-class", "8", "--fv-seeds", "2",
         "--steps", "8", "--bootstrap", "50", "--metric", "cosine", "--out", str(out), "-q"]
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == [0, 3, 7] and summary["metric"] == "cosine"
    assert [row["layer"] for row in summary["layers"]][-1] == "fc"
    with open(out / "paths.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 19 and set(STATISTICS) <= set(rows[0])
    assert (out / "paths.png").stat().st_size > 10_000 and (out / "fvs.png").is_file()


def test_cli_errors_are_one_line(tmp_path, capsys):
    for args, message in [
        (["--metric", "kendall"], "valid: spearman, pearson, cosine"),
        (["--classes", "0,12"], "do not exist"),
        (["--reduce", "sum"], "reduce: must be one of"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["check", "paths", "--steps", "1", "--out", str(tmp_path), *args])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


@pytest.fixture
def tiny_folder(tmp_path):
    """Two classes × three 80-px RGB PNGs with different structure per class."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c, name in enumerate(["n01", "n02"]):
        (root / name).mkdir(parents=True)
        for i in range(3):
            base = np.zeros((80, 80, 3))
            if c == 0:
                base[:, :40] = 0.8
            else:
                base[::8] = 0.9
            pixels = np.clip(base + 0.2 * rng.random((80, 80, 3)), 0, 1)
            Image.fromarray((pixels * 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_inceptionv1_random_weights_on_an_image_folder(tiny_folder, tmp_path):
    out = tmp_path / "inception"
    main(
        ["check", "paths", "--model", "inceptionv1", "--data", str(tiny_folder), "--size", "64",
         "--classes", "0-1", "--logits", "5,9", "--images-per-class", "3", "--fv-seeds", "1",
         "--steps", "2", "--bootstrap", "20", "--reduce", "spatial_mean", "--out", str(out),
         "-q"]
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    layers = [row["layer"] for row in summary["layers"]]
    assert layers[0] == "conv2d0_pre_relu_conv"
    assert layers[-1] == "softmax2_pre_activation_matmul"
    assert "mixed4a" in layers and layers.index("mixed3b") < layers.index("mixed4a")
    assert len(layers) > 100
    assert summary["settings"]["logit_ids"] == [5, 9] and summary["settings"]["size"] == 64
    for row in summary["layers"]:
        assert row["nat_same"]["value"] is not None and row["fv_same"]["value"] is not None
    assert (out / "paths.png").is_file()


def test_in_memory_images_reject_bad_shapes():
    with pytest.raises(ValueError, match="expected images"):
        InMemoryImages(torch.zeros(3, 28, 28), torch.zeros(3))
