"""Command groups whose commands live in separate modules (one module per command)."""

from __future__ import annotations

import importlib

import typer


def attach(group: typer.Typer, modules: tuple[str, ...]) -> None:
    """Call ``register(group)`` of each ``fvlab.cli.<module>`` that exists."""
    for name in modules:
        try:
            module = importlib.import_module(f"fvlab.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fvlab.cli.{name}":
                raise
            continue
        module.register(group)
