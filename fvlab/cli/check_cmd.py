"""``fvlab check`` (path similarity, silent units) and ``fvlab audit``."""

from __future__ import annotations

import typer

from fvlab.cli.groups import attach


def register(app: typer.Typer) -> None:
    check = typer.Typer(
        help="Sanity checks of feature visualizations: do they travel the natural path through "
        "the network (paths)? Which units never fire on natural data (silent)?",
        no_args_is_help=True,
    )
    attach(check, ("check_paths", "check_silent"))
    app.add_typer(check, name="check")
    attach(app, ("audit_cmd",))
