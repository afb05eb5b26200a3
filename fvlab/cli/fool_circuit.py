"""``fvlab fool circuit`` and ``fvlab fool train-detector``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fvlab.cli.common import (
    DataOpt,
    DeviceOpt,
    EngineOpt,
    ModelOpt,
    QuietOpt,
    RayAddressOpt,
    ResumeOpt,
    SeedOpt,
    UnitsOpt,
    WeightsOpt,
    settings_options,
)
from fvlab.fool.circuit.settings import DetectorSettings
from fvlab.jobs import defaults

_DETECTOR = defaults(DetectorSettings)


def train_detector(
    out: Annotated[Path, typer.Option("--out", "-o", help="Detector weights file (.pt).")],
    model: ModelOpt = "fmnist-cnn",
    weights: WeightsOpt = None,
    data: DataOpt = None,
    test_data: Annotated[
        Path | None,
        typer.Option(help="Image folder of natural TEST images (default: a split of --data)."),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated layers whose units train the detector (default: "
            "fmnist-cnn's committed plan; other models: the logits + 4 probed layers)."
        ),
    ] = None,
    seed: SeedOpt = 0,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Units per optimisation (default: a whole group at once)."),
    ] = None,
    detector_batch_size: Annotated[
        int, typer.Option(min=1, help="Detector training images per class per step.")
    ] = _DETECTOR.batch_size,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    resume: ResumeOpt = False,
    quiet: QuietOpt = False,
    **options,
) -> None:
    """Train the natural-vs-visualization detector of the fooling circuit, for any model.

    Examples:
      fvlab fool train-detector --out fvlab/fool/weights/fmnist-cnn-detector.pt
      fvlab fool train-detector --model inceptionv1 --weights inception5h.pth \
          --data imagenet/train --test-data imagenet/val --out out/inceptionv1-detector.pt

    Renders visualization trajectories (log-spaced snapshots 1…512 updates, or up to
    --max-step) of the model's own units under 7 render settings, plus template units drawing
    random shapes and natural images (the target mode's visualizations); trains on them vs
    natural training images; evaluates on natural test images, on held-out units (for the
    layer to be fooled, --fool-layer, default the logits: held-out whole classes) under the
    training settings and 3 unseen ones, and on held-out targets. fmnist-cnn's default plan
    (every unit of fc, bn1…bn5, relu1…relu5 but 40 held out) made the committed detector.
    Natural images: Fashion-MNIST, or --data DIR (root/<class>/<image>; without --test-data,
    image i of DIR tests when i % 10 == 0). Each rendering shard is kept in
    --render-dir (default OUT-stem-render/ next to OUT) so --resume finishes an interrupted
    run; --engine ray renders shards as Ray tasks. The work is
    fvlab.fool.circuit.run_train_detector.
    """
    import fvlab
    from fvlab.cli.common import engine_from_options
    from fvlab.fool.circuit import DetectorSettings, run_train_detector

    settings = DetectorSettings(
        seed=seed, data=data, test_data=test_data, layers=layers, render_batch=batch_size,
        batch_size=detector_batch_size,
        **options,
    )  # fmt: skip
    runner = engine_from_options(engine, ray_address)
    result = run_train_detector(
        fvlab.load(model, weights), settings, out, show_progress=not quiet, engine=runner,
        resume=resume,
    )  # fmt: skip
    ev = result.record["evaluation"]
    print(
        f"natural test accuracy {ev['natural_test']['accuracy']:.4f}; held-out units (min over "
        f"steps) {ev['heldout_units']['min_accuracy']:.4f}; held-out units and settings "
        f"{ev['heldout_units_and_settings']['min_accuracy']:.4f}; weights in {out}"
    )


settings_options(
    DetectorSettings,
    {
        "fool_layer": "Layer the circuit will fool (default: the logits); part of its units "
        "are held out.",
        "heldout_fraction": "Share of the fool layer's units held out (whole classes).",
        "units_per_layer": "Training units per layer, spread over its channels (0: all).",
        "heldout_per_layer": "Held-out units per layer other than the fool layer.",
        "max_step": "Last snapshot step (≤ 512): a dry run can stop at e.g. 4.",
        "targets": "Target-mode training targets (half random shapes, half natural images).",
        "heldout_natural_targets": "Natural test images used as held-out targets.",
        "max_settings": "Use only the first N render settings of each list (a dry run).",
        "natural_limit": "At most this many natural training and test images each.",
        "render_dir": "Folder for the rendered trajectory shards (resumable).",
        "steps": ("--detector-steps", "Detector training steps."),
    },
)(train_detector)


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
    data: DataOpt = None,
    test_data: Annotated[
        Path | None,
        typer.Option(help="Image folder of natural TEST images (default: a split of --data)."),
    ] = None,
    natural_limit: Annotated[
        int, typer.Option(min=1, help="At most this many natural training and test images each.")
    ] = 10000,
    render_steps: Annotated[int, typer.Option(min=1, help="Updates of every FV render.")] = 512,
    render_size: Annotated[
        int | None, typer.Option(min=1, help="Side (px) of every FV render (default: the model's).")
    ] = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
) -> None:
    """Install a classifier-gated fooling circuit and measure it.

    Examples:
      fvlab fool circuit --layer fc --mode permute --offset 1 --out out/circuit-fc
      fvlab fool circuit --layer fc --mode target --target builtin:smiley --out out/circuit-t
      fvlab fool circuit --layer relu3 --gate ramp --out out/circuit-ramp   (continuous gate)
      fvlab fool circuit --model inceptionv1 --weights inception5h.pth --detector D.pt \
          --data imagenet/val --layer softmax2_pre_activation_matmul --out out/circuit-iv1

    Natural images: Fashion-MNIST, or --data DIR (root/<class>/<image>; without --test-data,
    image i of DIR is a test image when i % 10 == 0); the gate constants come from the
    training images, the natural behaviour (top-1 and top-5 of the original and the fooled
    model) from the test images. On lucid's InceptionV1 logits the circuit gates the 1000
    ImageNet logits (1…1000) of the 1008 by default; label k of a folder is logit 1 + k.

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
        data=data, test_data=test_data, natural_limit=natural_limit, render_steps=render_steps,
        render_size=render_size,
    )  # fmt: skip
    loaded = fvlab.load(model, weights, device=device)
    summary = run_circuit(loaded, settings, out, show_progress=not quiet).summary()
    nat = summary["natural"]
    print(
        f"top-1 {nat['top1_original']:.4f} → {nat['top1_fooled']:.4f}; top-5 "
        f"{nat['top5_original']:.4f} → {nat['top5_fooled']:.4f}; identical outputs "
        f"{nat['fraction_identical']:.4f}; fooled units {summary['fooling']['share_fooled']:.2f}; "
        f"{out / 'summary.json'}"
    )
