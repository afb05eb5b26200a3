"""Measuring a circuit-fooled model: natural behaviour, exactness, and what its
visualizations show.

* :func:`compare_outputs` — on natural images: top-1 and top-5 of both models, the share of
  images whose outputs all agree within a tolerance, the largest |difference|, and how the
  detector routed the images;
* :func:`count_violations` — images × units breaking each exactness condition of the gate;
* :func:`fooling_measures` — per unit, on the fooled model's visualizations: permute mode, the
  original model's activation of unit i and of mapping[i] (spatial means) and its predicted
  class; target mode, the Pearson r of each visualization with the target and with the unit's
  original visualization (:func:`fvlab.fool.measures.image_correlation`). ``fooled`` says
  whether the unit shows what the circuit wants (mapped unit more active; closer to target).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from fvlab.fool.circuit.gate import CHILD, Circuit
from fvlab.fool.measures import image_correlation
from fvlab.models.hooks import capture

if TYPE_CHECKING:
    from fvlab.fool.circuit.build import BuiltCircuit
    from fvlab.models.zoo import LoadedModel


def installed_circuit(fooled: LoadedModel) -> Circuit | None:
    """The circuit installed in ``fooled`` (None for a model without one)."""
    return getattr(fooled.module, CHILD, None)


@torch.no_grad()
def compare_outputs(
    original: LoadedModel,
    fooled: LoadedModel,
    images: torch.Tensor,
    labels: torch.Tensor,
    tolerance: float = 1e-5,
    batch_size: int = 1000,
    label_logits: Sequence[int] | None = None,
) -> dict:
    """Natural behaviour: top-1 and top-5 of both models, share of images whose outputs are all
    within ``tolerance``, the largest absolute difference, and how the detector routed the
    images. Label k is logit ``label_logits[k]`` (default k; lucid's InceptionV1: 1 + k)."""
    correct = {"top1_original": 0, "top1_fooled": 0, "top5_original": 0, "top5_fooled": 0}
    identical = 0
    max_diff = 0.0
    routed = 0
    circuit = installed_circuit(fooled)
    if label_logits is not None:
        labels = torch.as_tensor(list(label_logits))[labels]
    for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True):
        a, b = original(x), fooled(x)
        diff = (a - b).abs().flatten(1).amax(1)
        identical += int((diff <= tolerance).sum())
        max_diff = max(max_diff, float(diff.max()))
        y = y.to(a.device)
        for name, out in (("original", a), ("fooled", b)):
            top = out.topk(min(5, out.shape[1]), dim=1).indices
            correct[f"top1_{name}"] += int((top[:, 0] == y).sum())
            correct[f"top5_{name}"] += int((top == y[:, None]).any(1).sum())
        if circuit is not None:
            routed += int(circuit.last_decision.sum())
    n = len(labels)
    return {
        "n_images": n,
        **{name: count / n for name, count in correct.items()},
        "fraction_identical": identical / n,
        "max_abs_diff": max_diff,
        "routed_as_visualization": routed,
    }


@torch.no_grad()
def count_violations(
    original: LoadedModel, fooled: LoadedModel, layer: str, images: torch.Tensor
) -> dict[str, int]:
    """Exactness-condition violations of the circuit on ``images``: the raw layer output comes
    from the original model, the decision from the circuit's detector."""
    circuit = installed_circuit(fooled)
    totals: dict[str, int] = {}
    with capture(original, [layer], detach=True) as cap:
        for x in images.split(1000):
            original(x)
            decision = circuit.gate_value(circuit.detector(x))
            for key, value in circuit.violations(cap[layer], decision, x).items():
                totals[key] = totals.get(key, 0) + value
    return totals


@torch.no_grad()
def permute_measures(
    original: LoadedModel,
    layer: str,
    units: Sequence[int],
    mapping: Sequence[int],
    fooled_fvs: torch.Tensor,
) -> list[dict]:
    """For each unit i: activation of original unit i and mapping[i] on the fooled FV of i, and
    (for the logits) the original model's predicted class."""
    with capture(original, [layer], detach=True) as cap:
        logits = original(fooled_fvs)
        act = cap[layer]
    act = act.flatten(2).mean(2) if act.ndim > 2 else act
    return [
        {
            "unit": int(unit),
            "shows": int(shown),
            "original_activation_of_unit": float(act[b, unit]),
            "original_activation_of_mapped_unit": float(act[b, shown]),
            "mapped_unit_more_active": bool(act[b, shown] > act[b, unit]),
            "original_prediction": int(logits[b].argmax()),
        }
        for b, (unit, shown) in enumerate(zip(units, mapping, strict=True))
    ]


def target_measures(
    units: Sequence[int], fooled_fvs: torch.Tensor, target: torch.Tensor, originals: torch.Tensor
) -> list[dict]:
    """Pearson correlation of each fooled FV with the target and with the unit's original FV."""
    if target.shape[-2:] != fooled_fvs.shape[-2:]:
        target = F.interpolate(
            target[None], size=fooled_fvs.shape[-2:], mode="bilinear", align_corners=False
        )[0]
    with_target = image_correlation(fooled_fvs, target.to(fooled_fvs).expand_as(fooled_fvs))
    with_original = image_correlation(fooled_fvs, originals.to(fooled_fvs))
    return [
        {
            "unit": int(u),
            "corr_with_target": float(with_target[i]),
            "corr_with_original_fv": float(with_original[i]),
        }
        for i, u in enumerate(units)
    ]


def fooling_measures(
    original: LoadedModel,
    built: BuiltCircuit,
    images: torch.Tensor,
    target: torch.Tensor | None,
) -> list[dict]:
    """Per-unit measures of the fooled visualizations ``images`` (one per gated unit), each
    with ``fooled``: the mapped unit is more active (permute), or the FV is closer to the
    target than to the unit's original FV (target)."""
    circuit = built.circuit
    units = circuit.units.tolist()
    if circuit.mode == "permute":
        rows = permute_measures(original, built.layer, units, circuit.mapping.tolist(), images)
        for row in rows:
            row["fooled"] = row["mapped_unit_more_active"]
        return rows
    rows = target_measures(units, images, target, built.originals)
    for row in rows:
        row["fooled"] = row["corr_with_target"] > row["corr_with_original_fv"]
    return rows


def share_fooled(rows: Sequence[dict]) -> float:
    """Share of units whose visualization shows what the circuit wants."""
    return sum(row["fooled"] for row in rows) / len(rows)
