"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import typer

from fvlab.int_lists import parse_int_list  # noqa: F401 (the unit-list parser of every command)
from fvlab.jobs import defaults

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

# --- execution of the heavy work (docs/scale.md) ---
EngineOpt = Annotated[
    str,
    typer.Option(
        help="local (this process) or ray (shards as Ray tasks; a local Ray unless --ray-address)."
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(help="Address of a running Ray cluster (e.g. auto, ray://head:10001)."),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        help="Reuse the intact shards in --out of an interrupted run of the same job; "
        "compute only the missing ones."
    ),
]

ShardImagesOpt = Annotated[
    int,
    typer.Option(
        min=1, help="Natural images per sweep shard (rounded up to whole batches; docs/scale.md)."
    ),
]


def engine_from_options(engine: str, ray_address: str | None):
    """The engine of ``--engine`` / ``--ray-address`` (:func:`fvlab.engine.make_engine`)."""
    from fvlab.engine import make_engine

    return make_engine(engine, address=ray_address)


# --- options of the check pillar's commands (check paths, check silent, audit) ---
SplitOpt = Annotated[str, typer.Option(help="Fashion-MNIST split: test or train.")]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Images per forward pass.")]
SizeOpt = Annotated[int | None, typer.Option(help="Image side in px for FVs and folder images.")]
MetricOpt = Annotated[
    str, typer.Option(help="Similarity of activation vectors: spearman | pearson | cosine.")
]

# --- options of the fool pillar's commands (fool circuit, fool silent) ---
UnitsOpt = Annotated[str | None, typer.Option(help="Units to fool: '0-9', '1,4,7'; default all.")]


F = typing.TypeVar("F", bound=Callable[..., None])


def settings_options(cls: type, helps: Mapping[str, str | tuple[str, str]]) -> Callable[[F], F]:
    """Decorator: append to a command one keyword-only typer option per field of the settings
    class ``cls`` named in ``helps`` (its help text, or ``(flag, help text)`` when the flag is
    not ``--field-name``); the option's type and default are the field's. The command takes
    them in ``**options``."""
    hints = typing.get_type_hints(cls)
    values = defaults(cls)

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        for name, text in helps.items():
            flag, help_text = text if isinstance(text, tuple) else (None, text)
            option = typer.Option(flag, help=help_text) if flag else typer.Option(help=help_text)
            params.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=Annotated[hints[name], option],
                    default=getattr(values, name),
                )
            )
        command.__signature__ = signature.replace(parameters=params)
        return command

    return decorate
