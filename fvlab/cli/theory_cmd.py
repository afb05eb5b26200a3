"""``fvlab theory``: the numeric demonstrations of why visualizations cannot predict units."""

from __future__ import annotations

from typing import Annotated

import typer

from fvlab.cli.common import OutOpt, QuietOpt, SeedOpt


def theory(
    out: OutOpt,
    seed: SeedOpt = 0,
    quick: Annotated[
        bool, typer.Option(help="Fewer samples, starts and steps (same checks; a few seconds).")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the five theory demonstrations: one PNG each and summary.json.

    Example: fvlab theory --out out/theory

    relu_tents (a ReLU net changed where its visualization never looks), affine (ordering pairs
    from the arg max, over the dimension d), lipschitz (certified radius ε/L), convex_monotone
    (pairs with identical extrema), toy_fooling (a gated unit in a 2-D classifier). Each entry
    of summary.json lists its measured numbers and checks; the command exits with status 1 if
    any check fails. These are numeric illustrations, not the paper's theorems (docs/theory.md).
    """
    from fvlab.errors import FvlabError
    from fvlab.theory.run import TheorySettings, run_theory

    if out.exists() and not out.is_dir():
        raise FvlabError(f"out: {out} is a file; give a directory (it is created if missing)")
    result = run_theory(TheorySettings(seed=seed, quick=quick), out, show_progress=not quiet)
    for demo in result.demonstrations:
        bad = [check for check, ok in demo.checks.items() if not ok]
        status = "ok" if not bad else f"FAILED ({', '.join(bad)})"
        typer.echo(f"{demo.name:16s} {status:8s} {demo.seconds:6.1f} s  → {out / demo.plot_file}")
    typer.echo(f"summary: {out / 'summary.json'} ({result.seconds:.1f} s)")
    if not result.all_checks_pass:
        typer.echo("checks failed: " + "; ".join(result.failed_checks()), err=True)
        raise typer.Exit(1)
