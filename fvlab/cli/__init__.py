"""The ``fvlab`` command: one explicit table of every command, and one-line errors.

Command modules only parse options into a job's settings and call the job (see
:mod:`fvlab.jobs`); they import nothing heavy at module level, so ``fvlab --help`` is instant.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Callable
from typing import NoReturn

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
        fool_slingshot,
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
        ("fool", "slingshot", fool_slingshot.fool_slingshot),
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


def help_text(doc: str | None) -> str:
    """A command's docstring as help that the terminal can wrap: within a paragraph, prose
    lines are joined into one line (typer's rich help keeps every line break of a docstring,
    so lines wrapped at 95 characters in the source break twice in an 80-column terminal);
    lines that start a command (``fvlab …``), are indented, or follow ``Example(s):`` keep
    their own line (indented lines indented by two spaces, runs of spaces collapsed)."""
    paragraphs = []
    for paragraph in inspect.cleandoc(doc or "").split("\n\n"):
        lines: list[str] = []
        for line in paragraph.splitlines():
            own_line = line.startswith((" ", "fvlab ")) or (lines and lines[-1].endswith(":"))
            if lines and not own_line:
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(("  " if line.startswith(" ") else "") + " ".join(line.split()))
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


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
        parent = app if group is None else groups[group]
        parent.command(name, help=help_text(function.__doc__))(function)
    for name, group in groups.items():
        app.add_typer(group, name=name)
    return app


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"fvlab: warning: {_one_line(str(message))}\n"


def _one_line(text: str) -> str:
    """``text`` with its lines joined by spaces (messages of wrapped errors span lines)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _click_exceptions() -> tuple[type[Exception], type[Exception] | tuple[()]]:
    """(ClickException, NoArgsIsHelpError) of the click that typer runs on: recent typer
    (0.29 here) has its own copy, ``typer._click``; older typer uses click itself."""
    try:
        from typer._click import exceptions
    except ImportError:  # typer on click
        from click import exceptions
    return exceptions.ClickException, getattr(exceptions, "NoArgsIsHelpError", ())


def _fail(message: str) -> NoReturn:
    print(f"fvlab: error: {_one_line(message)}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app. Every error the user can cause (a missing, unknown or bad
    option, an :class:`FvlabError`, an unusable file) prints one line ``fvlab: error: …`` on
    stderr and exits with status 2; warnings print one line each."""
    warnings.formatwarning = _one_line_warning
    click_error, no_args_is_help = _click_exceptions()
    app = build_app()
    try:
        # standalone_mode=False: errors come here instead of click's multi-line usage text;
        # an explicit exit (typer.Exit, Ctrl-C → 130) is returned as its status
        status = app(args=argv, prog_name="fvlab", standalone_mode=False)
    except FvlabError as exc:
        _fail(str(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("fvlab: aborted", file=sys.stderr)
        sys.exit(130)
    except no_args_is_help as exc:  # `fvlab` or `fvlab GROUP` alone: the help text
        exc.show()
        sys.exit(2)
    except click_error as exc:  # usage errors: missing/unknown option, bad value
        context = getattr(exc, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        _fail(f"{exc.format_message()}{hint}")
    except OSError as exc:  # a path that cannot be read or written
        _fail(str(exc))
    if isinstance(status, int) and status != 0:
        sys.exit(status)
