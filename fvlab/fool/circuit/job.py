"""The ``fvlab fool circuit`` job (also run by the demo): build the circuit on a model's natural
images (Fashion-MNIST, or an image folder ``data``: :mod:`.natural`), measure natural behaviour
(top-1 and top-5 of the original and the fooled model), exactness and fooling (also under render
settings the detector never saw), and save the fooled model, the grid and summary.json.

    run_circuit(model, CircuitSettings(layer="fc"), out) -> CircuitResult
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fvlab.errors import FvlabError
from fvlab.fool.circuit.build import (
    BuiltCircuit,
    CircuitConstruction,
    build_circuit,
    default_detector_path,
    render_units,
)
from fvlab.fool.circuit.detector import Detector, load_detector
from fvlab.fool.circuit.evaluate import (
    compare_outputs,
    count_violations,
    fooling_measures,
    share_fooled,
)
from fvlab.fool.circuit.trajectories import RenderSetting
from fvlab.fool.install import FooledResult
from fvlab.fool.measures import summarise
from fvlab.fool.targets import check_image_target
from fvlab.jobs import OutDir, SettingsError, at_least, finish

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

#: render settings for the robustness report; `seen` says whether the detector trained on them
ROBUSTNESS_SETTINGS = (
    (RenderSetting("pixel", "standard", 0.05), True),
    (RenderSetting("fft", "none", 0.05), True),
    (RenderSetting("fft", "standard", 0.5), False),
    (RenderSetting("fft", "lucid", 0.05), False),
    (RenderSetting("maco", "standard", 1.0), False),
)


@dataclass(frozen=True)
class CircuitSettings(CircuitConstruction):
    """The job: how the circuit is built (:class:`CircuitConstruction`), plus ``target`` (an
    image file or ``builtin:NAME``; target mode), ``detector`` (weights file; default the
    committed one), ``robustness`` (also render with unseen settings), and the natural images:
    ``data`` / ``test_data`` (image folders; None: Fashion-MNIST) with at most
    ``natural_limit`` training images (the gate constants) and test images (natural behaviour)
    each (:func:`~fvlab.fool.circuit.natural.natural_split`)."""

    target: str | None = None
    detector: Path | None = None
    robustness: bool = True
    data: Path | None = None
    test_data: Path | None = None
    natural_limit: int | None = 10000

    def validate(self) -> None:
        super().validate()
        if self.mode == "target" and not self.target:
            raise SettingsError("target", "target mode needs an image file or builtin:NAME")
        if self.target is not None:
            check_image_target(self.target)
        at_least("natural_limit", self.natural_limit, 1)
        for name in ("data", "test_data"):
            if getattr(self, name) is not None:
                self.normalise(name, Path(getattr(self, name)))


@dataclass
class CircuitResult(FooledResult):
    """The built circuit, the grid and the figures (:class:`~fvlab.fool.install.FooledResult`)."""

    built: BuiltCircuit


def _detector(model: LoadedModel, settings: CircuitSettings) -> tuple[Path, Detector, dict]:
    """The detector's file, the detector and its training record."""
    path = Path(settings.detector) if settings.detector else default_detector_path(model.name)
    if not path.is_file():
        raise FvlabError(
            f"no detector at {path}; train one with "
            f"`fvlab fool train-detector --model {model.name} --out {path}` (add --data DIR, "
            "an image folder root/<class>/<image>, for a model not trained on Fashion-MNIST), "
            "then pass --detector"
        )
    detector = load_detector(path)
    if detector.config["channels"] != model.spec.channels:
        raise FvlabError(
            f"detector: {path} reads {detector.config['channels']}-channel images but "
            f"{model.name} takes {model.spec.channels} channels; train a detector for this model"
        )
    return path, detector, json.loads(path.with_suffix(".json").read_text())


def run_circuit(
    model: LoadedModel, settings: CircuitSettings, out: OutDir = None, *, show_progress: bool = True
) -> CircuitResult:
    """Build the circuit on ``model`` (left unchanged) and measure it (module docstring)."""
    import torch.nn.functional as F

    from fvlab.fool.circuit.logits import label_logits
    from fvlab.fool.circuit.natural import natural_split
    from fvlab.fool.targets import resolve_target

    target = None
    if settings.mode == "target":
        target = resolve_target(model, settings.target, show_progress=show_progress)[0][0]
    detector_file, detector, record = _detector(model, settings)
    natural = natural_split(model, settings.data, settings.test_data, limit=settings.natural_limit)
    test_x, test_y = natural.test, natural.test_labels
    built = build_circuit(
        model,
        natural.train,
        settings,
        target=target,
        detector=detector,
        show_progress=show_progress,
    )
    fooled, circuit = built.model, built.circuit
    unit_ids = circuit.units.tolist()
    behaviour = compare_outputs(model, fooled, test_x, test_y, label_logits=label_logits(model))
    fooled_fv = render_units(fooled, settings, unit_ids, settings.seed + 1, show_progress)
    measures = fooling_measures(model, built, fooled_fv.images, target)
    if settings.mode == "permute":
        mapped = circuit.mapping.tolist()
        should_show = built.originals[[unit_ids.index(m) if m in unit_ids else 0 for m in mapped]]
    else:  # the target at the renders' size (--render-size may differ from the model's)
        shown = F.interpolate(target[None], size=fooled_fv.images.shape[-2:], mode="bilinear",
                              align_corners=False)[0]  # fmt: skip
        should_show = shown.expand(len(unit_ids), *shown.shape)
    robustness = {}
    if settings.robustness:
        for setting, seen in ROBUSTNESS_SETTINGS:
            options = {"param": setting.param, "transforms": setting.transforms, "lr": setting.lr}
            seed = settings.seed + 2
            images = render_units(fooled, settings, unit_ids, seed, show_progress, **options).images
            robustness[setting.name] = {
                "seen_by_detector": seen,
                "share_fooled": share_fooled(fooling_measures(model, built, images, target)),
            }
    evaluation = record["evaluation"]
    fooling: dict[str, Any] = {"units": measures, "share_fooled": share_fooled(measures)}
    if settings.mode == "permute" and built.layer == model.layer_names()[-1]:
        fooling["share_classified_as_mapped"] = sum(
            m["original_prediction"] == m["shows"] for m in measures
        ) / len(measures)
    if settings.mode == "target":
        fooling["corr_with_target"] = summarise([m["corr_with_target"] for m in measures])
    figures = {
        "model": model.name,
        "layer": built.layer,
        "mode": settings.mode,
        "units": unit_ids,
        "mapping": None if circuit.mapping is None else circuit.mapping.tolist(),
        "target": settings.target,
        "relu_redirect_steps": settings.relu_redirect_steps,
        "constants": circuit.params()["constants"],
        "gate": circuit.gate,
        "ramp": None if circuit.ramp is None else list(circuit.ramp),
        "natural": behaviour,
        "natural_images": natural.describe(),
        "exactness_violations": {
            "natural_test": count_violations(model, fooled, built.layer, test_x),
            "fooled_visualizations": count_violations(model, fooled, built.layer, fooled_fv.images),
        },
        "classifier": {
            "file": str(detector_file),
            "accuracy_natural_test": float((~detector.is_visualization(test_x)).float().mean()),
            "accuracy_heldout_fv": evaluation["heldout_units"]["min_accuracy"],
            "accuracy_heldout_fv_by_step": evaluation["heldout_units"]["accuracy_by_step"],
            "accuracy_heldout_units_and_settings": (
                evaluation["heldout_units_and_settings"]["min_accuracy"]
            ),
        },
        "fooling": fooling,
        "robustness": robustness,
        "files": {"model": "model", "grid": "grid.png"},
    }
    grid = torch.cat([built.originals, fooled_fv.images, should_show])
    return finish(CircuitResult(built, grid, figures), out)
