"""Procedure consistency: does a second, different FV procedure agree with the first?

An FV claims "this is what drives unit u most". Any ascent of u should then reach a comparable
height and excite the layer in a comparable way, whatever the image parameterization. A
manipulation tuned to one FV procedure (fvlab's default: the FFT image from a grey start,
:mod:`fvlab.fool.slingshot`'s push-down / push-up, a slingshot's tunnel) need not hold for
another, so the audit renders every unit a second time with a different parameterization
(free pixels, ``param``, another seed) and compares the two FVs x_d (default) and x_p (other):

    ratio  = a_u(x_p) / a_u(x_d)                       (the unit's channel spatial mean; both
                                                        floored at 1e-3 × the natural spread)
    angle  = arccos( ⟨v(x_d), v(x_p)⟩ / (‖v(x_d)‖ ‖v(x_p)‖) )   ∈ [0, π]   (radians)

with v(x) ∈ R^C the audited layer's channel spatial means (every channel of the layer, not only
u). The signal is

    procedure = max( |ln ratio| , angle ).

Both parts are 0 when the two procedures find the same thing; |ln ratio| is large when one
procedure reaches a far lower (or higher) activation than the other, the angle when the two FVs
drive different combinations of the layer's channels. Clean units of the embedded fmnist-cnn
(relu3, 256 updates) give up to 0.82; a pixel-parameterization ascent that dies on its start
image (ratio ≈ 0 — it happens to clean units too) drives it up, which is why the threshold is
calibrated on a clean reference model (:mod:`fvlab.check.calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from fvlab.models.hooks import capture

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

#: activations are floored at this fraction of the unit's natural spread before the ratio
RATIO_FLOOR = 1e-3


@dataclass
class Consistency:
    """Per unit (U,): the ratio a_u(x_p)/a_u(x_d), the angle of the layer vectors (radians) and
    the signal max(|ln ratio|, angle) (module docstring)."""

    ratio: np.ndarray
    angle: np.ndarray
    procedure: np.ndarray


@torch.no_grad()
def layer_vectors(
    model: LoadedModel, layer: str, images: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """The layer's channel spatial means (a linear layer's outputs) for ``images`` → (N, C)."""
    parts = []
    for x in images.split(batch_size):
        with capture(model.module, [layer], detach=True) as cap:
            model(x.to(model.device))
            out = cap[layer]
        parts.append((out.flatten(2).mean(2) if out.ndim > 2 else out).double().cpu())
    return torch.cat(parts)


def procedure_consistency(
    model: LoadedModel,
    layer: str,
    unit_ids: list[int],
    default_fvs: torch.Tensor,
    other_fvs: torch.Tensor,
    spread: np.ndarray,
    batch_size: int = 256,
) -> Consistency:
    """Compare each unit's default FV (U, C, H, W) with its FV from the other procedure
    (same shape); ``spread`` (U,) = max_nat − mean_nat of each unit (the ratio's floor)."""
    v_d = layer_vectors(model, layer, default_fvs, batch_size)
    v_p = layer_vectors(model, layer, other_fvs, batch_size)
    rows = torch.arange(len(unit_ids))
    ids = torch.as_tensor(unit_ids)
    floor = torch.as_tensor(RATIO_FLOOR * np.asarray(spread, float))
    a_d = v_d[rows, ids].clamp_min(floor)
    a_p = v_p[rows, ids].clamp_min(floor)
    ratio = (a_p / a_d).numpy()
    cos = torch.nn.functional.cosine_similarity(v_d, v_p, dim=1, eps=1e-12).clamp(-1, 1)
    angle = torch.arccos(cos).numpy()
    return Consistency(ratio, angle, np.maximum(np.abs(np.log(ratio)), angle))
