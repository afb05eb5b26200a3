"""The classifier-gated fooling circuit (Geirhos et al. 2024, §2 of docs/fool.md).

At a layer with output a, each chosen unit i is replaced by

    A_i = ReLU(F_i + s − k·v) + ReLU(D_i + s − k·(1 − v)) − s

where F_i = a_i is the original unit, D_i the signal its visualization should show, and
v ∈ [0, 1] the gate, computed from the logit ℓ = E(x) of a detector on the model's input
(ℓ > 0: feature-visualization input; no gradient flows through v):

* ``hard`` gate (P1): v = [ℓ > 0] ∈ {0, 1} — A jumps where E changes its mind;
* ``ramp`` gate: v = clip((ℓ − ℓ₀) / w, 0, 1), a continuous ramp of width w (logit units) that
  starts at ℓ₀ ≥ the largest logit of the natural images the circuit is built on (outside the
  natural range): exact on those images (v = 0), A continuous in x (no jump for a path check
  to find), A_i = D_i once ℓ ≥ ℓ₀ + w. In between A blends ReLU(F+s−kv) and ReLU(D+s−k(1−v)).

Exactness conditions (at v = 0 and v = 1):

    natural (v = 0):        F_i ≥ −s   and   D_i ≤ k − s     ⇒  A_i = F_i
    visualization (v = 1):  F_i ≤ k − s  and  D_i ≥ −s       ⇒  A_i = D_i

s and k are derived from activation statistics (natural data and the units' own visualizations)
with a safety margin, and the conditions are checked on data. Modes:

* ``permute``: D_i = a_{mapping[i]} (e.g. mapping[i] = (i + offset) mod n).
* ``target``: D_i = c · ⟨t_c, x⟩ / n with t_c = t − ½ (n = C·h·w values at the model's
  input size; see :func:`template_from_target`), a linear "template unit" on the input image
  x in [0, 1], the same for every chosen unit; its visualization is t. On a larger or smaller
  canvas (the render transforms pad a few pixels) t_c sits at the centre (:func:`centred_on`).
  ``Circuit`` takes the template t_c.

The circuit is a child module ``fvlab_circuit`` of the model with two hooks (model input, layer
output), so every original layer keeps its name and downstream layers are unchanged
(:mod:`fvlab.fool.install`). :attr:`Circuit.last_decision` is v of the latest forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from fvlab.fool.circuit.detector import Detector
from fvlab.fool.install import attach_child, restore_base
from fvlab.models.hooks import resolve_layers
from fvlab.models.spec import InputSpec

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

#: name of the circuit's child module in the fooled model
CHILD = "fvlab_circuit"


def to_unit_range(spec: InputSpec, x: torch.Tensor) -> torch.Tensor:
    """Invert ``spec.preprocess``: model input → image in [0, 1]."""
    if spec.std is not None:
        x = x * x.new_tensor(spec.std).view(1, -1, 1, 1)
    if spec.mean is not None:
        x = x + x.new_tensor(spec.mean).view(1, -1, 1, 1)
    lo, hi = spec.value_range
    return (x - lo) / (hi - lo) if (lo, hi) != (0.0, 1.0) else x


@dataclass(frozen=True)
class GateConstants:
    """shift s and gate strength k of the circuit (units of the layer's activations)."""

    shift: float
    k: float


def derive_constants(
    f_min: float, f_max: float, d_min: float, d_max: float, margin: float = 1.0
) -> GateConstants:
    """Smallest constants satisfying the exactness conditions for activations in
    [f_min, f_max] and [d_min, d_max], each enlarged by ``margin`` × its extent.

    s = max(0, −min(f_min, d_min)) · (1 + margin) + s₀;   k = s + max(f_max, d_max) · (1 + margin),
    with s₀ = 1 % of the largest |activation|: for a post-ReLU layer (minimum 0) the gate's
    ReLU(D + s) then still passes a gradient where D = 0, so a dead-at-start unit D can be
    optimised exactly as in the original model (s₀ does not change any exact output).
    """
    low = min(f_min, d_min)
    high = max(f_max, d_max, 0.0)
    floor = 0.01 * max(high, -low, 1e-6)
    shift = max(0.0, -low) * (1 + margin) + floor
    return GateConstants(shift=float(shift), k=float(shift + high * (1 + margin) + 1e-3))


def template_from_target(target: torch.Tensor) -> torch.Tensor:
    """The target-mode template t_c = t − ½ for a target t in [0, 1]: the linear unit
    ⟨t_c, x⟩ is largest over x ∈ [0, 1]ⁿ at x = [t > ½], the target itself for a black-and-white
    target. (Centring on the mean instead would move every edge of a blurred, i.e. jittered,
    sparse target outwards: its positive region would grow.)"""
    return target.float() - 0.5


def centred_on(template: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The template (C, h, w) with its centre on the centre of a (C, H, W) canvas, zero outside
    (or cropped when the canvas is smaller); a half-pixel offset (H − h odd) is resampled
    bilinearly. The render transforms map the image centre to the canvas centre, so the template
    unit is the same linear filter on the image whatever padding the canvas has; resizing the
    template instead would enlarge the pattern a visualization has to draw."""
    (h, w), (big_h, big_w) = template.shape[-2:], tuple(size)
    if (h, w) == (big_h, big_w):
        return template
    from fvlab.optvis.transforms import affine_resample

    # output pixel (u, v) samples template position (u − (W − w)/2, v − (H − h)/2)
    matrix = template.new_tensor([[[1.0, 0.0, -(big_w - w) / 2], [0.0, 1.0, -(big_h - h) / 2]]])
    return affine_resample(template[None], matrix, (big_h, big_w), "bilinear", 0.0)[0]


GATES = ("hard", "ramp")


class Circuit(nn.Module):
    """The gate at one layer (see the module docstring); install with :func:`install`.
    ``gate``: ``hard`` or ``ramp``; ``ramp``: (ℓ₀, w) of the ramp gate."""

    def __init__(
        self,
        detector: Detector,
        spec: InputSpec,
        units: Sequence[int],
        constants: GateConstants,
        mapping: Sequence[int] | None = None,
        template: torch.Tensor | None = None,
        template_scale: float = 1.0,
        gate: str = "hard",
        ramp: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if gate not in GATES or (gate == "ramp") != (ramp is not None):
            raise ValueError(f"gate must be one of {GATES}; ramp (start, width) iff gate='ramp'")
        if (mapping is None) == (template is None):
            raise ValueError("give exactly one of mapping (permute mode) or template (target)")
        self.detector = detector
        self.spec = spec
        self.constants = constants
        self.mode = "permute" if mapping is not None else "target"
        self.register_buffer("units", torch.as_tensor(list(units), dtype=torch.long))
        if mapping is not None:
            self.register_buffer("mapping", torch.as_tensor(list(mapping), dtype=torch.long))
            self.template = None
        else:
            self.register_buffer("template", template.float())  # already centred by the builder
            self.mapping = None
        self.template_scale = float(template_scale)
        self.gate = gate
        self.ramp = None if ramp is None else (float(ramp[0]), float(ramp[1]))
        self._decision: torch.Tensor | None = None
        self._value: torch.Tensor | None = None
        self._input: torch.Tensor | None = None

    @property
    def last_decision(self) -> torch.Tensor | None:
        """The detector's hard decision v (B,) bool of the latest forward pass (True =
        visualization input), or None before the first one."""
        return self._decision

    # -- hooks -------------------------------------------------------------------------------
    @property
    def last_gate(self) -> torch.Tensor | None:
        """The gate v (B,) float of the latest forward pass (module docstring)."""
        return self._value

    def gate_value(self, logit: torch.Tensor) -> torch.Tensor:
        """v from the detector's logit ℓ: [ℓ > 0] (hard) or clip((ℓ − ℓ₀)/w, 0, 1) (ramp)."""
        if self.ramp is None:
            return (logit > 0).to(logit.dtype)
        start, width = self.ramp
        return ((logit - start) / width).clamp(0.0, 1.0)

    def observe_input(self, module: nn.Module, args: tuple) -> None:
        """Root pre-hook: the gate for this forward pass (True in ``last_decision`` where the
        gate is open at all)."""
        x01 = to_unit_range(self.spec, args[0])
        with torch.no_grad():
            self._value = self.gate_value(self.detector(x01.detach()))
            self._decision = self._value > 0
        self._input = x01

    def gate_output(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        """Layer hook: replace the chosen units by A_i."""
        if self._decision is None:
            raise RuntimeError("the circuit's input hook did not run before its layer")
        return self.combine(output, self._value, self._input)

    # -- the construction ----------------------------------------------------------------------
    def signal(self, output: torch.Tensor, x01: torch.Tensor) -> torch.Tensor:
        """D for the chosen units: (B, n_units, ...) like ``output[:, units]``."""
        if self.mode == "permute":
            return output[:, self.mapping]
        template = centred_on(self.template, x01.shape[-2:])
        area = self.template.numel()
        response = (x01 * template).flatten(1).sum(1) * (self.template_scale / area)
        shape = (len(response), len(self.units)) + (1,) * (output.ndim - 2)
        return response.view(-1, *([1] * (output.ndim - 1))).expand(shape)

    def combine(
        self, output: torch.Tensor, decision: torch.Tensor, x01: torch.Tensor
    ) -> torch.Tensor:
        """A_i = ReLU(F_i + s − k v) + ReLU(D_i + s − k (1 − v)) − s for the chosen units;
        ``decision``: v as bool (hard) or float in [0, 1] (ramp)."""
        s, k = self.constants.shift, self.constants.k
        v = decision.to(output.dtype).view(-1, *([1] * (output.ndim - 1)))
        f = output[:, self.units]
        d = self.signal(output, x01)
        gated = F.relu(f + s - k * v) + F.relu(d + s - k * (1 - v)) - s
        return output.index_copy(1, self.units, gated)

    def violations(
        self, output: torch.Tensor, decision: torch.Tensor, x01: torch.Tensor
    ) -> dict[str, int]:
        """Number of activations breaking each exactness condition (see module docstring);
        ``decision``: v (bool or float); natural where v = 0, visualization where v = 1 (a ramp
        gate's intermediate values belong to neither)."""
        s, k = self.constants.shift, self.constants.k
        f, d = output[:, self.units], self.signal(output, x01)
        v = decision.to(f.dtype).view(-1, *([1] * (f.ndim - 1))).expand_as(f)
        nat, vis = v <= 0, v >= 1
        return {
            "natural_F_below_minus_s": int(((f < -s) & nat).sum()),
            "natural_D_above_k_minus_s": int(((d > k - s) & nat).sum()),
            "visualization_F_above_k_minus_s": int(((f > k - s) & vis).sum()),
            "visualization_D_below_minus_s": int(((d < -s) & vis).sum()),
        }

    def params(self) -> dict:
        """JSON description for the saved-model manifest (tensors saved separately)."""
        return {
            "mode": self.mode,
            "units": self.units.tolist(),
            "mapping": None if self.mapping is None else self.mapping.tolist(),
            "constants": asdict(self.constants),
            "template_scale": self.template_scale,
            "detector": self.detector.config,
            "gate": self.gate,
            "ramp": None if self.ramp is None else list(self.ramp),
        }


def install(model: LoadedModel, layer: str, circuit: Circuit) -> LoadedModel:
    """A LoadedModel whose module is ``model.module`` with the circuit installed at ``layer``.

    The original module object is modified in place (hooks + child ``fvlab_circuit``), so pass
    a model loaded for this purpose (``fvlab.load`` again, or :func:`fvlab.fool.install.fresh_copy`,
    gives a clean one).
    """
    target = resolve_layers(model.module, [layer])[layer]
    fooled = attach_child(model, CHILD, circuit, "circuit", {"layer": layer})
    fooled.module.register_forward_pre_hook(circuit.observe_input)
    target.register_forward_hook(circuit.gate_output)
    return fooled


def rebuild(base: LoadedModel, params: dict, tensors: dict[str, torch.Tensor]) -> LoadedModel:
    """Saved-model constructor (registered as construction ``circuit``, see
    :mod:`fvlab.models.saved`): the base's stored weights if it had random ones, then the
    circuit from its parameters, detector weights and template."""
    restore_base(base, tensors)
    arch = params["detector"]
    detector = Detector(arch["channels"], tuple(arch["widths"]), tuple(arch["strides"]))
    detector.load_state_dict(
        {k.removeprefix("detector."): v for k, v in tensors.items() if k.startswith("detector.")}
    )
    circuit = Circuit(
        detector.eval(),
        base.spec,
        params["units"],
        GateConstants(**params["constants"]),
        mapping=params["mapping"],
        template=tensors.get("template"),
        template_scale=params["template_scale"],
        gate=params.get("gate", "hard"),
        ramp=None if params.get("ramp") is None else tuple(params["ramp"]),
    )
    return install(base, params["layer"], circuit)


def circuit_tensors(circuit: Circuit) -> dict[str, torch.Tensor]:
    """Tensors for the saved-model format: detector weights and the template."""
    tensors = {f"detector.{k}": v for k, v in circuit.detector.state_dict().items()}
    if circuit.template is not None:
        tensors["template"] = circuit.template
    return tensors
