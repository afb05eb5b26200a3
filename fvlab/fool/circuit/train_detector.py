"""The ``fvlab fool train-detector`` job: trajectories → training → evaluation → saved detector.

``fvlab fool train-detector --model fmnist-cnn --out fvlab/fool/weights/fmnist-cnn-detector.pt``
renders the trajectories (every unit of fc, bn1…bn5 and relu1…relu5 but 40 held-out ones (the
same 20 channels before and after their ReLU) × training settings,
and template units drawing random shapes or natural images as in the circuit's target mode;
held-out units × all settings; held-out targets), trains the detector on natural *training*
images vs training trajectories, and records its accuracy on natural *test* images and on
held-out trajectories per snapshot step, both as rendered and as the model sees them (after the
render transforms).

Job: ``run_train_detector(model, DetectorSettings(...), out)`` with ``out`` the detector's
weights file (``.pt``; the record goes next to it as ``.json``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fvlab.fool.circuit.detector import (
    Detector,
    DetectorTraining,
    save_detector,
    train_detector,
    training_record,
)
from fvlab.fool.circuit.trajectories import (
    DENSE_STEPS,
    HELDOUT_SETTINGS,
    TRAIN_SETTINGS,
    RenderSetting,
    Trajectories,
    concat,
    describe,
    render_template_trajectories,
    render_trajectories,
    split_units,
)
from fvlab.fool.targets import BUILTINS, builtin_target, random_shapes
from fvlab.jobs import OutDir, finish
from fvlab.optvis.transforms import make_transforms

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

#: units whose visualizations train the detector, per fmnist-cnn layer (channel counts): the
#: logits, and every channel before (BatchNorm) and after its ReLU — a ReLU unit's visualization
#: may leave regions black where the BatchNorm unit's may not, and circuits gate either
FMNIST_LAYERS = {
    "fc": 10,
    **{f"{kind}{i}": n for i, n in enumerate((32, 32, 64, 64, 128), 1) for kind in ("bn", "relu")},
}
#: target-mode trajectories: random shapes and natural training images as targets (training);
#: the built-in targets and natural *test* images (held out)
N_TRAIN_TARGETS = 96
N_HELDOUT_NATURAL_TARGETS = 12
HELDOUT_GROUPS = ("heldout_units", "heldout_units_and_settings", "heldout_targets")
TARGET_SETTINGS = (
    RenderSetting("fft", "standard", 0.05),
    RenderSetting("fft", "none", 0.05),
    RenderSetting("pixel", "standard", 0.05),
    RenderSetting("fft", "standard", 0.02),
)


def _accuracy_by_step(
    detector: Detector, traj: Trajectories, transformed: bool, seed: int
) -> dict[int, float]:
    images = traj.images
    if transformed:
        images = make_transforms("standard", images.shape[-1])(
            images, torch.Generator().manual_seed(seed)
        )
    hits = detector.is_visualization(images)
    return {
        int(step): float(hits[traj.step == step].float().mean())
        for step in traj.step.unique().tolist()
    }


def evaluate_detector(
    detector: Detector, natural_test: torch.Tensor, groups: dict[str, Trajectories], seed: int = 0
) -> dict:
    """Accuracy on natural test images and, per group of trajectories, per snapshot step (as
    rendered, and as the model sees them after the standard render transforms)."""
    natural_hits = detector.is_visualization(natural_test)
    transformed = make_transforms("standard", natural_test.shape[-1])(
        natural_test, torch.Generator().manual_seed(seed)
    )
    report = {
        "natural_test": {
            "n": len(natural_test),
            "accuracy": float((~natural_hits).float().mean()),
            "accuracy_transformed": float((~detector.is_visualization(transformed)).float().mean()),
        }
    }
    for name, traj in groups.items():
        raw = _accuracy_by_step(detector, traj, False, seed)
        seen = _accuracy_by_step(detector, traj, True, seed)
        report[name] = {
            "n": len(traj.images),
            "accuracy_by_step": raw,
            "accuracy_by_step_transformed": seen,
            "min_accuracy": min(min(raw.values()), min(seen.values())),
            "accuracy": float(detector.is_visualization(traj.images).float().mean()),
        }
    return report


def _targets(spec, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training targets (random shapes + natural training images) and held-out targets (the
    built-ins + natural test images), each (K, C, S, S) in [0, 1]."""
    from fvlab.data.fashion_mnist import FashionMNIST

    half = N_TRAIN_TARGETS // 2
    natural_train, _ = FashionMNIST("train", start=60000 - half).load()
    natural_test, _ = FashionMNIST("test", stop=N_HELDOUT_NATURAL_TARGETS).load()
    train = torch.cat([random_shapes(half, spec.size, spec.channels, seed), natural_train])
    builtins = torch.stack([builtin_target(n, spec.size, spec.channels) for n in BUILTINS])
    return train, torch.cat([builtins, natural_test])


def trajectory_groups(model, seed: int, layers: dict[str, int], show_progress: bool = True):
    """The trajectory sets the detector needs, as name → function that renders it (``train``
    and the held-out groups), plus the unit split."""
    train_units, heldout_units = split_units(layers, per_layer=None, always_train=("fc",))
    train_targets, heldout_targets = _targets(model.spec, seed)

    def units(pairs, settings, offset):
        return lambda: render_trajectories(
            model, pairs, settings, DENSE_STEPS, seed + offset, show_progress
        )

    def templates(targets, offset):
        return lambda: render_template_trajectories(
            model.spec, targets, TARGET_SETTINGS, DENSE_STEPS, seed + offset, show_progress
        )

    def train():
        return concat([units(train_units, TRAIN_SETTINGS, 0)(), templates(train_targets, 3)()])

    groups = {
        "train": train,
        "heldout_units": units(heldout_units, TRAIN_SETTINGS, 7),
        "heldout_units_and_settings": units(heldout_units, HELDOUT_SETTINGS, 11),
        "heldout_targets": templates(heldout_targets, 13),
    }
    return groups, train_units, heldout_units


def _to_plain(traj: Trajectories) -> dict:
    """Tensors, strings and lists only, so a cache loads with ``weights_only=True``."""
    return {"images": traj.images, "unit": [list(u) for u in traj.unit],
            "setting": traj.setting, "step": traj.step}  # fmt: skip


def _from_plain(plain: dict) -> Trajectories:
    units = [(str(layer), int(unit)) for layer, unit in plain["unit"]]
    return Trajectories(plain["images"], units, list(plain["setting"]), plain["step"])


@dataclass(frozen=True)
class DetectorSettings(DetectorTraining):
    """The train-detector job: the training hyperparameters (:class:`DetectorTraining`) and
    ``cache``, a file for the rendered trajectories (the slow part, ~25 min on 2 cores): the
    groups it holds (for the same model, seed and layers) are reused, missing ones rendered
    and added."""

    cache: Path | None = None

    def training(self) -> DetectorTraining:
        """The training hyperparameters alone (what the record stores)."""
        return DetectorTraining(**training_record(self)["training"])


@dataclass
class DetectorResult:
    """A trained detector and its record (training, data, evaluation)."""

    detector: Detector
    record: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return self.record

    def save(self, out: Path) -> Path:
        """Write the weights to ``out`` (a ``.pt`` file) and the record next to it."""
        return save_detector(self.detector, out, self.record)


def _trajectory_data(model, settings: DetectorSettings, groups: dict) -> dict[str, Trajectories]:
    """Every trajectory group, from ``settings.cache`` where it holds it (same model, seed and
    layers), else rendered (and added to the cache)."""
    cache = settings.cache
    key = {"model": model.name, "seed": settings.seed, "layers": FMNIST_LAYERS}
    stored: dict = {}
    if cache is not None and Path(cache).is_file():
        loaded = torch.load(cache, weights_only=True)
        if loaded.get("key") == key:
            stored = loaded["groups"]
    data = {}
    for name, make in groups.items():  # a group missing from the cache is rendered (and added)
        data[name] = _from_plain(stored[name]) if name in stored else make()
        stored.setdefault(name, _to_plain(data[name]))
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "groups": stored}, cache)
    return data


def build_detector(
    model: LoadedModel, settings: DetectorSettings, show_progress: bool = True
) -> DetectorResult:
    """Render trajectories (fmnist-cnn's :data:`FMNIST_LAYERS`), train and evaluate."""
    from fvlab.data.fashion_mnist import FashionMNIST

    start = time.perf_counter()
    seed = settings.seed
    groups, train_units, heldout_units = trajectory_groups(
        model, seed, FMNIST_LAYERS, show_progress
    )
    data = _trajectory_data(model, settings, groups)
    train_traj = data["train"]
    heldout = {name: data[name] for name in HELDOUT_GROUPS}
    render_seconds = time.perf_counter() - start
    # the natural images used as targets above are not natural training examples
    natural_train, _ = FashionMNIST("train", stop=60000 - N_TRAIN_TARGETS // 2).load()
    natural_test, _ = FashionMNIST("test").load()
    config = settings.training()
    detector = train_detector(natural_train, train_traj.images, config, show_progress)
    report = evaluate_detector(detector, natural_test, heldout, seed)
    record = {
        **training_record(config),
        "model": model.name,
        "train_units": len(train_units),
        "heldout_units": [f"{layer}:{unit}" for layer, unit in heldout_units],
        "train_targets": f"{N_TRAIN_TARGETS // 2} random shapes (seed {seed}) + the last "
        f"{N_TRAIN_TARGETS // 2} natural training images",
        "heldout_targets": [f"builtin:{name}" for name in BUILTINS]
        + [f"natural test image {i}" for i in range(N_HELDOUT_NATURAL_TARGETS)],
        "train_settings": describe(TRAIN_SETTINGS),
        "target_settings": describe(TARGET_SETTINGS),
        "heldout_settings": describe(HELDOUT_SETTINGS),
        "snapshot_steps": list(DENSE_STEPS),
        "n_train_visualizations": len(train_traj.images),
        "n_train_natural": len(natural_train),
        "evaluation": report,
        "render_seconds": round(render_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    return DetectorResult(detector, record)


def run_train_detector(
    model: LoadedModel,
    settings: DetectorSettings,
    out: OutDir = None,
    *,
    show_progress: bool = True,
) -> DetectorResult:
    """The whole job: :func:`build_detector`, saved to the weights file ``out`` if given."""
    return finish(build_detector(model, settings, show_progress), out)
