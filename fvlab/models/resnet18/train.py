"""Training ``fmnist-resnet18`` on the 60,000 Fashion-MNIST training images at 64 px.

Each step: a batch of 28-px images drawn without replacement, a random horizontal flip and a
random integer shift of ±``max_shift`` px (zero fill) per image (the augmentation of
``fmnist-cnn``, :func:`fvlab.models.train_reference.augment`), then the model's input rule
(:func:`fvlab.data.resized.resize_grey`: bilinear to 64 px, grey repeated on 3 channels) and
the spec's normalisation. SGD with Nesterov momentum 0.9, weight decay 5e-4 (also on
BatchNorm, as torchvision's recipe), cross-entropy, one-cycle learning rate with peak
``peak_lr``. Deterministic for a seed on a given machine and thread count: the initial weights
come from torch's global generator seeded here (torchvision's own initialisation), the order
and the augmentation from one seeded ``torch.Generator``.

The weights are saved with every floating-point tensor in float16 and the test top-1 in the
record is that of the *saved* (rounded) weights on the 10,000 test images.

Run (from the repository root)::

    OMP_WAIT_POLICY=PASSIVE nice -n 5 \
        python -m fvlab.models.resnet18.train --out fvlab/models/weights/fmnist-resnet18.pt

``OMP_WAIT_POLICY=PASSIVE`` does not change the numbers; on a shared machine it stops idle
OpenMP threads from spinning (measured here under a load of ~10 on 2 cores: 1.4 instead of
3.6 CPU-seconds per training step of 128 images, and 5.3 instead of 16.5 s wall).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fvlab.jobs import Settings, at_least, positive


@dataclass(frozen=True)
class ResNet18TrainConfig(Settings):
    """The training settings (module docstring); ``threads``: CPU threads; ``limit``: train on
    the first ``limit`` training images only (None: all 60,000); ``init``: start from these
    weights instead of torchvision's initialisation (a second, fine-tuning stage)."""

    seed: int = 0
    epochs: int = 3
    batch_size: int = 128
    peak_lr: float = 0.1
    weight_decay: float = 5e-4
    max_shift: int = 2
    threads: int = 2
    limit: int | None = None
    init: str | Path | None = None
    data: str | Path | None = None

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "threads"):
            at_least(name, getattr(self, name), 1)
        positive("peak_lr", self.peak_lr)
        at_least("weight_decay", self.weight_decay, 0.0)
        at_least("max_shift", self.max_shift, 0)
        at_least("limit", self.limit, 1)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def train_resnet18(config: ResNet18TrainConfig, show_progress: bool = True):
    """Train the model; return (module in eval mode, record of the run with wall and CPU time).

    A training entry point: seeds torch's global generator for torchvision's initialisation."""
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.data.resized import resize_grey
    from fvlab.models.resnet18.model import CHANNELS, FMNIST_RESNET18_SPEC, SIZE, build
    from fvlab.models.train_reference import sgd_one_cycle

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    images, labels = FashionMNIST("train", config.data).load()
    if config.limit is not None:
        images, labels = images[: config.limit], labels[: config.limit]
    model = build()
    if config.init is not None:
        from fvlab.models.zoo import load_weights

        load_weights(model, config.init)
    model = model.to(memory_format=torch.channels_last)
    wall, cpu = time.perf_counter(), _cpu_seconds()

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = FMNIST_RESNET18_SPEC.preprocess(resize_grey(x, SIZE, CHANNELS))
        return x.contiguous(memory_format=torch.channels_last)

    sgd_one_cycle(model, images, labels, config, generator, prepare,
                  "training fmnist-resnet18", show_progress)  # fmt: skip
    record = {
        "config": config.to_dict(),
        "train_seconds": round(time.perf_counter() - wall, 1),
        "train_cpu_seconds": round(_cpu_seconds() - cpu, 1),
        "torch": torch.__version__,
    }
    return model.to(memory_format=torch.contiguous_format), record


def save_half(model: torch.nn.Module, record: dict, out: str | Path) -> Path:
    """Write the float16 state dict to ``out`` and the record next to it (``.json``)."""
    from fvlab.models.resnet18.model import half_state

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(half_state(model), out)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train fmnist-resnet18 (module docstring).")
    parser.add_argument("--out", type=Path, required=True, help="weights file to write (.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=ResNet18TrainConfig.epochs)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--peak-lr", type=float, default=ResNet18TrainConfig.peak_lr)
    parser.add_argument("--init", type=Path, default=None, help="start from these weights")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    config = ResNet18TrainConfig(seed=args.seed, epochs=args.epochs, limit=args.limit,
                                 peak_lr=args.peak_lr, init=args.init, data=args.data)  # fmt: skip
    model, record = train_resnet18(config, show_progress=not args.quiet)
    save_half(model, record, args.out)
    from fvlab.models.evaluate import EvaluateSettings, run_evaluate
    from fvlab.models.zoo import load

    saved = load("fmnist-resnet18", weights=args.out)
    accuracy = run_evaluate(saved, EvaluateSettings(data=args.data), show_progress=not args.quiet)
    record["test_top1"] = accuracy.accuracy.top1
    record["weights_dtype"] = "float16"
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"test top-1 {accuracy.accuracy.top1:.4f}; {record['train_seconds']} s wall, "
        f"{record['train_cpu_seconds']} CPU-s; weights in {args.out}"
    )


if __name__ == "__main__":
    main()
