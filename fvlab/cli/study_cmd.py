"""``fvlab study ...``: the causal-understanding experiment (stimuli, server, analysis)."""

from __future__ import annotations

import typer

from fvlab.cli.groups import attach

study = typer.Typer(
    help=(
        "The causal-understanding psychophysics study: build stimuli, serve the browser "
        "experiment, export and analyse the answers, simulate participants."
    ),
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Attach the ``study`` command group to the main app."""
    app.add_typer(study, name="study")


# serve, export, analyze, simulate, power (their own module; registered once, on import)
attach(study, ("study_run_cmd",))
# build (stimuli; its own module)
attach(study, ("study_build_cmd",))
