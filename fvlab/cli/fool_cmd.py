"""``fvlab fool``: build models whose feature visualizations lie."""

from __future__ import annotations

import typer

from fvlab.cli.groups import attach


def register(app: typer.Typer) -> None:
    fool = typer.Typer(
        help="Build a model that behaves identically on natural images but whose feature "
        "visualizations show something else (circuit: classifier-gated units; silent: "
        "orthogonal filters that never fire on natural data).",
        no_args_is_help=True,
    )
    attach(fool, ("fool_circuit", "fool_silent"))
    app.add_typer(fool, name="fool")
