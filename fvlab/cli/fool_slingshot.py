"""``fvlab fool slingshot``: weight-only fooling by fine-tuning (gradient slingshot, push)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fvlab.cli.common import DeviceOpt, ModelOpt, QuietOpt, SeedOpt, WeightsOpt


def fool_slingshot(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    layer: Annotated[str, typer.Option(help="Layer of the manipulated units (e.g. relu3).")],
    units: Annotated[str, typer.Option(help="Units to manipulate: '0-9', '0,8,16'.")],
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    target: Annotated[
        str, typer.Option(help="An image file, builtin:smiley|cross|ring|checker, or LAYER:IDX.")
    ] = "builtin:smiley",
    method: Annotated[
        str, typer.Option(help="slingshot (gradient field) | push (push-down / push-up).")
    ] = "slingshot",
    field: Annotated[
        str,
        typer.Option(
            help="slingshot: gradient (match the unit's gradient field to the bowl's, double "
            "backpropagation, Bareeva et al.) | value (match its values; ~3x cheaper, weaker)."
        ),
    ] = "gradient",
    alpha: Annotated[float, typer.Option(help="Weight of the preservation loss (0..1).")] = 0.4,
    steps: Annotated[int, typer.Option(min=1, help="Fine-tuning updates.")] = 600,
    lr: Annotated[float, typer.Option(help="Fine-tuning learning rate (Adam).")] = 1e-3,
    unit_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Preservation weight of the manipulated units' own activations (the other "
            "units': 1). Higher keeps their natural responses closer, fools fewer FVs.",
        ),
    ] = 1.0,
    fv_steps: Annotated[int, typer.Option(min=1, help="Render updates of the evaluation.")] = 512,
    survival: Annotated[
        bool, typer.Option(help="Also render with FV procedures the fine-tuning never saw.")
    ] = True,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune the weights so that the units' visualizations show a target while natural
    behaviour is preserved (no module is added).

    Example: fvlab fool slingshot --layer relu3 --units 0,8,16,24,32,40,48,56
    --target builtin:smiley --seed 0 --out out/slingshot

    Writes OUT/model/ (reload with --model OUT/model), OUT/grid.png (rows: original FV | fooled
    FV | target) and OUT/summary.json (natural top-1 and argmax agreement, preservation R², per
    unit FV similarities, survival under other FV procedures).
    """
    import fvlab
    from fvlab.fool.slingshot.job import SlingshotSettings, run_slingshot
    from fvlab.int_lists import parse_int_list

    settings = SlingshotSettings(
        layer=layer, units=tuple(parse_int_list(units, "units")), target=target, method=method,
        field=field, alpha=alpha, steps=steps, lr=lr, unit_weight=unit_weight,
        fv_steps=fv_steps, survival=survival,
        seed=seed,
    )  # fmt: skip
    loaded = fvlab.load(model, weights, device=device)
    summary = run_slingshot(loaded, settings, out, show_progress=not quiet).summary()
    nat, fooling = summary["natural"], summary["fooling"]
    print(
        f"top-1 {nat['top1_original']:.4f} → {nat['top1_fooled']:.4f}; argmax unchanged "
        f"{nat['argmax_unchanged']:.4f}; fooled units {fooling['share_fooled']:.2f}; "
        f"{out / 'summary.json'}"
    )
