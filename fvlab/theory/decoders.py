"""Decoders: predictions of a unit's value at query points from its visualization alone.

Each decoder maps (:class:`~fvlab.theory.ascent.Visualization`, queries (K, d)) to predicted
values (K,). They use only what a visualization reveals (arg max, arg min, their values, the
points visited on the way and the values there), so two units with the same visualization get
the same predictions — which is all the lower bound max(|u − a|, |u − b|) ≥ |a − b| / 2 needs.
"""

from __future__ import annotations

from collections.abc import Callable

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
    "nearest visited point": _decode_nearest,
    "inverse-distance weighting": _decode_idw,
}
