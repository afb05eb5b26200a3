"""Measuring a weight-fooled model: natural behaviour, preservation, what its FVs show.

* :func:`natural_behaviour` — on natural test images: top-1 of both models and the fraction of
  images whose predicted class is unchanged (``argmax_unchanged``);
* :func:`preservation_r2` — R² of the fooled layer's activations against the original's on
  natural test images, 1 − Σ(A_f − A_o)² / Σ(A_o − mean_c A_o)² (sums over images, channels,
  positions; the mean per channel), for the whole layer and per manipulated unit (its spatial
  mean);
* :func:`fv_measures` — per unit: Pearson r of the fooled FV with the target and with the unit's
  original FV (:func:`fvlab.fool.measures.image_correlation`) and a feature-space similarity: the
  cosine of the ORIGINAL model's activation vectors at ``feature_layer`` (flattened), the same
  pair of images. ``fooled`` = the FV is closer to the target than to the original FV in pixel
  r.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from fvlab.fool.measures import image_correlation
from fvlab.models.hooks import capture

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel


@torch.no_grad()
def natural_behaviour(
    original: LoadedModel, fooled: LoadedModel, images: torch.Tensor, labels: torch.Tensor,
    batch_size: int = 1000,
) -> dict:  # fmt: skip
    """top1_original, top1_fooled, argmax_unchanged (fractions of ``images``), n_images."""
    correct_o = correct_f = same = 0
    for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True):
        a, b = original(x).argmax(1), fooled(x).argmax(1)
        correct_o += int((a == y).sum())
        correct_f += int((b == y).sum())
        same += int((a == b).sum())
    n = len(labels)
    return {
        "n_images": n,
        "top1_original": correct_o / n,
        "top1_fooled": correct_f / n,
        "top1_drop_pp": 100 * (correct_o - correct_f) / n,
        "argmax_unchanged": same / n,
    }


@torch.no_grad()
def preservation_r2(
    original: LoadedModel, fooled: LoadedModel, layer: str, units: Sequence[int],
    images: torch.Tensor, batch_size: int = 1000,
) -> dict:  # fmt: skip
    """R² of the layer (all channels and positions) and of each unit's spatial mean."""
    acts_o, acts_f = [], []
    for x in images.split(batch_size):
        for model, store in ((original, acts_o), (fooled, acts_f)):
            with capture(model.module, [layer], detach=True) as cap:
                model(x)
                store.append(cap[layer].double())
    a_o, a_f = torch.cat(acts_o), torch.cat(acts_f)
    dims = [0, *range(2, a_o.ndim)]
    centred = a_o - a_o.mean(dim=dims, keepdim=True)
    layer_r2 = 1 - float((a_f - a_o).pow(2).sum() / centred.pow(2).sum().clamp_min(1e-30))
    m_o = a_o.flatten(2).mean(2) if a_o.ndim > 2 else a_o
    m_f = a_f.flatten(2).mean(2) if a_f.ndim > 2 else a_f
    per_unit = {}
    for u in units:
        total = (m_o[:, u] - m_o[:, u].mean()).pow(2).sum().clamp_min(1e-30)
        per_unit[int(u)] = 1 - float((m_f[:, u] - m_o[:, u]).pow(2).sum() / total)
    return {"layer": layer_r2, "units": per_unit, "n_images": len(images)}


@torch.no_grad()
def feature_similarity(
    model: LoadedModel, layer: str, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Cosine of ``model``'s flattened activations at ``layer`` for each pair (a[i], b[i])."""
    with capture(model.module, [layer], detach=True) as cap:
        model(a)
        fa = cap[layer].flatten(1).double()
        model(b.to(a))
        fb = cap[layer].flatten(1).double()
    return F.cosine_similarity(fa, fb, dim=1).float()


def fv_measures(
    original: LoadedModel, units: Sequence[int], fooled_fvs: torch.Tensor, target: torch.Tensor,
    original_fvs: torch.Tensor, feature_layer: str,
) -> list[dict]:  # fmt: skip
    """Per unit: pixel r and feature cosine with the target and with the original FV."""
    targets = target.to(fooled_fvs).expand_as(fooled_fvs)
    r_target = image_correlation(fooled_fvs, targets)
    r_original = image_correlation(fooled_fvs, original_fvs.to(fooled_fvs))
    f_target = feature_similarity(original, feature_layer, fooled_fvs, targets)
    f_original = feature_similarity(original, feature_layer, fooled_fvs, original_fvs)
    return [
        {
            "unit": int(u),
            "pixel_r_target": float(r_target[i]),
            "pixel_r_original_fv": float(r_original[i]),
            "feature_cos_target": float(f_target[i]),
            "feature_cos_original_fv": float(f_original[i]),
            "fooled": bool(r_target[i] > r_original[i]),
        }
        for i, u in enumerate(units)
    ]


def share_fooled(rows: Sequence[dict]) -> float:
    """Fraction of units whose FV is closer (pixel r) to the target than to the original FV."""
    return sum(row["fooled"] for row in rows) / max(len(rows), 1)
