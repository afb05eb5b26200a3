"""Commands about models: ``layers``, ``train-reference``, ``evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fvlab.cli.common import (
    DataOpt,
    DeviceOpt,
    ModelOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    WeightsOpt,
)


def layers(
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    size: Annotated[int | None, typer.Option(help="Input size in px (default: native).")] = None,
) -> None:
    """List every layer's name, type and output shape for one input.

    Example: fvlab layers --model torchvision:resnet50

    Names are the dotted paths to use with --layer. A module marked ×N ran N times in one
    forward pass (reused, e.g. ResNet's per-block relu): capture a neighbour instead.
    """
    from fvlab.models.inspect import describe_layers
    from fvlab.models.zoo import load

    loaded = load(model, weights)
    rows = describe_layers(loaded, size)
    width = max(len(r.name) for r in rows)
    type_width = max(len(r.type) for r in rows)
    print(f"# {loaded.name}: input {loaded.spec.channels}×{size or loaded.spec.size}² in [0, 1]")
    for row in rows:
        shape = "did not run" if row.shape is None else "×".join(map(str, row.shape))
        repeat = f"  ×{row.calls} (reused)" if row.calls > 1 else ""
        print(f"{row.name:<{width}}  {row.type:<{type_width}}  {shape}{repeat}")


def train_reference(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the weights (.pt).")] = (
        Path("out/fmnist-cnn.pt")
    ),
    seed: SeedOpt = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 8,
    data: DataOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the embedded reference model fmnist-cnn on Fashion-MNIST (~5 min on 2 cores).

    Example: fvlab train-reference --out fvlab/models/weights/fmnist-cnn.pt --seed 0

    The committed weights were made by exactly that command. Prints the test top-1.
    """
    from fvlab.models.train_reference import TrainConfig, run_train_reference

    settings = TrainConfig(seed=seed, epochs=epochs, data=data)
    result = run_train_reference(settings, out, show_progress=not quiet)
    accuracy = result.accuracy
    print(f"test top-1 {accuracy.top1:.4f} on {accuracy.n_images} images; weights in {out}")


def evaluate(
    out: OutOpt,
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    data: DataOpt = None,
    device: DeviceOpt = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 500,
    quiet: QuietOpt = False,
) -> None:
    """Top-1 accuracy on the test split; writes OUT/summary.json.

    Example: fvlab evaluate --model fmnist-cnn --out out/eval

    For ImageNet models pass --data with an image folder root/<class>/<image> whose class
    folders sort in the model's class order.
    """
    from fvlab.models.evaluate import EvaluateSettings, run_evaluate
    from fvlab.models.zoo import load

    loaded = load(model, weights, device=device)
    settings = EvaluateSettings(data=data, batch_size=batch_size)
    accuracy = run_evaluate(loaded, settings, out, show_progress=not quiet).accuracy
    print(
        f"top-1 {accuracy.top1:.4f} ({accuracy.correct}/{accuracy.n_images}); "
        f"{out / 'summary.json'}"
    )
