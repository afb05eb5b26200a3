"""The ``fvlab`` command. Each pillar's commands live in a module of their own."""

from __future__ import annotations

import sys

import typer

from fvlab.errors import FvlabError


def build_app() -> typer.Typer:
    """Assemble the command tree (imports are cheap: commands import torch lazily)."""
    from fvlab.cli import models_cmd

    app = typer.Typer(
        name="fvlab",
        help=(
            "Feature visualization you can check: render what units respond to, build models "
            "whose visualizations lie, check visualizations against natural images, and run "
            "the human study that measures whether they help.\n\n"
            "Start with `fvlab demo --out out/demo` (or `make demo`)."
        ),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    models_cmd.register(app)
    for name in ("render_cmd", "fool_cmd", "check_cmd", "theory_cmd", "study_cmd", "demo_cmd"):
        try:
            module = __import__(f"fvlab.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"fvlab.cli.{name}":
                raise
            continue
        module.register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors print one line and exit with status 2."""
    app = build_app()
    try:
        app(args=argv, standalone_mode=False)
    except FvlabError as exc:
        print(f"fvlab: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("fvlab: aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
