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
    from fvlab.theory.run import run_all

    if out.exists() and not out.is_dir():
        raise FvlabError(f"--out {out} is a file; give a directory (it is created if missing)")
    summary = run_all(out, seed=seed, quick=quick, show_progress=not quiet)
    failed = []
    for name, result in summary["demonstrations"].items():
        bad = [check for check, ok in result["checks"].items() if not ok]
        failed += [f"{name}: {check}" for check in bad]
        status = "ok" if not bad else f"FAILED ({', '.join(bad)})"
        typer.echo(f"{name:16s} {status:8s} {result['seconds']:6.1f} s  → {out / result['plot']}")
    typer.echo(f"summary: {out / 'summary.json'} ({summary['seconds']:.1f} s)")
    if failed:
        typer.echo("checks failed: " + "; ".join(failed), err=True)
        raise typer.Exit(1)
