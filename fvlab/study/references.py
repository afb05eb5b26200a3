"""Reference images of a unit: diverse feature visualizations and blurred natural exemplars.

Synthetic references (P2): a batch of ``n`` images per unit maximising

    J_b = a_u(x_b) / σ_u − λ · (1/(n−1)) Σ_{j≠b, j in the same unit's batch} ⟨Ĝ_b, Ĝ_j⟩

with a_u the spatial mean of the unit's channel, σ_u a scale (the build passes the unit's
activation standard deviation over the dataset, so one λ fits every layer; default λ = 1, see
docs/study-stimuli.md) and Ĝ the L2-normalised Gram matrix (C×C) of an element's activations
in the unit's layer (P2 used raw activations, λ = 100, n = 9 on InceptionV1). fvlab's
``obj.diversity`` is −Gram similarity over the WHOLE batch; here the similarity is restricted
to each unit's own ``n`` images so that all units of all layers render in ONE optimisation.

Blurred references (P2): the exemplar is Gaussian-blurred except one square window kept sharp;
the window is the one (on the stride grid) whose sharp-inside/blurred-outside image gives the
unit's highest activation. P2 used a 90 px window and a 21×21 kernel at 224 px; the defaults
scale both with the image size (:func:`blur_kernel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from fvlab.errors import FvlabError
from fvlab.optvis.objectives import Activations, Objective
from fvlab.progress import progress_bar
from fvlab.study.occlusion import grid_positions, unit_activations, window_masks

if TYPE_CHECKING:
    from fvlab.engine.base import Engine
    from fvlab.engine.store import ShardStore

#: P2's blur kernel (px) at its 224 px image size.
PAPER_KERNEL, PAPER_SIZE = 21, 224


def grouped_diversity_objective(
    layer_units: Sequence[tuple[str, int]],
    per_unit: int,
    diversity: float,
    scales: Sequence[float] | None = None,
) -> Objective:
    """Element b = g·per_unit + i maximises unit ``layer_units[g]`` divided by ``scales[g]``
    (default 1) minus ``diversity`` times its mean Gram cosine to the other images of group g
    (see the module docstring)."""
    scale_of = [1.0] * len(layer_units) if scales is None else [float(s) for s in scales]
    if len(scale_of) != len(layer_units) or min(scale_of) <= 0:
        raise FvlabError(f"need one positive scale per unit, got {scales}")
    if per_unit < 1:
        raise FvlabError(f"need at least one image per unit, got {per_unit}")
    by_layer: dict[str, list[int]] = {}
    for g, (layer, _) in enumerate(layer_units):
        by_layer.setdefault(layer, []).append(g)
    total = len(layer_units) * per_unit

    def fn(a: Activations) -> torch.Tensor:
        out = None
        for layer, groups in by_layer.items():
            act = a[layer]
            if act.shape[0] != total:
                raise ValueError(f"objective expects a batch of {total}, got {act.shape[0]}")
            idx = torch.tensor(
                [g * per_unit + i for g in groups for i in range(per_unit)], device=act.device
            )
            unit = torch.tensor(
                [layer_units[g][1] for g in groups for _ in range(per_unit)], device=act.device
            )
            sub = act[idx]
            means = sub.flatten(2).mean(-1) if sub.ndim > 2 else sub
            scale = torch.tensor(
                [scale_of[g] for g in groups for _ in range(per_unit)], device=act.device
            )
            values = means.gather(1, unit.view(-1, 1)).squeeze(1) / scale
            if per_unit > 1 and diversity != 0:
                flat = sub.flatten(2) if sub.ndim > 2 else sub[:, :, None]
                grams = F.normalize((flat @ flat.transpose(1, 2)).flatten(1), dim=1)
                grams = grams.view(len(groups), per_unit, -1)
                sims = grams @ grams.transpose(1, 2)  # (G, n, n)
                off = (sims.sum(2) - sims.diagonal(dim1=1, dim2=2)) / (per_unit - 1)
                values = values - diversity * off.flatten()
            if out is None:
                out = values.new_zeros(total)
            out = out.index_put((idx,), values)
        return out

    return Objective(fn, list(by_layer), f"grouped_diversity({len(layer_units)}×{per_unit})")


def reference_shard(loaded, shard: tuple) -> torch.Tensor:
    """One shard of :func:`render_references`: ``(first, layer_units, per_unit, steps,
    diversity, scales, seed, show_progress)`` → the references (g, per_unit, C, H, W) of units
    first … first + g − 1; element i of the shard is keyed by its position in the whole render,
    first · per_unit + i, so its image does not depend on the shard."""
    from fvlab.optvis.api import render

    first, layer_units, per_unit, steps, diversity, scales, seed, show_progress = shard
    objective = grouped_diversity_objective(layer_units, per_unit, diversity, scales)
    batch = len(layer_units) * per_unit
    result = render(
        loaded,
        objective=objective,
        batch=batch,
        steps=steps,
        seed=seed,
        show_progress=show_progress,
        keys=range(first * per_unit, first * per_unit + batch),
    )
    return result.images.view(len(layer_units), per_unit, *result.images.shape[1:])


def render_references(
    loaded,
    layer_units: Sequence[tuple[str, int]],
    *,
    per_unit: int = 9,
    steps: int = 256,
    diversity: float = 1.0,
    scales: Sequence[float] | None = None,
    seed: int = 0,
    show_progress: bool = True,
    units_per_shard: int | None = None,
    engine: Engine | None = None,
    store: ShardStore | None = None,
) -> torch.Tensor:
    """Feature visualizations (G, per_unit, C, H, W) in [0, 1] for every unit, with
    fvlab.render's defaults (FFT parameterization, standard transforms): ``units_per_shard``
    units (default: all) per optimisation, each a shard run by ``engine`` (default: this
    process) and kept in ``store``. Element b of the whole render (unit b // per_unit) has its
    own draws, keyed by b, and the objective couples only a unit's own images, so the images do
    not depend on the shard plan. ``scales``: divide each unit's activation by this (e.g. its
    standard deviation over natural images) so that one ``diversity`` weight means the same for
    every unit and layer."""
    from fvlab.engine.run import run_shards

    units = list(layer_units)
    scale_of = [1.0] * len(units) if scales is None else [float(x) for x in scales]
    step = units_per_shard or max(len(units), 1)
    if step < 1:
        raise FvlabError(f"units_per_shard: must be at least 1, not {units_per_shard}")
    inner = show_progress and getattr(engine, "name", "local") == "local"
    shards = [
        (a, units[a : a + step], per_unit, steps, diversity, scale_of[a : a + step], seed, inner)
        for a in range(0, len(units), step)
    ]
    parts = run_shards(
        reference_shard, loaded, shards, [f"references-{k:05d}" for k in range(len(shards))],
        engine=engine, store=store, show_progress=show_progress and len(shards) > 1,
        description=f"rendering references of {len(units)} units",
    )  # fmt: skip
    return torch.cat(parts)


def blur_kernel(size: int) -> tuple[int, float]:
    """P2's 21×21 kernel scaled to ``size`` px (odd, at least 3) and the sigma OpenCV derives
    from a kernel size k when none is given: σ = 0.3·((k − 1)/2 − 1) + 0.8."""
    k = max(3, round(PAPER_KERNEL * size / PAPER_SIZE))
    k += 1 - k % 2
    return k, 0.3 * ((k - 1) / 2 - 1) + 0.8


def gaussian_blur(images: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """Gaussian blur of (..., C, H, W) images (reflect padding; torchvision's implementation)."""
    from torchvision.transforms.v2.functional import gaussian_blur as tv_blur

    if kernel < 1 or kernel % 2 == 0 or sigma <= 0:
        raise FvlabError(
            f"blur kernel must be an odd size >= 1 and sigma > 0, got {kernel}, {sigma}"
        )
    return tv_blur(images, kernel_size=[kernel, kernel], sigma=[sigma, sigma])


def blurred_references(
    loaded,
    images: torch.Tensor,
    layer_units: Sequence[tuple[str, int]],
    *,
    window: int,
    stride: int,
    kernel: int,
    sigma: float,
    batch_size: int = 1024,
    show_progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur images (G, M, C, H, W) of unit ``layer_units[g]`` except the window that maximises
    the unit's activation. Returns the blurred references (G, M, C, H, W) and each image's window
    corner (G, M, 2) as (y, x)."""
    g_count, m, c, h, w = images.shape
    positions = grid_positions(h, window, stride)
    masks = window_masks(h, window, positions)  # (P, 1, H, W)
    blurred = gaussian_blur(images, kernel, sigma)
    p = len(positions)
    per_pass = max(1, batch_size // (m * p))
    best = torch.empty(g_count, m, dtype=torch.long)
    with progress_bar("blur windows", g_count * m, show_progress) as advance:
        for first in range(0, g_count, per_pass):
            sl = slice(first, min(first + per_pass, g_count))
            sharp, soft = images[sl, :, None], blurred[sl, :, None]  # (g, M, 1, C, H, W)
            variants = torch.where(masks, sharp, soft)  # (g, M, P, C, H, W)
            acts = unit_activations(
                loaded, variants.flatten(1, 2), layer_units[sl], batch_size=batch_size
            )
            best[sl] = acts.view(-1, m, p).argmax(2)
            advance(variants.shape[0] * m)
    keep = masks[best]  # (G, M, 1, H, W)
    return torch.where(keep, images, blurred), positions[best]
