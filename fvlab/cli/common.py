"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fvlab.data.natural import open_dataset  # noqa: F401 (re-exported for commands)
from fvlab.int_lists import parse_int_list  # noqa: F401 (re-exported for commands)
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
