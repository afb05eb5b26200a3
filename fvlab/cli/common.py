"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fvlab.errors import FvlabError
from fvlab.report.summary import write_summary  # noqa: F401 (re-exported for commands)

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="fmnist-cnn, inceptionv1, torchvision:<name>, or a saved-model directory.",
    ),
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(help="Local weights file (state dict). Nothing is ever downloaded."),
]
DataOpt = Annotated[
    Path | None,
    typer.Option(
        help="Fashion-MNIST folder (the four .gz files) or, for other models, an image folder "
        "root/<class>/<image>. Default: $FVLAB_DATA, then /usr/share/datasets/fashion-mnist."
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, mps.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory (created).")]
SeedOpt = Annotated[int, typer.Option(help="Random seed; the same seed gives the same output.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def parse_int_list(text: str, what: str = "units") -> list[int]:
    """Parse '0-9', '3', '1,4,7' or '0-3,8' into a list of ints."""
    values: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                values.extend(range(lo_i, hi_i + 1))
            else:
                values.append(int(part))
    except ValueError as exc:
        raise FvlabError(
            f"cannot read {what} {text!r}; use a range '0-9', a list '1,4,7' or both '0-3,8'"
        ) from exc
    if not values:
        raise FvlabError(f"no {what} given in {text!r}")
    return values


def open_dataset(model, data: Path | None, split: str = "test"):
    """The natural images for ``model``: Fashion-MNIST for 28-px grayscale models, else a folder."""
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.data.folders import ImageFolder

    if data is not None and data.is_dir() and any(p.is_dir() for p in data.iterdir()):
        return ImageFolder(data, size=model.spec.size, channels=model.spec.channels)
    if model.spec.channels == 1 and model.spec.size == 28:
        return FashionMNIST(split, data)
    raise FvlabError(
        f"model {model.name} needs an image folder of natural images: pass --data ROOT with "
        "ROOT/<class>/<image> (e.g. the ImageNet validation set in class folders)"
    )
