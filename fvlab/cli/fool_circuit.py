"""``fvlab fool circuit`` and ``fvlab fool train-detector``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fvlab.cli.common import DeviceOpt, ModelOpt, QuietOpt, SeedOpt, UnitsOpt, WeightsOpt


def train_detector(
    out: Annotated[Path, typer.Option("--out", "-o", help="Detector weights file (.pt).")],
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    seed: SeedOpt = 0,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 6000,
    cache: Annotated[
        Path | None,
        typer.Option(help="File for the rendered trajectories: reused if present, else written."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the natural-vs-visualization detector of the fooling circuit (~50 min, 2 cores).

    Example: fvlab fool train-detector --out fvlab/fool/weights/fmnist-cnn-detector.pt

    Renders visualization trajectories (18 log-spaced snapshots from 1 to 512 updates) of the
    10 logits and every unit of bn1…bn5 and relu1…relu5 except 40 held-out ones (4 channels per
    block, before and after the ReLU) under 7 render settings, plus template units drawing 48
    random shapes and 48 natural images (the target mode's visualizations); trains on them vs
    the natural training images; evaluates on natural test images, on the held-out units under
    the training settings and 3 unseen ones, and on held-out targets (the 4 built-ins, 12
    natural test images). The committed detector was made by exactly the example command.
    """
    import fvlab
    from fvlab.fool.circuit import DetectorSettings, run_train_detector

    settings = DetectorSettings(seed=seed, steps=steps, cache=cache)
    result = run_train_detector(fvlab.load(model, weights), settings, out, show_progress=not quiet)
    ev = result.record["evaluation"]
    print(
        f"natural test accuracy {ev['natural_test']['accuracy']:.4f}; held-out units (min over "
        f"steps) {ev['heldout_units']['min_accuracy']:.4f}; held-out units and settings "
        f"{ev['heldout_units_and_settings']['min_accuracy']:.4f}; weights in {out}"
    )


def circuit(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    layer: Annotated[str, typer.Option(help="Layer whose units are gated (e.g. fc, relu3).")],
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    mode: Annotated[str, typer.Option(help="permute | target.")] = "permute",
    offset: Annotated[int, typer.Option(help="permute: unit i shows unit i + offset.")] = 1,
    target: Annotated[
        str | None, typer.Option(help="target: an image file or builtin:smiley|cross|ring|checker.")
    ] = None,
    units: UnitsOpt = None,
    detector: Annotated[
        Path | None, typer.Option(help="Detector weights (default: the committed one).")
    ] = None,
    margin: Annotated[float, typer.Option(help="Safety margin of the gate constants.")] = 1.0,
    gate: Annotated[
        str,
        typer.Option(
            help="hard (P1: v = [detector logit > 0]) | ramp (v rises continuously from 0 to 1 "
            "over --ramp-width logit units above the natural images' largest logit)."
        ),
    ] = "hard",
    ramp_width: Annotated[
        float, typer.Option(help="ramp: width of the gate's ramp (detector-logit units).")
    ] = 4.0,
    robustness: Annotated[
        bool, typer.Option(help="Also render with settings the detector never saw.")
    ] = True,
    relu_redirect: Annotated[
        int,
        typer.Option(
            help="lucid's ReLU-gradient redirection for the first N updates of every FV render "
            "(lets units that are dead on the start image get a visualization; 0 = off)."
        ),
    ] = 16,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
) -> None:
    """Install a classifier-gated fooling circuit and measure it.

    Examples:
      fvlab fool circuit --layer fc --mode permute --offset 1 --out out/circuit-fc
      fvlab fool circuit --layer fc --mode target --target builtin:smiley --out out/circuit-t
      fvlab fool circuit --layer relu3 --gate ramp --out out/circuit-ramp   (continuous gate)

    Writes OUT/model/ (reload with --model OUT/model), OUT/grid.png (rows: original FV | fooled
    FV | what it should show) and OUT/summary.json (natural behaviour, detector accuracy, per-unit
    fooling measures, robustness to unseen render settings).
    """
    import fvlab
    from fvlab.fool.circuit import CircuitSettings, run_circuit
    from fvlab.int_lists import parse_int_list

    settings = CircuitSettings(
        layer=layer, mode=mode, offset=offset, target=target, detector=detector, margin=margin,
        units=parse_int_list(units, "units") if units else None, robustness=robustness,
        relu_redirect_steps=relu_redirect, seed=seed, gate=gate, ramp_width=ramp_width,
    )  # fmt: skip
    loaded = fvlab.load(model, weights, device=device)
    summary = run_circuit(loaded, settings, out, show_progress=not quiet).summary()
    nat = summary["natural"]
    print(
        f"top-1 {nat['top1_original']:.4f} → {nat['top1_fooled']:.4f}; identical outputs "
        f"{nat['fraction_identical']:.4f}; fooled units {summary['fooling']['share_fooled']:.2f}; "
        f"{out / 'summary.json'}"
    )
