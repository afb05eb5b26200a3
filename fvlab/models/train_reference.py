"""Training the embedded reference model ``fmnist-cnn`` on the 60,000 Fashion-MNIST images.

SGD with Nesterov momentum 0.9, weight decay 5e-4, batch 128, one-cycle learning rate (peak
0.1), random horizontal flips and ±2 px random shifts, 8 epochs. Deterministic for a given seed
on a given machine and thread count (the shuffling, augmentation and initialisation all draw from
one seeded generator). About 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.jobs import OutDir, Settings, at_least
from fvlab.models.evaluate import Accuracy
from fvlab.models.reference import FMNIST_SPEC, FmnistCNN
from fvlab.models.zoo import LoadedModel
from fvlab.progress import progress_bar


@dataclass(frozen=True)
class TrainConfig(Settings):
    """The training settings (see the module docstring); ``threads``: CPU threads used."""

    seed: int = 0
    epochs: int = 8
    batch_size: int = 128
    peak_lr: float = 0.1
    weight_decay: float = 5e-4
    max_shift: int = 2
    threads: int = 2
    data: str | Path | None = None

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "threads"):
            at_least(name, getattr(self, name), 1)
        at_least("peak_lr", self.peak_lr, 0.0)
        at_least("max_shift", self.max_shift, 0)


def augment(images: torch.Tensor, generator: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random horizontal flip and random integer shift (zero fill), drawn per image."""
    n, _, h, w = images.shape
    flip = torch.rand(n, generator=generator) < 0.5
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    if max_shift == 0:
        return images
    padded = F.pad(images, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy.view(-1, 1) + torch.arange(h)).view(n, 1, h, 1).expand(n, 1, h, w + 2 * max_shift)
    shifted = padded.gather(2, rows)
    cols = (dx.view(-1, 1) + torch.arange(w)).view(n, 1, 1, w).expand(n, 1, h, w)
    return shifted.gather(3, cols)


def sgd_one_cycle(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: Any,
    generator: torch.Generator,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    description: str,
    show_progress: bool = True,
) -> None:
    """The training loop both embedded models share; leaves ``model`` in eval mode.

    ``config.epochs`` passes over ``images`` (N, 1, 28, 28) in a fresh random order each
    (``torch.randperm`` from ``generator``), ``config.batch_size`` images per step, each batch
    :func:`augment`-ed (flips and ±``config.max_shift`` px shifts, from ``generator``) and then
    turned into the model's input by ``prepare``; cross-entropy; SGD with Nesterov momentum 0.9
    and ``config.weight_decay``; one-cycle learning rate peaking at ``config.peak_lr`` over all
    steps."""
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.peak_lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=config.weight_decay,
    )
    n = len(labels)
    steps_per_epoch = -(-n // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.peak_lr, total_steps=config.epochs * steps_per_epoch
    )
    model.train()
    with progress_bar(description, config.epochs * steps_per_epoch, show_progress) as advance:
        for epoch in range(config.epochs):
            order = torch.randperm(n, generator=generator)
            for first in range(0, n, config.batch_size):
                index = order[first : first + config.batch_size]
                x = prepare(augment(images[index], generator, config.max_shift))
                loss = F.cross_entropy(model(x), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                advance(1, info=f"epoch {epoch + 1}/{config.epochs} loss {loss.item():.3f}")
    model.eval()


def train_reference(
    config: TrainConfig, data: str | Path | None = None, show_progress: bool = True
) -> tuple[FmnistCNN, dict]:
    """Train ``fmnist-cnn``; return the model (eval mode) and a record of the run.

    ``data`` (default ``config.data``): the Fashion-MNIST folder. A training entry point: the
    weight initialisation draws from torch's global generator, seeded here."""
    data = config.data if data is None else data
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    images, labels = FashionMNIST("train", data).load()
    model = FmnistCNN()
    start = time.perf_counter()
    sgd_one_cycle(model, images, labels, config, generator, FMNIST_SPEC.preprocess,
                  "training fmnist-cnn", show_progress)  # fmt: skip
    record = {
        "config": config.to_dict(),
        "train_seconds": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
    }
    return model, record


def save_reference(model: FmnistCNN, record: dict, out: str | Path) -> Path:
    """Write the state dict to ``out`` and the training record next to it (``.json``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    return out


def as_loaded(model: FmnistCNN) -> LoadedModel:
    from fvlab.data.fashion_mnist import CLASS_NAMES

    return LoadedModel("fmnist-cnn", model.eval(), FMNIST_SPEC, CLASS_NAMES, "trained")


@dataclass
class TrainedReference:
    """A freshly trained fmnist-cnn, its training record and its test top-1."""

    model: FmnistCNN
    record: dict
    accuracy: Accuracy

    def summary(self) -> dict:
        return self.record

    def save(self, out: Path) -> Path:
        """``out`` is the weights file (.pt); the record goes next to it as .json."""
        return save_reference(self.model, self.record, out)


def run_train_reference(
    settings: TrainConfig, out: OutDir = None, *, show_progress: bool = True
) -> TrainedReference:
    """The ``fvlab train-reference`` job: train, measure test top-1, save the weights to ``out``
    (a .pt file) with the record (``test_top1`` included) beside it."""
    from fvlab.models.evaluate import top1_accuracy

    model, record = train_reference(settings, show_progress=show_progress)
    test = FashionMNIST("test", settings.data)
    accuracy = top1_accuracy(as_loaded(model), test, show_progress=show_progress)
    record["test_top1"] = accuracy.top1
    result = TrainedReference(model, record, accuracy)
    if out is not None:
        result.save(Path(out))
    return result
