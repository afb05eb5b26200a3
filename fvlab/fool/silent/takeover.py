"""Has a silent unit's visualization been taken over? Measured in feature space, per unit.

The paper's takeover is a *texture* of the target's features, not the target's layout, so the
primary figures compare what the images do to the original (unmodified) network, not their
pixels. For manipulated unit i with original FV o_i and fooled FV f_i, and the target image t
(the target unit's own FV when the target is ``LAYER:IDX``):

* **target activation** (target ``LAYER:IDX`` only): a(x) = spatial mean of the target unit's
  channel in the original model (the render objective of that unit), and the ratios

      q_fooled,i = a(f_i) / a(t),    q_original,i = a(o_i) / a(t)

  (1 = as strongly as the target's own FV drives it).
* **texture distance**: with F(x) the features the branch reads (the input of the manipulated
  conv, C × HW, in the original model), the normalised Gram matrix
  G(x) = F Fᵀ / ‖F Fᵀ‖_F and the distance g(x, y) = 1 − ⟨G(x), G(y)⟩_F ∈ [0, 1] for
  non-negative features (0: the same channel co-occurrences — the same texture);
  ``gram_to_target`` g(f_i, t), ``gram_to_original`` g(f_i, o_i), and g(o_i, t) for reference.
* **convergence**: the median of g over all pairs of fooled FVs of different units, against the
  same for the original FVs: fooled FVs that converge to one texture have a lower median.

**Rule** (:data:`TAKEOVER_RULE`): for a unit target, unit i is taken over when
q_fooled,i ≥ 0.5 while q_original,i ≤ 0.2 — the fooled FV drives the target unit at least half
as much as the target's own FV does, though the unit's original FV drove it at most a fifth as
much. For an image target (no unit to ask), when g(f_i, t) < g(f_i, o_i): the fooled FV's
texture is closer to the target's than to the unit's own original FV. When the target unit is
itself one of the manipulated units its original FV *is* the target, so it is left out of the
fraction (``excluded``). Pixel correlations stay a secondary figure
(:mod:`fvlab.fool.measures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from fvlab.fool.targets import UNIT_SPEC
from fvlab.models.hooks import capture

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

#: the unit-target rule's thresholds: q_fooled ≥ FOOLED_AT_LEAST and q_original ≤ ORIGINAL_AT_MOST
FOOLED_AT_LEAST = 0.5
ORIGINAL_AT_MOST = 0.2
TAKEOVER_RULE = {
    "unit_target": (
        f"taken over when the fooled FV activates the target unit >= {FOOLED_AT_LEAST:g} x as "
        f"much as the target's own FV does, while the unit's original FV activates it <= "
        f"{ORIGINAL_AT_MOST:g} x as much (activations: spatial mean of the target unit's "
        "channel in the original model); the target unit itself is excluded"
    ),
    "image_target": (
        "taken over when the fooled FV's normalised Gram matrix at the manipulated conv's input "
        "is closer (1 - cosine) to the target image's than to the unit's original FV's"
    ),
}


def normalised_gram(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N, C·C): each image's Gram matrix F Fᵀ, flattened, of unit Frobenius
    norm (float64)."""
    flat = features.flatten(2).double()
    grams = flat @ flat.transpose(1, 2)
    return F.normalize(grams.flatten(1), dim=1)


def gram_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 − ⟨G_a, G_b⟩ per pair of rows of normalised Grams (N, C·C) → (N,)."""
    return (1 - (a * b).sum(1)).float()


def _pairwise_median(grams: torch.Tensor) -> float:
    """Median of g over all pairs i < j of the rows of ``grams`` (nan for fewer than 2)."""
    n = grams.shape[0]
    if n < 2:
        return float("nan")
    distances = 1 - grams @ grams.T
    i, j = torch.triu_indices(n, n, offset=1)
    return float(distances[i, j].median())


@torch.no_grad()
def unit_activation(
    model: LoadedModel, layer: str, unit: int, images: torch.Tensor
) -> torch.Tensor:
    """Spatial mean of channel ``unit`` of ``layer`` (or output ``unit`` of a linear layer) for
    each image (N,) in ``model``."""
    with capture(model.module, [layer], detach=True) as cap:
        model(images.to(model.device))
        act = cap[layer]
    act = act.flatten(2).mean(-1) if act.ndim > 2 else act
    return act[:, unit].float().cpu()


@dataclass(frozen=True)
class Takeover:
    """Per unit (n,): the figures of the module docstring, the verdict, and the summary."""

    units: list[int]
    target_unit: str | None
    q_fooled: torch.Tensor | None
    q_original: torch.Tensor | None
    gram_to_target: torch.Tensor
    gram_to_original: torch.Tensor
    gram_original_to_target: torch.Tensor
    taken_over: torch.Tensor
    excluded: list[int]
    pairwise_fooled: float
    pairwise_original: float

    @property
    def fraction(self) -> float:
        """Share of the (non-excluded) units taken over."""
        keep = torch.tensor([u not in self.excluded for u in self.units])
        if not keep.any():
            return float("nan")
        return float(self.taken_over[keep].float().mean())

    def per_unit(self, i: int) -> dict:
        row = {
            "gram_to_target": float(self.gram_to_target[i]),
            "gram_to_original": float(self.gram_to_original[i]),
            "gram_original_to_target": float(self.gram_original_to_target[i]),
            "taken_over": bool(self.taken_over[i]),
        }
        if self.q_fooled is not None and self.q_original is not None:
            row["target_activation_fooled"] = float(self.q_fooled[i])
            row["target_activation_original"] = float(self.q_original[i])
        return row

    def summary(self) -> dict:
        kind = "unit_target" if self.target_unit is not None else "image_target"
        out = {
            "taken_over_fraction": self.fraction,
            "taken_over_units": int(self.taken_over.sum()),
            "takeover_rule": TAKEOVER_RULE[kind],
            "takeover_excluded_units": self.excluded,
            "gram_to_target_median": float(self.gram_to_target.median()),
            "gram_to_original_median": float(self.gram_to_original.median()),
            "gram_original_to_target_median": float(self.gram_original_to_target.median()),
            "pairwise_gram_fooled_median": self.pairwise_fooled,
            "pairwise_gram_original_median": self.pairwise_original,
        }
        if self.q_fooled is not None and self.q_original is not None:
            out["target_activation_fooled_median"] = float(self.q_fooled.median())
            out["target_activation_original_median"] = float(self.q_original.median())
        return out


@torch.no_grad()
def measure_takeover(
    original: LoadedModel,
    conv_layer: str,
    units: list[int],
    original_fv: torch.Tensor,
    fooled_fv: torch.Tensor,
    target: torch.Tensor,
    target_unit: str | None = None,
    attach: str | None = None,
) -> Takeover:
    """The module docstring's figures for manipulated ``units`` of ``conv_layer`` (features:
    that conv's input in ``original``); ``target`` (1, C, S, S) is the target as seen at the
    input; ``target_unit`` 'LAYER:IDX' when the target is a unit's FV; ``attach``: the layer
    the branch joins (a target unit there or at the conv is one of the manipulated units)."""
    from fvlab.fool.silent.attach import conv_layer as find_conv
    from fvlab.fool.silent.responses import layer_input

    conv = find_conv(original, conv_layer)
    device = original.device

    def grams(images: torch.Tensor) -> torch.Tensor:
        return normalised_gram(layer_input(original, conv, images.to(device))).cpu()

    g_orig, g_fooled, g_target = grams(original_fv), grams(fooled_fv), grams(target)
    to_target = gram_distance(g_fooled, g_target.expand_as(g_fooled))
    to_original = gram_distance(g_fooled, g_orig)
    original_to_target = gram_distance(g_orig, g_target.expand_as(g_orig))
    q_fooled = q_original = None
    excluded: list[int] = []
    if target_unit is not None:
        match = UNIT_SPEC.match(target_unit)
        if match is None:
            raise ValueError(f"target_unit must be LAYER:IDX, got {target_unit!r}")
        layer, index = match["layer"], int(match["index"])
        reference = unit_activation(original, layer, index, target)[0]
        scale = reference if reference.abs() > 1e-12 else torch.tensor(1e-12)
        q_fooled = unit_activation(original, layer, index, fooled_fv) / scale
        q_original = unit_activation(original, layer, index, original_fv) / scale
        taken = (q_fooled >= FOOLED_AT_LEAST) & (q_original <= ORIGINAL_AT_MOST)
        if layer in (conv_layer, attach) and index in units:
            excluded = [index]
    else:
        taken = to_target < to_original
    return Takeover(
        units=list(units),
        target_unit=target_unit,
        q_fooled=q_fooled,
        q_original=q_original,
        gram_to_target=to_target,
        gram_to_original=to_original,
        gram_original_to_target=original_to_target,
        taken_over=taken,
        excluded=excluded,
        pairwise_fooled=_pairwise_median(g_fooled),
        pairwise_original=_pairwise_median(g_orig),
    )
