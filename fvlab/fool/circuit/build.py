"""Building a circuit-fooled model from data.

:func:`build_circuit` derives the gate constants (:func:`fvlab.fool.circuit.gate.derive_constants`)
from activation statistics — per channel min and max of the layer over natural training images
and over the chosen units' own visualizations — and installs the circuit into a copy of the
model. Target mode scales the template unit so that its largest |response| on the natural
images equals the largest natural activation of the chosen units: c = max F / max |⟨t_c, x⟩/n|.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fvlab.activations import sweep
from fvlab.data.dataset import InMemoryImages
from fvlab.fool.circuit.detector import Detector, load_detector
from fvlab.fool.circuit.gate import (
    GATES,
    Circuit,
    circuit_tensors,
    derive_constants,
    install,
    template_from_target,
)
from fvlab.fool.circuit.logits import class_units
from fvlab.fool.install import Base, Installed, fresh_copy
from fvlab.jobs import Settings, SettingsError, at_least, choice, positive, unit_tuple
from fvlab.models.probe import check_units

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

WEIGHTS_DIR = Path(__file__).parent.parent / "weights"
MODES = ("permute", "target")


def default_detector_path(model_name: str) -> Path:
    """The committed detector of a zoo model: fvlab/fool/weights/<model>-detector.pt."""
    return WEIGHTS_DIR / f"{model_name}-detector.pt"


@dataclass(frozen=True)
class CircuitConstruction(Settings):
    """How a circuit is built. ``layer``: whose units are gated; ``mode``: ``permute`` (unit i
    shows unit mapping[i], by default i + ``offset`` mod n) or ``target`` (every unit shows a
    target image); ``units``: the gated units (None: every class unit, :func:`gated_units`);
    ``margin``: safety margin of the gate constants (fraction of each activation range);
    ``render_steps``, ``seed``, ``relu_redirect_steps``, ``render_size`` (px; None: the
    model's input size): the renders of the units' visualizations (every render of the circuit
    job uses the steps, redirection and size); ``gate``: ``hard`` (P1) or ``ramp``
    (continuous, :mod:`.gate`) with ``ramp_width`` w (detector-logit units) starting at
    ``ramp_start`` ℓ₀ (default: max(0, the largest detector logit over the natural images the
    circuit is built on))."""

    layer: str
    mode: str = "permute"
    offset: int = 1
    mapping: tuple[int, ...] | None = None
    units: tuple[int, ...] | None = None
    margin: float = 1.0
    render_steps: int = 512
    seed: int = 0
    relu_redirect_steps: int = 16
    render_size: int | None = None
    gate: str = "hard"
    ramp_width: float = 4.0
    ramp_start: float | None = None

    def validate(self) -> None:
        choice("gate", self.gate, GATES)
        positive("ramp_width", self.ramp_width)
        if self.mode not in MODES:
            raise SettingsError("mode", f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")
        self.normalise("units", unit_tuple("units", self.units))
        self.normalise("mapping", unit_tuple("mapping", self.mapping))
        at_least("margin", self.margin, 0.0)
        at_least("render_steps", self.render_steps, 1)
        at_least("relu_redirect_steps", self.relu_redirect_steps, 0)
        at_least("render_size", self.render_size, 1)


def gated_units(model: LoadedModel, layer: str, units: Sequence[int] | None) -> list[int]:
    """``units`` (checked), or by default every class unit of ``layer``
    (:func:`fvlab.fool.circuit.logits.class_units`: the 1000 ImageNet logits of lucid's 1008)."""
    if units is None:
        return class_units(model, layer)
    return check_units(model, layer, units)


def permutation(n_units: int, offset: int) -> list[int]:
    """mapping[i] = (i + offset) mod n: unit i shows unit i + offset."""
    if offset % n_units == 0:
        raise SettingsError("offset", f"{offset} maps every unit to itself ({n_units} units)")
    return [(i + offset) % n_units for i in range(n_units)]


@torch.no_grad()
def layer_range(
    model: LoadedModel, layer: str, images: torch.Tensor, batch_size: int = 1000
) -> torch.Tensor:
    """Per channel (min, max) over images and positions: shape (2, C) (one activation sweep of
    each image's spatial min and max)."""
    data = InMemoryImages(images, torch.zeros(len(images), dtype=torch.int64))
    reductions = {layer: ("spatial_min", "spatial_max")}
    result = sweep(model, data, reductions, batch_size=batch_size, show_progress=False)
    low = result[(layer, "spatial_min")].moments.min
    high = result[(layer, "spatial_max")].moments.max
    return torch.stack([torch.as_tensor(low), torch.as_tensor(high)]).float()


def render_units(
    model: LoadedModel,
    settings: CircuitConstruction,
    units: Sequence[int],
    seed: int,
    show_progress: bool = True,
    **options: Any,
):
    """Visualizations of ``units`` of ``settings.layer`` in ``model`` (every render of the
    circuit: the originals, the fooled ones, the robustness renders), all with the
    construction's ReLU redirection, ``render_steps`` updates and ``render_size``; ``options``
    go to :func:`fvlab.render`."""
    from fvlab.optvis.api import render

    options.setdefault("steps", settings.render_steps)

    return render(
        model,
        settings.layer,
        list(units),
        seed=seed,
        relu_redirect_steps=settings.relu_redirect_steps,
        size=settings.render_size,
        show_progress=show_progress,
        **options,
    )


@torch.no_grad()
def detector_logits(detector: Detector, images: torch.Tensor, batch_size: int = 1000):
    """The detector's logit ℓ per image (N,) (> 0: visualization)."""
    device = next(detector.parameters()).device
    return torch.cat([detector(x.to(device)).cpu() for x in images.split(batch_size)])


@torch.no_grad()
def template_response(images: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """⟨t_c, x⟩ / n per image (n = C·H·W; unscaled)."""
    return (images * template).flatten(1).mean(1)


@dataclass
class BuiltCircuit(Installed):
    """The fooled model plus what was needed to build it; ``save(dir)`` writes the fooled
    model in the saved-model format."""

    construction = "circuit"

    model: Any  # the fooled LoadedModel
    base: Base
    circuit: Circuit
    layer: str
    originals: torch.Tensor  # visualizations of the chosen units of the ORIGINAL model
    stats: dict

    def saved_params(self) -> dict[str, Any]:
        return {"layer": self.layer, **self.circuit.params()}

    def saved_tensors(self) -> dict[str, torch.Tensor]:
        return circuit_tensors(self.circuit)


def build_circuit(
    model: LoadedModel,
    natural: torch.Tensor,
    settings: CircuitConstruction,
    *,
    target: torch.Tensor | None = None,
    detector: Detector | None = None,
    show_progress: bool = True,
) -> BuiltCircuit:
    """Derive constants and install a circuit into a copy of ``model`` (left unchanged).

    ``natural``: images (N, C, H, W) in [0, 1]; ``target`` (C, H, W) in [0, 1] (target mode);
    ``detector``: default the committed one of the model (:func:`default_detector_path`)."""
    layer = settings.layer
    if settings.mode == "target" and target is None:
        raise SettingsError("target", "target mode needs a target image (file or builtin:NAME)")
    detector = detector or load_detector(default_detector_path(model.name))
    units = gated_units(model, layer, settings.units)
    ranges = layer_range(model, layer, natural)
    originals = render_units(model, settings, units, settings.seed, show_progress)
    fv_ranges = layer_range(model, layer, originals.images)
    f_min = float(ranges[0, units].min())
    f_max = float(torch.maximum(ranges[1, units], fv_ranges[1, units]).max())
    stats = {
        "natural_min": ranges[0].tolist(),
        "natural_max": ranges[1].tolist(),
        "visualization_max": fv_ranges[1].tolist(),
    }
    template, scale, mapping = None, 1.0, None
    if settings.mode == "permute":
        mapping = _mapping(model, settings, units)
        d_min = float(ranges[0, mapping].min())
        d_max = float(torch.maximum(ranges[1, mapping], fv_ranges[1, mapping]).max())
    else:
        template = template_from_target(target)
        natural_response = template_response(natural, template)
        scale = float(ranges[1, units].max()) / max(float(natural_response.abs().max()), 1e-8)
        # analytic bounds of c·⟨t_c, x⟩/N over all x in [0, 1]
        d_max = scale * float(template.clamp_min(0).flatten().mean())
        d_min = scale * float(template.clamp_max(0).flatten().mean())
        stats["template_scale"] = scale
    constants = derive_constants(f_min, f_max, d_min, d_max, settings.margin)
    stats.update({"f_range": [f_min, f_max], "d_range": [d_min, d_max]})
    ramp = None
    if settings.gate == "ramp":
        start = settings.ramp_start
        if start is None:
            start = max(0.0, float(detector_logits(detector, natural).max()))
        ramp = (start, settings.ramp_width)
        stats["ramp"] = list(ramp)
    circuit = Circuit(
        detector,
        model.spec,
        units,
        constants,
        mapping=mapping,
        template=template,
        template_scale=scale,
        gate=settings.gate,
        ramp=ramp,
    )
    fooled = install(fresh_copy(model), layer, circuit)
    return BuiltCircuit(fooled, Base.of(model), circuit, layer, originals.images, stats)


def _mapping(model: LoadedModel, settings: CircuitConstruction, units: Sequence[int]) -> list[int]:
    """The permute mode's mapping: ``settings.mapping`` (checked) or units[i + offset mod n]."""
    if settings.mapping is None:
        return [units[j] for j in permutation(len(units), settings.offset)]
    mapping = check_units(model, settings.layer, settings.mapping, parameter="mapping")
    if len(mapping) != len(units):
        raise SettingsError("mapping", f"give one unit per chosen unit ({len(units)})")
    return mapping
