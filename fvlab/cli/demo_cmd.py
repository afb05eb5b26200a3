"""``fvlab demo``: every pillar on the embedded model, one HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fvlab.cli.common import QuietOpt, SeedOpt


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("out/demo"),
    seed: SeedOpt = 0,
    full: Annotated[
        bool, typer.Option(help="Recompute everything, including the committed detector.")
    ] = False,
    only: Annotated[
        str | None, typer.Option(help="Comma-separated sections to run (default: all).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Run every pillar on fmnist-cnn and write OUT/report.html and OUT/summary.json.

    Example: fvlab demo --out out/demo

    Takes a few minutes on 2 CPU cores; deterministic for a given --seed.
    """
    from fvlab.demo.run import DemoSettings, run_demo

    sections = tuple(name.strip() for name in only.split(",") if name.strip()) if only else None
    run_demo(DemoSettings(seed=seed, full=full, only=sections), out, show_progress=not quiet)
    print(f"report: {out / 'report.html'}")
