"""The ``fvlab`` command: one explicit table of every command, and one-line errors.

Command modules only parse options into a job's settings and call the job (see
:mod:`fvlab.jobs`); they import nothing heavy at module level, so ``fvlab --help`` is instant.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable

import typer

from fvlab.errors import FvlabError

APP_HELP = (
    "Feature visualization you can check: render what units respond to, build models whose "
    "visualizations lie, check visualizations against natural images, and run the human study "
    "that measures whether they help.\n\nStart with `fvlab demo --out out/demo` (or `make demo`)."
)

#: command groups: name → help text
GROUPS = {
    "fool": "Build a model that behaves identically on natural images but whose feature "
    "visualizations show something else (circuit: classifier-gated units; silent: orthogonal "
    "filters that never fire on natural data).",
    "check": "Sanity checks of feature visualizations: do they travel the natural path through "
    "the network (paths)? Which units never fire on natural data (silent)?",
    "study": "The causal-understanding psychophysics study: build stimuli, serve the browser "
    "experiment, export and analyse the answers, simulate participants.",
}


def command_table() -> list[tuple[str | None, str, Callable[..., None]]]:
    """(group or None for top level, command name, function) of every command, in help order."""
    from fvlab.cli import (
        audit_cmd,
        check_paths,
        check_silent,
        demo_cmd,
        fool_circuit,
        fool_silent,
        models_cmd,
        render_cmd,
        study_build_cmd,
        study_run_cmd,
        theory_cmd,
    )

    return [
        (None, "layers", models_cmd.layers),
        (None, "train-reference", models_cmd.train_reference),
        (None, "evaluate", models_cmd.evaluate),
        (None, "render", render_cmd.render),
        ("fool", "circuit", fool_circuit.circuit),
        ("fool", "train-detector", fool_circuit.train_detector),
        ("fool", "silent", fool_silent.fool_silent),
        ("check", "paths", check_paths.check_paths),
        ("check", "silent", check_silent.check_silent),
        (None, "audit", audit_cmd.audit),
        (None, "theory", theory_cmd.theory),
        ("study", "build", study_build_cmd.build),
        ("study", "serve", study_run_cmd.serve),
        ("study", "export", study_run_cmd.export),
        ("study", "analyze", study_run_cmd.analyze),
        ("study", "simulate", study_run_cmd.simulate),
        ("study", "power", study_run_cmd.power),
        (None, "demo", demo_cmd.demo),
    ]


def build_app() -> typer.Typer:
    """The typer app with every command of :func:`command_table` attached."""
    app = typer.Typer(
        name="fvlab",
        help=APP_HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    groups = {name: typer.Typer(help=text, no_args_is_help=True) for name, text in GROUPS.items()}
    for group, name, function in command_table():
        (app if group is None else groups[group]).command(name)(function)
    for name, group in groups.items():
        app.add_typer(group, name=name)
    return app


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"fvlab: warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors print one line and exit with status 2, warnings
    print one line each."""
    warnings.formatwarning = _one_line_warning
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
