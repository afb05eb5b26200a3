"""Top-1 accuracy of a model on a labelled image stream."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from fvlab.jobs import OutDir, Settings, at_least, finish
from fvlab.progress import progress_bar

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel


@dataclass(frozen=True)
class Accuracy:
    """``correct`` of ``n_images`` images classified right; ``top1`` = correct / n_images."""

    correct: int
    n_images: int

    @property
    def top1(self) -> float:
        return self.correct / self.n_images if self.n_images else float("nan")


@torch.no_grad()
def top1_accuracy(
    model: LoadedModel, dataset, batch_size: int = 500, show_progress: bool = True
) -> Accuracy:
    """Stream ``dataset.batches`` through ``model`` (a LoadedModel) and count top-1 hits."""
    correct = total = 0
    device = model.device
    with progress_bar("evaluating", len(dataset), show_progress) as advance:
        for images, labels in dataset.batches(batch_size):
            logits = model(images.to(device))
            correct += int((logits.argmax(1).cpu() == labels).sum())
            total += len(labels)
            advance(len(labels), info=f"top-1 {correct / total:.4f}")
    return Accuracy(correct, total)


@dataclass(frozen=True)
class EvaluateSettings(Settings):
    """``data``: Fashion-MNIST folder or an image folder root/<class>/<image> (default: the
    model's own natural test images, see :func:`fvlab.data.natural.open_dataset`)."""

    data: Path | None = None
    batch_size: int = 500

    def validate(self) -> None:
        at_least("batch_size", self.batch_size, 1)


@dataclass
class EvaluationResult:
    """Top-1 of one model on its test images."""

    model: str
    weights: str | None
    accuracy: Accuracy

    def summary(self) -> dict:
        return {
            "model": self.model,
            "weights": self.weights,
            "top1": self.accuracy.top1,
            "n_images": self.accuracy.n_images,
            "correct": self.accuracy.correct,
        }

    def save(self, out: Path) -> Path:
        from fvlab.report.summary import write_summary

        return write_summary(out, self.summary())


def run_evaluate(
    model: LoadedModel,
    settings: EvaluateSettings,
    out: OutDir = None,
    *,
    show_progress: bool = True,
) -> EvaluationResult:
    """The ``fvlab evaluate`` job: top-1 of ``model`` (a LoadedModel) on the test split."""
    from fvlab.data.natural import open_dataset

    dataset = open_dataset(model, settings.data, "test")
    accuracy = top1_accuracy(model, dataset, settings.batch_size, show_progress=show_progress)
    return finish(EvaluationResult(model.name, model.weights, accuracy), out)
