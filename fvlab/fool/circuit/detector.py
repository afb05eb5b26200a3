"""The natural-vs-visualization detector E of the fooling circuit.

A small fully convolutional CNN on [0, 1] images: five 3×3 convolutions (widths configurable;
the committed one has 32, 32, 64, 64, 64 channels; strides 1, 2, 2, 2, 1) with ReLUs, global
mean- and max-pooling, and a linear layer to ONE logit; logit > 0 means "this is a
feature-visualization optimisation input". Being fully convolutional it accepts the slightly
larger images the render transforms produce.

Training: natural training images vs visualization trajectories, balanced batches, Adam, and the
render transforms applied (per element) to 3 in 4 batches of *both* classes, so neither the
image size nor the padding tells the classes apart. All randomness (initial weights included)
comes from ``torch.Generator``s seeded with ``seed`` (one for the initial weights, one for
the batches, flips and transforms).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fvlab.data.image_bank import IndexedImages, indexed
from fvlab.fool.circuit.settings import TRAINING_FIELDS, DetectorTraining
from fvlab.optvis.transforms import make_transforms
from fvlab.progress import progress_bar


class Detector(nn.Module):
    """Fully convolutional binary classifier; ``forward`` returns (B,) logits (> 0: FV input)."""

    def __init__(
        self,
        channels: int = 1,
        widths: tuple[int, ...] = (16, 16, 32, 32, 32),
        strides: tuple[int, ...] = (1, 2, 2, 2, 1),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = channels
        for width, stride in zip(widths, strides, strict=True):
            layers += [nn.Conv2d(cin, width, 3, stride, 1), nn.ReLU()]
            cin = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * cin, 1)
        self.config = {"channels": channels, "widths": list(widths), "strides": list(strides)}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.features(images * 2 - 1)
        pooled = torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1)
        return self.head(pooled).squeeze(1)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """PyTorch's default initialisation of every conv and linear layer, in module order,
        drawn from ``generator`` (weights: Kaiming-uniform with a = √5; biases: U(−1/√fan_in,
        1/√fan_in)), so a seeded generator gives the weights global seeding would."""
        for layer in self.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                fan_in = layer.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)

    @torch.no_grad()
    def is_visualization(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Hard decision per image (bool), batched."""
        return torch.cat([self(x) > 0 for x in images.split(batch_size)])


def train_detector(
    natural: torch.Tensor | IndexedImages,
    visualizations: torch.Tensor | IndexedImages,
    config: DetectorTraining = DetectorTraining(),
    show_progress: bool = True,
) -> Detector:
    """Train on ``natural`` vs ``visualizations`` images (C, H, W) in [0, 1]: tensors
    (N, C, H, W), or :mod:`image banks <fvlab.data.image_bank>` on disk, from which each step
    reads only its batch (memory bounded by ``config.batch_size``; the same draws, so the same
    detector, as from tensors)."""
    natural, visualizations = indexed(natural), indexed(visualizations)
    detector = Detector(natural.shape[0], tuple(config.widths))
    detector.reset_parameters(torch.Generator().manual_seed(config.seed))
    generator = torch.Generator().manual_seed(config.seed)  # batches, flips, transforms
    optimizer = torch.optim.Adam(detector.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    transform = make_transforms("standard", natural.shape[-1])
    labels = torch.cat([torch.zeros(config.batch_size), torch.ones(config.batch_size)])
    detector.train()
    with progress_bar("training detector", config.steps, show_progress) as advance:
        for step in range(config.steps):
            nat = natural.take(
                torch.randint(len(natural), (config.batch_size,), generator=generator)
            )
            fv = visualizations.take(
                torch.randint(len(visualizations), (config.batch_size,), generator=generator)
            )
            batch = torch.cat([nat, fv])
            flip = torch.rand(len(batch), generator=generator) < 0.5
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
            if torch.rand((), generator=generator) < config.transform_prob:
                batch = transform(batch, generator)
            loss = F.binary_cross_entropy_with_logits(detector(batch), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 50 == 49:
                advance(50, info=f"loss {loss.item():.4f}")
    return detector.eval()


def save_detector(detector: Detector, path: str | Path, record: dict) -> Path:
    """State dict at ``path``; architecture and training record next to it (``.json``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(detector.state_dict(), path)
    path.with_suffix(".json").write_text(
        json.dumps({"architecture": detector.config, **record}, indent=2)
    )
    return path


def load_detector(path: str | Path) -> Detector:
    """Load a detector saved by :func:`save_detector` (architecture from the ``.json``)."""
    from fvlab.errors import CorruptFileError
    from fvlab.models.zoo import load_weights

    path = Path(path)
    meta_path = path.with_suffix(".json")
    try:
        config = json.loads(meta_path.read_text())["architecture"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as exc:
        raise CorruptFileError(
            f"{meta_path} (the detector's architecture record) is missing or invalid"
        ) from exc
    detector = Detector(config["channels"], tuple(config["widths"]), tuple(config["strides"]))
    load_weights(detector, path)
    return detector.eval()


def training_record(config: DetectorTraining) -> dict:
    """The training hyperparameters for the detector's record (``.json``)."""
    return {"training": {name: getattr(config, name) for name in TRAINING_FIELDS}}
