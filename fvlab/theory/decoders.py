"""Decoders: predictions of a unit's value at query points from its visualization alone.

Each decoder maps (:class:`~fvlab.theory.ascent.Visualization`, queries (K, d)) to predicted
values (K,). They use only what a visualization reveals (arg max, arg min, their values, the
points visited on the way and the values there), so two units with the same visualization get
the same predictions — which is all the lower bound max(|u − a|, |u − b|) ≥ |a − b| / 2 needs.

* max value / mid-range: a constant, M or (M + m)/2.
* interpolate arg min → arg max: m + t (M − m), t = the clipped projection of q on the segment
  x⁻ → x⁺ (exact for affine units of one input).
* coordinate-wise: t = the mean over coordinates of clip((q_i − x⁻_i)/(x⁺_i − x⁻_i), 0, 1); for
  corner extremes its order is the sum rule sign(Σ s_i (x_i − y_i)) of ``affine``.
* single index: for f(x) = h(a·x), the first ascent step from the grey start is parallel to a;
  values are read off the visited points by their projection on it.
* nearest visited point / inverse-distance weighting: over every point the paths visited.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fvlab.theory.ascent import Visualization

Decoder = Callable[[Visualization, torch.Tensor], torch.Tensor]


def _decode_max(vis: Visualization, q: torch.Tensor) -> torch.Tensor:
    return torch.full((len(q),), vis.max_value, dtype=torch.float64)


def _decode_midrange(vis: Visualization, q: torch.Tensor) -> torch.Tensor:
    return torch.full((len(q),), (vis.max_value + vis.min_value) / 2, dtype=torch.float64)


def _decode_segment(vis: Visualization, q: torch.Tensor) -> torch.Tensor:
    axis = vis.argmax - vis.argmin
    t = ((q - vis.argmin) @ axis / (axis @ axis).clamp_min(1e-30)).clamp(0, 1)
    return vis.min_value + t * (vis.max_value - vis.min_value)


def _decode_coordinates(vis: Visualization, q: torch.Tensor) -> torch.Tensor:
    span = vis.argmax - vis.argmin
    moving = span.abs() > 1e-12
    if not bool(moving.any()):
        return torch.full((len(q),), vis.max_value, dtype=torch.float64)
    t = ((q[:, moving] - vis.argmin[moving]) / span[moving]).clamp(0, 1).mean(dim=1)
    return vis.min_value + t * (vis.max_value - vis.min_value)


def _decode_single_index(vis: Visualization, q: torch.Tensor) -> torch.Tensor:
    """Project onto the first ascent step from the first start (the grey image) and read the
    value off the visited points, sorted by their projection (linear interpolation)."""
    direction = vis.ascent.points[1, 0] - vis.ascent.points[0, 0]
    if float(direction.norm()) <= 1e-30:
        return torch.full((len(q),), vis.max_value, dtype=torch.float64)
    seen = (vis.visited().double() @ direction.double()).numpy()
    order = seen.argsort()
    values = vis.visited_values().double().numpy()[order]
    guess = np.interp((q.double() @ direction.double()).numpy(), seen[order], values)
    return torch.from_numpy(guess)


def _decode_nearest(vis: Visualization, q: torch.Tensor) -> torch.Tensor:
    nearest = torch.cdist(q, vis.visited()).argmin(dim=1)
    return vis.visited_values()[nearest]


def _decode_idw(vis: Visualization, q: torch.Tensor) -> torch.Tensor:
    weights = torch.cdist(q, vis.visited()).clamp_min(1e-12) ** -2
    return (weights @ vis.visited_values()) / weights.sum(dim=1)


DECODERS: dict[str, Decoder] = {
    "max value": _decode_max,
    "mid-range": _decode_midrange,
    "interpolate arg min → arg max": _decode_segment,
    "coordinate-wise arg min → arg max": _decode_coordinates,
    "single index (first ascent step)": _decode_single_index,
    "nearest visited point": _decode_nearest,
    "inverse-distance weighting": _decode_idw,
}

#: the decoders that read only the arg max, the arg min and the values there (not the paths)
EXTREMES_ONLY = (
    "max value",
    "mid-range",
    "interpolate arg min → arg max",
    "coordinate-wise arg min → arg max",
)
