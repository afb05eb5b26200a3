"""Exemplar hold: does the FV procedure, started from the unit's own top natural exemplars,
leave them?

The audit's FV starts from a grey image. This signal runs the *same* procedure (the FFT image,
the render's transforms and learning rate) from each of the unit's top ``E`` natural exemplars
x_e instead — the FFT image starts at x_e exactly (:func:`fvlab.optvis.param.fft_preimage`) —
for ``steps`` updates, and asks how much of the exemplar is left:

    r_e  = Pearson r over pixels between x_e and the image x_e(steps) the ascent reaches
    hold = −ln(1 − max(0, mean_e r_e))        (nats; 0 when the ascent left its start
                                               uncorrelated, → ∞ as it stays put)

For a clean unit the natural images sit on the slope of a landscape that keeps rising towards
the unit's FV, so ascent from an exemplar moves away from it (fmnist-cnn relu3, 64 updates:
r 0.53–0.93, median 0.76). Weight-only manipulations (a gradient slingshot, push-down / push-up)
fine-tune the network to keep every natural activation (their preservation loss) while they
reshape the landscape elsewhere; measured on fmnist-cnn, ascent from their exemplars then
barely moves (median r 0.90–0.93) — the natural images sit on a plateau or a ridge of their own
rather than on the way to the FV. This is an empirical finding on one architecture, not a
theorem (docs/check.md has the figures and its limits): an attacker who also preserves
exemplar-started ascents would defeat it.

Adam's step is about the learning rate per coordinate whatever the gradient's size, so how far
the ascent moves in a given number of updates reflects how consistently the gradient points
one way (across the random transforms and along the way), not how large it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel


@dataclass
class ExemplarHold:
    """Per unit: ``r`` (E, U) Pearson r of each exemplar with where its ascent went, and
    ``hold`` (U,) −ln(1 − max(0, mean_e r_e)) in nats (module docstring)."""

    r: np.ndarray
    hold: np.ndarray


def hold_of(r: np.ndarray) -> np.ndarray:
    """−ln(1 − max(0, mean over exemplars of r)) per unit: r (E, U) → (U,) (r capped at
    1 − 1e-12, so an ascent that never moves gives a large but finite value)."""
    mean = np.clip(np.asarray(r, float).mean(0), 0.0, 1 - 1e-12)
    return -np.log1p(-mean)


def exemplar_hold(
    model: LoadedModel,
    layer: str,
    units: list[int],
    exemplars: torch.Tensor,
    *,
    steps: int,
    seed: int,
    batch_size: int,
) -> ExemplarHold:
    """Ascend each unit from each of its ``exemplars`` (U, E, C, H, W) in [0, 1] for ``steps``
    updates of the default FV procedure and measure what is left of the start (module
    docstring). One render per exemplar rank e (seed + e), ``batch_size`` units at a time
    (memory bounded); a unit's draws are keyed by (seed + e, unit), so the result does not
    depend on ``batch_size``."""
    import fvlab
    from fvlab.fool.measures import image_correlation
    from fvlab.optvis.param import FFTImage

    n_exemplars = exemplars.shape[1]
    r = []
    for e in range(n_exemplars):  # one render per exemplar rank: each unit once per render
        r_e = []
        for first in range(0, len(units), batch_size):
            chunk = exemplars[first : first + batch_size, e].to(model.device)
            result = fvlab.render(model, layer, units[first : first + batch_size],
                                  param=FFTImage.starting_at(chunk), steps=steps, seed=seed + e,
                                  show_progress=False)  # fmt: skip
            r_e.append(image_correlation(result.images, chunk).cpu())
        r.append(torch.cat(r_e))
    r = torch.stack(r).double().numpy()
    return ExemplarHold(r=r, hold=hold_of(r))
