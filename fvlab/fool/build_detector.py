"""Building the committed detector artifact for a model: trajectories → training → evaluation.

``fvlab fool train-detector --model fmnist-cnn --out fvlab/fool/weights/fmnist-cnn-detector.pt``
renders the trajectories (training units × training settings; held-out units × all settings),
trains the detector on natural *training* images vs training trajectories, and records its
accuracy on natural *test* images and on held-out trajectories per snapshot step, both as
rendered and as the model sees them (after the render transforms).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from fvlab.fool.detector import (
    Detector,
    DetectorTraining,
    save_detector,
    train_detector,
    training_record,
)
from fvlab.fool.trajectories import (
    HELDOUT_SETTINGS,
    SNAPSHOT_STEPS,
    TRAIN_SETTINGS,
    Trajectories,
    describe,
    render_trajectories,
    split_units,
)
from fvlab.fv.transforms import make_transforms

#: units whose visualizations train the detector, per fmnist-cnn layer (channel counts)
FMNIST_LAYERS = {"fc": 10, "bn1": 32, "bn2": 32, "bn3": 64, "bn4": 64, "bn5": 128}


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
    """Accuracy on natural test images and, per group of trajectories, per snapshot step."""
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


def build_detector(
    model,
    out: str | Path,
    seed: int = 0,
    training: DetectorTraining | None = None,
    layers: dict[str, int] | None = None,
    show_progress: bool = True,
) -> dict:
    """Render trajectories, train, evaluate and save the detector; returns the record."""
    from fvlab.data.fashion_mnist import FashionMNIST

    start = time.perf_counter()
    layers = layers or FMNIST_LAYERS
    train_units, heldout_units = split_units(layers, per_layer=16, always_train=("fc",))
    train_traj = render_trajectories(
        model, train_units, TRAIN_SETTINGS, SNAPSHOT_STEPS, seed, show_progress
    )
    heldout_seen = render_trajectories(
        model, heldout_units, TRAIN_SETTINGS, SNAPSHOT_STEPS, seed + 7, show_progress
    )
    heldout_new = render_trajectories(
        model, heldout_units, HELDOUT_SETTINGS, SNAPSHOT_STEPS, seed + 11, show_progress
    )
    render_seconds = time.perf_counter() - start
    natural_train, _ = FashionMNIST("train").load()
    natural_test, _ = FashionMNIST("test").load()
    config = training or DetectorTraining(seed=seed)
    detector = train_detector(natural_train, train_traj.images, config, show_progress)
    report = evaluate_detector(
        detector,
        natural_test,
        {"heldout_units": heldout_seen, "heldout_units_and_settings": heldout_new},
        seed,
    )
    record = {
        **training_record(config),
        "model": model.name,
        "train_units": len(train_units),
        "heldout_units": [f"{layer}:{unit}" for layer, unit in heldout_units],
        "train_settings": describe(TRAIN_SETTINGS),
        "heldout_settings": describe(HELDOUT_SETTINGS),
        "snapshot_steps": list(SNAPSHOT_STEPS),
        "n_train_visualizations": len(train_traj.images),
        "n_train_natural": len(natural_train),
        "evaluation": report,
        "render_seconds": round(render_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    save_detector(detector, out, record)
    return record
