"""Building a circuit-fooled model from data, and measuring what it does.

``build_circuit`` derives the gate constants from activation statistics (natural training images
and the chosen units' own visualizations), installs the circuit, and ``evaluate_circuit``
measures natural behaviour (identical outputs?) and the fooling (what do the visualizations of
the fooled model show?).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fvlab.errors import FvlabError
from fvlab.fool.circuit import Circuit, derive_constants, install, template_from_target
from fvlab.fool.detector import Detector, load_detector
from fvlab.models.hooks import capture

WEIGHTS_DIR = Path(__file__).parent / "weights"


def default_detector_path(model_name: str) -> Path:
    return WEIGHTS_DIR / f"{model_name}-detector.pt"


def permutation(n_units: int, offset: int) -> list[int]:
    """mapping[i] = (i + offset) mod n: unit i shows unit i + offset."""
    if offset % n_units == 0:
        raise FvlabError(f"offset {offset} maps every unit to itself ({n_units} units)")
    return [(i + offset) % n_units for i in range(n_units)]


@torch.no_grad()
def layer_range(model, layer: str, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Per channel (min, max) over images and positions: shape (2, C)."""
    lo = hi = None
    with capture(model, [layer], detach=True, stop_early=True) as cap:
        for batch in images.split(batch_size):
            cap.run(model, batch)
            act = cap[layer]
            act = act.flatten(2) if act.ndim > 2 else act.unsqueeze(2)
            bmin, bmax = act.amin((0, 2)), act.amax((0, 2))
            lo = bmin if lo is None else torch.minimum(lo, bmin)
            hi = bmax if hi is None else torch.maximum(hi, bmax)
    return torch.stack([lo, hi])


@torch.no_grad()
def template_response(images: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """⟨t_c, x⟩ / (H·W) per image (unscaled)."""
    return (images * template).flatten(1).mean(1)


def load_target(path: str | Path, spec) -> torch.Tensor:
    """A target image file as (C, size, size) in [0, 1] for the model's input spec."""
    from fvlab.data.folders import load_image

    return torch.from_numpy(load_image(path, spec.size, spec.channels, resize_ratio=1.0))


@dataclass
class BuiltCircuit:
    """The fooled model plus what was needed to build it."""

    model: object  # LoadedModel
    circuit: Circuit
    layer: str
    originals: torch.Tensor  # visualizations of the chosen units of the ORIGINAL model
    stats: dict


def build_circuit(
    model,
    fooled_copy,
    layer: str,
    natural: torch.Tensor,
    *,
    mode: str = "permute",
    offset: int = 1,
    mapping: Sequence[int] | None = None,
    units: Sequence[int] | None = None,
    target: torch.Tensor | None = None,
    detector: Detector | None = None,
    margin: float = 1.0,
    render_steps: int = 512,
    seed: int = 0,
    relu_redirect_steps: int = 0,
    show_progress: bool = True,
) -> BuiltCircuit:
    """Derive constants and install a circuit at ``layer`` of ``fooled_copy`` (a second,
    fresh copy of ``model``, modified in place). ``natural``: images (N, C, H, W) in [0, 1]."""
    from fvlab.optvis.api import render

    if mode not in ("permute", "target"):
        raise FvlabError(f"unknown mode {mode!r}; valid: permute, target")
    if mode == "target" and target is None:
        raise FvlabError("target mode needs a target image (--target IMAGE or builtin:NAME)")
    detector = detector or load_detector(default_detector_path(model.name))
    ranges = layer_range(model, layer, natural)
    n_channels = ranges.shape[1]
    units = list(range(n_channels)) if units is None else [int(u) for u in units]
    if not units or not all(0 <= u < n_channels for u in units):
        raise FvlabError(f"layer {layer!r} has {n_channels} units; got units {units[:10]}")
    originals = render(
        model,
        layer,
        units,
        steps=render_steps,
        seed=seed,
        relu_redirect_steps=relu_redirect_steps,
        show_progress=show_progress,
    )
    fv_ranges = layer_range(model, layer, originals.images)
    f_min = float(ranges[0, units].min())
    f_max = float(torch.maximum(ranges[1, units], fv_ranges[1, units]).max())
    stats = {
        "natural_min": ranges[0].tolist(),
        "natural_max": ranges[1].tolist(),
        "visualization_max": fv_ranges[1].tolist(),
    }
    template, scale = None, 1.0
    if mode == "permute":
        if mapping is None:
            order = permutation(len(units), offset)
            mapping = [units[j] for j in order]
        mapping = [int(m) for m in mapping]
        if len(mapping) != len(units) or not all(0 <= m < n_channels for m in mapping):
            raise FvlabError(f"mapping must give one unit of 0–{n_channels - 1} per chosen unit")
        d_min = float(ranges[0, mapping].min())
        d_max = float(torch.maximum(ranges[1, mapping], fv_ranges[1, mapping]).max())
    else:
        template = template_from_target(target)
        natural_response = template_response(natural, template)
        scale = float(ranges[1, units].max()) / max(float(natural_response.abs().max()), 1e-8)
        # analytic bounds of c·⟨t_c, x⟩/N over all x in [0, 1]
        d_max = scale * float(template.clamp_min(0).flatten().mean())
        d_min = scale * float(template.clamp_max(0).flatten().mean())
        mapping = None
        stats["template_scale"] = scale
    constants = derive_constants(f_min, f_max, d_min, d_max, margin)
    stats.update({"f_range": [f_min, f_max], "d_range": [d_min, d_max]})
    circuit = Circuit(
        detector,
        model.spec,
        units,
        constants,
        mapping=mapping,
        template=template,
        template_scale=scale,
    )
    fooled = install(fooled_copy, layer, circuit)
    return BuiltCircuit(fooled, circuit, layer, originals.images, stats)


@torch.no_grad()
def compare_outputs(
    original,
    fooled,
    images: torch.Tensor,
    labels: torch.Tensor,
    tolerance: float = 1e-5,
    batch_size: int = 1000,
) -> dict:
    """Natural behaviour: top-1 of both models, share of images whose outputs are all within
    ``tolerance``, the largest absolute difference, and how the detector routed the images."""
    correct_o = correct_f = identical = 0
    max_diff = 0.0
    routed = 0
    circuit = getattr(fooled.module, "fvlab_circuit", None)
    for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True):
        a, b = original(x), fooled(x)
        diff = (a - b).abs().flatten(1).amax(1)
        identical += int((diff <= tolerance).sum())
        max_diff = max(max_diff, float(diff.max()))
        correct_o += int((a.argmax(1) == y).sum())
        correct_f += int((b.argmax(1) == y).sum())
        if circuit is not None:
            routed += int(circuit._decision.sum())
    n = len(labels)
    return {
        "n_images": n,
        "top1_original": correct_o / n,
        "top1_fooled": correct_f / n,
        "fraction_identical": identical / n,
        "max_abs_diff": max_diff,
        "routed_as_visualization": routed,
    }


@torch.no_grad()
def count_violations(original, fooled, layer: str, images: torch.Tensor) -> dict[str, int]:
    """Exactness-condition violations of the circuit on ``images``: the raw layer output comes
    from the original model, the decision from the circuit's detector."""
    circuit = fooled.module.fvlab_circuit
    totals: dict[str, int] = {}
    with capture(original, [layer], detach=True) as cap:
        for x in images.split(1000):
            original(x)
            decision = circuit.detector(x) > 0
            for key, value in circuit.violations(cap[layer], decision, x).items():
                totals[key] = totals.get(key, 0) + value
    return totals


@torch.no_grad()
def permute_measures(
    original, layer: str, units: Sequence[int], mapping: Sequence[int], fooled_fvs: torch.Tensor
) -> list[dict]:
    """For each unit i: activation of original unit i and mapping[i] on the fooled FV of i, and
    (for the logits) the original model's predicted class."""
    with capture(original, [layer], detach=True) as cap:
        logits = original(fooled_fvs)
        act = cap[layer]
    act = act.flatten(2).mean(2) if act.ndim > 2 else act
    rows = []
    for b, (unit, shown) in enumerate(zip(units, mapping, strict=True)):
        rows.append(
            {
                "unit": int(unit),
                "shows": int(shown),
                "original_activation_of_unit": float(act[b, unit]),
                "original_activation_of_mapped_unit": float(act[b, shown]),
                "mapped_unit_more_active": bool(act[b, shown] > act[b, unit]),
                "original_prediction": int(logits[b].argmax()),
            }
        )
    return rows


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two images (flattened)."""
    x = a.flatten().double() - a.double().mean()
    y = b.flatten().double() - b.double().mean()
    denominator = float(x.norm() * y.norm())
    return float((x @ y) / denominator) if denominator > 0 else float("nan")


def target_measures(
    units: Sequence[int], fooled_fvs: torch.Tensor, target: torch.Tensor, originals: torch.Tensor
) -> list[dict]:
    """Pearson correlation of each fooled FV with the target and with the unit's original FV."""
    if target.shape[-2:] != fooled_fvs.shape[-2:]:
        target = F.interpolate(
            target[None], size=fooled_fvs.shape[-2:], mode="bilinear", align_corners=False
        )[0]
    return [
        {
            "unit": int(u),
            "corr_with_target": pearson(fooled_fvs[i], target),
            "corr_with_original_fv": pearson(fooled_fvs[i], originals[i]),
        }
        for i, u in enumerate(units)
    ]


def summarise(values: Sequence[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {
        "min": float(arr.min()),
        "median": float(np.median(arr)),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
    }
