"""``fvlab audit``: score every unit of a layer for signs that its FV is not representative."""

from __future__ import annotations

from typing import Annotated

import typer

from fvlab.cli.common import (
    DataOpt,
    DeviceOpt,
    ModelOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    WeightsOpt,
)


def audit(
    out: OutOpt,
    layer: Annotated[str, typer.Option(help="Layer to audit (see `fvlab layers`).")],
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    units: Annotated[str | None, typer.Option(help="Units: '0-9', '1,4,7' (default: all).")] = None,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="Fashion-MNIST split: test or train.")] = "test",
    images: Annotated[
        int | None, typer.Option(min=2, help="Use only the first N natural images.")
    ] = None,
    steps: Annotated[
        int, typer.Option(min=1, help="Render updates (all units in one batch).")
    ] = 256,
    top_k: Annotated[int, typer.Option(min=2, help="Top natural exemplars per unit.")] = 5,
    relu_redirect: Annotated[
        int,
        typer.Option(
            min=0, help="ReLU-gradient redirection for the first N updates of the render (0 = off)."
        ),
    ] = 16,
    metric: Annotated[str, typer.Option(help="Path similarity: spearman | pearson | cosine.")] = (
        "spearman"
    ),
    size: Annotated[int | None, typer.Option(help="Image side in px (image folders).")] = None,
    excess_threshold: Annotated[
        float, typer.Option(help="Flag when (FV − natural mean)/(natural max − mean) ≥ this.")
    ] = 10.0,
    jump_threshold: Annotated[
        float, typer.Option(help="Flag when the path's largest jump / natural range ≥ this.")
    ] = 0.01,
    silent_threshold: Annotated[
        float, typer.Option(help="Flag when the unit fires on < this fraction of images.")
    ] = 0.001,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 256,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
) -> None:
    """Audit the units of one layer: FV activation beyond the natural range, gate-like jumps
    on the pixel path exemplar → FV, silence on natural data, and path similarity of the FV
    with the unit's own exemplars. Writes OUT/audit.csv, OUT/audit.html and OUT/summary.json.

    Example: fvlab audit --model fmnist-cnn --layer relu3 --out out/audit-relu3

    Works on saved (e.g. fooled) models: fvlab audit --model out/fooled --layer relu3 ...
    """
    from fvlab.check.jobs import run_audit

    result = run_audit(
        out=out,
        layer=layer,
        model=model,
        weights=weights,
        units=units,
        data=data,
        split=split,
        images=images,
        steps=steps,
        top_k=top_k,
        relu_redirect=relu_redirect,
        metric=metric,
        size=size,
        excess_threshold=excess_threshold,
        jump_threshold=jump_threshold,
        silent_threshold=silent_threshold,
        batch_size=batch_size,
        seed=seed,
        device=device,
        show_progress=not quiet,
    )
    if not quiet:
        summary = result.summary()
        print(
            f"{summary['flagged']} of {summary['units']} units flagged "
            f"{summary['flag_counts']}; {out / 'audit.html'}; {out / 'summary.json'}"
        )
