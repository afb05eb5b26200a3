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
    """Run the theory demonstrations (one PNG each) and print P1's table of function classes.

    Example: fvlab theory --out out/theory

    relu_tents (a ReLU net changed where its visualization never looks), affine (ordering pairs
    from the arg max, over the dimension d), lipschitz (certified radius ε/L), convex_monotone
    (pairs with identical extrema), toy_fooling (a gated unit in a 2-D classifier), erm (two
    trained nets, same loss and extremes, different at held-out points), positive (constant and
    affine d = 1 units decoded exactly), lipschitz_small (the crossover L below which the
    visualization bounds the unit everywhere), structured (single-index monotone nets vs
    unstructured ones). The table (class | verdict | demonstration | measured worst case) is
    printed and stored in summary.json with each demonstration's numbers and checks; the
    command exits with status 1 if any check fails. These are numeric illustrations, not the
    paper's theorems (docs/theory.md).
    """
    from fvlab.errors import FvlabError
    from fvlab.theory.run import TheorySettings, run_theory
    from fvlab.theory.table import format_table

    if out.exists() and not out.is_dir():
        raise FvlabError(f"out: {out} is a file; give a directory (it is created if missing)")
    result = run_theory(TheorySettings(seed=seed, quick=quick), out, show_progress=not quiet)
    for demo in result.demonstrations:
        bad = [check for check, ok in demo.checks.items() if not ok]
        status = "ok" if not bad else f"FAILED ({', '.join(bad)})"
        typer.echo(f"{demo.name:16s} {status:8s} {demo.seconds:6.1f} s  → {out / demo.plot_file}")
    typer.echo("")
    typer.echo(format_table(result.table()))
    typer.echo("")
    typer.echo(f"summary: {out / 'summary.json'} ({result.seconds:.1f} s)")
    if not result.all_checks_pass:
        typer.echo("checks failed: " + "; ".join(result.failed_checks()), err=True)
        raise typer.Exit(1)
