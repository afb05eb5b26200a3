"""Top-1 accuracy of a model on a labelled image stream."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fvlab.progress import progress_bar


@dataclass(frozen=True)
class Accuracy:
    """``correct`` of ``n_images`` images classified right; ``top1`` = correct / n_images."""

    correct: int
    n_images: int

    @property
    def top1(self) -> float:
        return self.correct / self.n_images if self.n_images else float("nan")


@torch.no_grad()
def top1_accuracy(model, dataset, batch_size: int = 500, show_progress: bool = True) -> Accuracy:
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
