"""The detector pipeline for any model: a dry run on random-weight InceptionV1 at 224 px on a tiny
Fashion-MNIST image folder (train-detector → resume → fool circuit on lucid's 1008 logits), and
fmnist-cnn's plan unchanged (compared with the committed detector's record)."""

from __future__ import annotations

import json

import pytest
import torch

import fvlab
from fvlab.cli import main
from fvlab.errors import FvlabError
from fvlab.fool.circuit import Detector, DetectorSettings, default_detector_path, load_detector
from fvlab.fool.circuit.evaluate import installed_circuit
from fvlab.fool.circuit.logits import LUCID_IMAGENET_LOGITS, class_units, label_logits
from fvlab.fool.circuit.natural import natural_split
from fvlab.fool.circuit.train_detector import DENSE_STEPS, detector_plan

LOGITS = "softmax2_pre_activation_matmul"
#: a dry run: 1 training + 1 held-out unit per layer (1 held-out class), 1 setting per list,
#: snapshots 1–4, 4 training targets, 20 detector steps of 4 + 4 images
DRY_RUN = [
    "--units-per-layer", "1", "--heldout-per-layer", "1", "--heldout-fraction", "0.001",
    "--max-step", "4", "--targets", "4", "--heldout-natural-targets", "1", "--max-settings", "1",
    "--batch-size", "4", "--detector-steps", "20", "--detector-batch-size", "4", "-q",
]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from fvlab.data.tiny_folder import write_fmnist_folder

    return write_fmnist_folder(tmp_path_factory.mktemp("tiny") / "images", per_class=2)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """One random initialisation of InceptionV1, saved, so every command sees the same model
    (a resumed job checks the model's parameter hash)."""
    path = tmp_path_factory.mktemp("weights") / "inceptionv1-random.pt"
    torch.save(fvlab.load("inceptionv1").module.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def inception(weights):
    return fvlab.load("inceptionv1", weights)


@pytest.fixture(scope="module")
def trained(folder, weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("detector") / "iv1-detector.pt"
    main(["fool", "train-detector", "--model", "inceptionv1", "--weights", str(weights),
          "--data", str(folder), "--out", str(out), *DRY_RUN])  # fmt: skip
    return out, json.loads(out.with_suffix(".json").read_text())


def test_tiny_folder_layout(folder):
    from fvlab.data.folders import ImageFolder

    images = ImageFolder(folder, size=224, channels=3)
    assert len(images) == 20 and len(images.class_names) == 10
    x, y = next(images.batches(20))
    assert x.shape == (20, 3, 224, 224) and y.tolist() == [c for c in range(10) for _ in (0, 1)]
    assert torch.equal(x[:, 0], x[:, 2]) and 0.5 < float(x.max()) <= 1.0  # grey, not blank


def test_detector_is_fully_convolutional():
    detector = Detector(3, (8, 8, 8, 8, 8))
    for size in (224, 97, 32):
        assert detector(torch.rand(2, 3, size, size)).shape == (2,)


@pytest.mark.slow
def test_inceptionv1_record(trained, inception):
    out, record = trained
    assert record["architecture"]["channels"] == 3
    assert record["input"] == {"channels": 3, "size": 224}
    assert record["fool_layer"] == LOGITS and LOGITS in record["layers"]
    assert len(record["layers"]) == 5  # 4 probed layers + the logits
    held = [u.rsplit(":", 1) for u in record["heldout_units"]]
    assert {layer for layer, _ in held} == set(record["layers"])  # one per layer
    held_logits = [int(u) for layer, u in held if layer == LOGITS]
    assert held_logits and all(1 <= u <= 1000 for u in held_logits)  # an ImageNet class
    assert record["snapshot_steps"] == [1, 2, 3, 4]
    # (5 training units + 4 template targets) × 1 setting × 4 snapshots
    assert record["n_train_visualizations"] == (5 + 4) * 4
    nat = record["natural"]
    assert (nat["n_train"], nat["n_targets"], nat["n_test"]) == (16, 2, 2)
    ev = record["evaluation"]
    for group in ("heldout_units", "heldout_units_and_settings", "heldout_targets"):
        assert sorted(int(s) for s in ev[group]["accuracy_by_step"]) == [1, 2, 3, 4]
        assert ev[group]["n"] == 5 * 4
    assert ev["natural_test"]["n"] == 2
    shards = out.with_name(out.stem + "-render") / "shards"
    index = json.loads((shards / "index.json").read_text())
    # 5 groups × 1 setting; 5 units in chunks of 4 → 2 shards for the unit groups
    assert len(index["shards"]) == 2 + 1 + 2 + 2 + 2
    detector = load_detector(out)
    assert detector(torch.rand(1, 3, 224, 224)).shape == (1,)


@pytest.mark.slow
def test_resume_reuses_every_shard(trained, folder, weights):
    out, _ = trained
    shards = out.with_name(out.stem + "-render") / "shards"
    before = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.pt")}
    first = torch.load(out, weights_only=True)
    again = out.with_name("again.pt")
    render_dir = str(shards.parent)
    main(["fool", "train-detector", "--model", "inceptionv1", "--weights", str(weights),
          "--data", str(folder), "--out", str(again), "--render-dir", render_dir, "--resume",
          *DRY_RUN])  # fmt: skip
    assert {p.name: p.stat().st_mtime_ns for p in shards.glob("*.pt")} == before
    for name, tensor in torch.load(again, weights_only=True).items():
        assert torch.equal(tensor, first[name]), name


@pytest.mark.slow
def test_circuit_permutes_the_1000_imagenet_logits(trained, folder, weights, inception, tmp_path):
    detector_file, _ = trained
    out = tmp_path / "circuit"
    main(["fool", "circuit", "--model", "inceptionv1", "--weights", str(weights),
          "--detector", str(detector_file),
          "--data", str(folder), "--layer", LOGITS, "--render-steps", "2", "--render-size", "32",
          "--relu-redirect", "0", "--no-robustness", "--out", str(out), "-q"])  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    nat = summary["natural"]
    assert nat["n_images"] == 2
    for key in ("top1_original", "top1_fooled", "top5_original", "top5_fooled"):
        assert 0.0 <= nat[key] <= 1.0
    assert nat["top5_original"] >= nat["top1_original"]
    assert nat["fraction_identical"] >= 1.0 - nat["routed_as_visualization"] / 2
    assert summary["units"] == list(LUCID_IMAGENET_LOGITS)
    assert summary["mapping"] == [*range(2, 1001), 1]
    assert len(summary["fooling"]["units"]) == 1000
    # with the gate forced open every ImageNet logit is rewritten, the 8 others never are
    fooled = fvlab.load(str(out / "model"))
    circuit = installed_circuit(fooled)
    with torch.no_grad():
        circuit.detector.head.bias.fill_(1e4)
        x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        a, b = inception(x), fooled(x)
    assert bool(circuit.last_decision.all())
    others = [0, *range(1001, 1008)]
    assert torch.equal(a[:, others], b[:, others])
    assert bool((a[:, 1:1001] != b[:, 1:1001]).all())


def test_lucid_logit_convention(inception, reference_model):
    assert class_units(inception, LOGITS) == list(range(1, 1001))
    assert label_logits(inception)[:2] == [1, 2] and len(label_logits(inception)) == 1000
    assert class_units(reference_model, "fc") == list(range(10))
    assert label_logits(reference_model) == list(range(10))


def test_inceptionv1_default_plan_holds_out_100_classes(inception):
    plan = detector_plan(inception, DetectorSettings())
    held = [u for layer, u in plan.heldout_units if layer == LOGITS]
    assert len(held) == 100 and all(1 <= u <= 1000 for u in held)
    trained_logits = {u for layer, u in plan.train_units if layer == LOGITS}
    assert len(trained_logits) == 12 and not trained_logits & set(held)
    assert list(plan.layers)[-1] == LOGITS and len(plan.layers) == 5
    assert plan.steps == DENSE_STEPS


def test_fmnist_cnn_plan_unchanged(reference_model):
    """The committed detector's plan: units, settings, steps, targets (from its record)."""
    record = json.loads(default_detector_path("fmnist-cnn").with_suffix(".json").read_text())
    plan = detector_plan(reference_model, DetectorSettings()).to_dict()
    assert plan["heldout_units"] == record["heldout_units"]
    assert len(plan["train_units"]) == record["train_units"] == 610
    assert plan["steps"] == record["snapshot_steps"]
    for key in ("train_settings", "heldout_settings", "target_settings"):
        assert plan[key] == record[key], key
    assert plan["targets"] == [48, 48]
    assert plan["heldout_targets"] == [["smiley", "cross", "ring", "checker"], 12]


def test_fmnist_cnn_natural_split_unchanged(reference_model, fmnist_test):
    from fvlab.data.fashion_mnist import FashionMNIST

    record = json.loads(default_detector_path("fmnist-cnn").with_suffix(".json").read_text())
    split = natural_split(reference_model, None, reserve=48)
    assert len(split.train) == 60000 - 48 == record["n_train_natural"]
    train_tail, _ = FashionMNIST("train", start=60000 - 48).load()
    assert torch.equal(split.targets, train_tail)
    assert torch.equal(split.test, fmnist_test[0]) and torch.equal(
        split.test_labels, fmnist_test[1]
    )


def test_fmnist_cnn_with_layers_holds_out_a_class(reference_model):
    plan = detector_plan(reference_model, DetectorSettings(layers=("relu3",)))
    assert list(plan.layers) == ["relu3", "fc"]
    assert [u for layer, u in plan.heldout_units if layer == "fc"] == [5]  # 10 % of 10 classes


def test_model_without_folder_is_one_clear_error(inception):
    with pytest.raises(FvlabError, match="image folder"):
        natural_split(inception, None)


@pytest.mark.slow
def test_ray_engine_trains_the_same_detector(reference_model, tmp_path):
    """Trajectory shards as Ray tasks (a real local Ray, 2 CPUs): same shards, same weights."""
    import ray

    from fvlab.engine.ray_engine import RayEngine
    from fvlab.fool.circuit import run_train_detector

    settings = DetectorSettings(
        layers=("relu3",), units_per_layer=2, heldout_per_layer=1, max_step=2, targets=4,
        heldout_natural_targets=2, max_settings=1, steps=5, batch_size=8, render_batch=2,
        natural_limit=500,
    )  # fmt: skip
    out = tmp_path / "local.pt"
    local = run_train_detector(reference_model, settings, out, show_progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        remote = run_train_detector(
            reference_model, settings, tmp_path / "ray.pt", show_progress=False, engine=RayEngine()
        )
    finally:
        ray.shutdown()
    for name, tensor in local.detector.state_dict().items():
        assert torch.equal(tensor, remote.detector.state_dict()[name]), name
    shards = sorted((tmp_path / "local-render" / "shards").glob("*.pt"))
    # chunks of 2: 4 training units, 4 targets, 2 held-out units (× 2 groups), 6 held-out targets
    assert len(shards) == 2 + 2 + 1 + 1 + 3
    for path in shards:
        a = torch.load(path, weights_only=True)
        b = torch.load(tmp_path / "ray-render" / "shards" / path.name, weights_only=True)
        assert torch.equal(a["images"], b["images"]) and a["unit"] == b["unit"], path.name


def test_training_sets_on_disk_give_the_detector_trained_in_memory(reference_model, tmp_path):
    """With an output file, the natural training images and the training trajectories go to
    image banks in the render folder and are read a batch at a time: the same detector as with
    everything in memory (no output, no render folder)."""
    from fvlab.data.image_bank import ImageBank
    from fvlab.fool.circuit import run_train_detector
    from fvlab.fool.circuit.train_detector import NATURAL_BANK, TRAIN_BANK, build_detector

    settings = DetectorSettings(
        layers=("relu3",), units_per_layer=2, heldout_per_layer=1, max_step=2, targets=4,
        heldout_natural_targets=2, max_settings=1, steps=5, batch_size=8, render_batch=3,
        natural_limit=300,
    )  # fmt: skip
    in_memory = build_detector(reference_model, settings, show_progress=False)
    on_disk = run_train_detector(reference_model, settings, tmp_path / "d.pt", show_progress=False)
    for name, tensor in in_memory.detector.state_dict().items():
        assert torch.equal(tensor, on_disk.detector.state_dict()[name]), name
    assert in_memory.record["evaluation"] == on_disk.record["evaluation"]
    folder = tmp_path / "d-render"
    trajectories, natural = ImageBank(folder / TRAIN_BANK), ImageBank(folder / NATURAL_BANK)
    assert len(trajectories) == on_disk.record["n_train_visualizations"] == (4 + 4) * 2
    assert len(natural) == on_disk.record["n_train_natural"] == 300
    assert natural.shape == trajectories.shape == (1, 28, 28)


def test_a_trajectory_does_not_depend_on_its_chunk(reference_model):
    """Element j of a chunk starting at `first` draws with key first + j, so rendering a
    group's units in chunks gives each unit the trajectory it gets in one optimisation."""
    from fvlab.fool.circuit.train_detector import trajectory_shard
    from fvlab.fool.circuit.trajectories import TRAIN_SETTINGS

    pairs = (("relu3", 0), ("relu3", 5), ("relu4", 2), ("relu4", 9))
    setting, steps = TRAIN_SETTINGS[0], (1, 3, 6)

    def run(chunk, first):
        return trajectory_shard(reference_model, ("units", chunk, setting, None, steps, 11,
                                                  first, None, False))  # fmt: skip

    whole = run(pairs, 0)["images"].view(len(steps), len(pairs), 1, 28, 28)
    parts = [run(pairs[:2], 0)["images"], run(pairs[2:], 2)["images"]]
    chunked = torch.cat([p.view(len(steps), 2, 1, 28, 28) for p in parts], dim=1)
    assert (whole - chunked).abs().max() < 1e-4
    shifted = run(pairs[2:], 0)["images"].view(len(steps), 2, 1, 28, 28)
    assert (whole[:, 2:] - shifted).abs().max() > 1e-2  # the key, not the chunk, decides
