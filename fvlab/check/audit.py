"""Audit the units of one layer: is each unit's feature visualization representative of it?

For every unit u (channel spatial mean, or a linear layer's output) the audit measures

* ``excess``  how far the FV's activation lies beyond the natural distribution:
              (a_FV − mean_nat) / (max_nat − mean_nat); 1 = as high as the most activating
              natural image. An FV usually exceeds the natural maximum a few times; a branch
              that never fires on natural data but dominates the FV (silent units) drives it
              far beyond that.
* ``jump``    the largest discontinuity of u's activation map (‖Δmap‖∞) along the pixel paths
              from u's top natural exemplar to its FV and to earlier states of the FV's
              optimisation (a gate may judge the final image natural but not the path there;
              :mod:`fvlab.check.interpolation`), divided by the natural range of one position
              of the map (max over images of the spatial max − min of the spatial min).
              Continuous networks give ≈ 0 (a ReLU network's response changes by slope ×
              interval width); a hard gate (a fooling circuit) keeps a finite jump however
              fine the bisection.
* ``active``  the fraction of natural images on which u is > 0 anywhere (spatial max > 0);
              ≈ 0 means the unit is (near) silent on natural data, so its FV shows something
              natural images never evoke.
* ``path``    path similarity of the FV with u's own top exemplars at the audited layer and
              averaged over the layers up to it, normalised as in :mod:`fvlab.check.paths`
              (1 = as similar as two exemplars, 0 = as similar as an exemplar and a random
              natural image). Reported, not scored: P1 found FVs of clean units near 0 in
              most layers, so a low value alone is not a sign of manipulation.

Score = max(excess / excess_threshold, jump / jump_threshold, silent_threshold / active); a unit
is flagged when its score is >= 1, with the reasons (``out_of_distribution``, ``gate``,
``silent``) that crossed their threshold. All units are rendered in ONE batched optimisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from fvlab.activations.sweep import sweep
from fvlab.check.interpolation import response_path
from fvlab.check.paths import exemplar_path_similarity
from fvlab.data.dataset import fetch_images
from fvlab.errors import FvlabError
from fvlab.models.probe import forward_order
from fvlab.progress import progress_bar

FLAGS = ("out_of_distribution", "gate", "silent")


@dataclass(frozen=True)
class AuditThresholds:
    """Flag thresholds (defaults calibrated on clean fmnist-cnn, see docs/check.md)."""

    excess: float = 10.0
    jump: float = 0.01
    silent: float = 0.001

    def __post_init__(self) -> None:
        if min(self.excess, self.jump, self.silent) <= 0:
            raise FvlabError(f"audit thresholds must be positive, got {self}")


@dataclass
class AuditResult:
    """One row per unit (dicts with the measures, score and flags) plus the settings."""

    model: str
    layer: str
    rows: list[dict]
    path_layers: list[str]
    settings: dict = field(default_factory=dict)
    fv_images: torch.Tensor | None = field(default=None, repr=False)
    exemplars: torch.Tensor | None = field(default=None, repr=False)

    @property
    def scores(self) -> np.ndarray:
        return np.array([row["score"] for row in self.rows])

    @property
    def flagged(self) -> list[int]:
        return [row["unit"] for row in self.rows if row["flags"]]

    def summary(self) -> dict:
        counts = {flag: sum(flag in row["flags"] for row in self.rows) for flag in FLAGS}
        return {
            "model": self.model,
            "layer": self.layer,
            "units": len(self.rows),
            "flagged": len(self.flagged),
            "flagged_fraction": len(self.flagged) / max(len(self.rows), 1),
            "flag_counts": counts,
            "flagged_units": self.flagged,
            "path_layers": self.path_layers,
            "settings": self.settings,
        }


def _layer_units(model, layer: str) -> int:
    from fvlab.models.hooks import capture

    size = model.spec.size
    with torch.no_grad(), capture(model.module, [layer], detach=True) as cap:
        model(torch.full((1, model.spec.channels, size, size), 0.5, device=model.device))
        return int(cap[layer].shape[1])


def _path_layers(model, layer: str, path_layers: Sequence[str] | None) -> list[str]:
    if path_layers is not None:
        return list(path_layers)
    order = forward_order(model)
    return order[: order.index(layer) + 1] if layer in order else [*order, layer]


def score_units(
    excess: np.ndarray, jump: np.ndarray, active: np.ndarray, thresholds: AuditThresholds
) -> tuple[np.ndarray, list[list[str]]]:
    """Combined score and flag reasons per unit (see the module docstring)."""
    parts = {
        "out_of_distribution": excess / thresholds.excess,
        "gate": jump / thresholds.jump,
        "silent": thresholds.silent / np.maximum(active, 1e-12),
    }
    score = np.max(np.stack(list(parts.values())), axis=0)
    flags = [[name for name, part in parts.items() if part[i] >= 1] for i in range(len(score))]
    return score, flags


def audit(
    model,
    layer: str,
    dataset,
    *,
    units: Sequence[int] | None = None,
    steps: int = 256,
    top_k: int = 5,
    n_reference: int = 32,
    snapshot_steps: Sequence[int] = (4, 16, 64),
    path_exemplars: int = 3,
    relu_redirect_steps: int = 16,
    path_layers: Sequence[str] | None = None,
    metric: str = "spearman",
    thresholds: AuditThresholds | None = None,
    seed: int = 0,
    batch_size: int = 256,
    show_progress: bool = True,
    **render_kwargs,
) -> AuditResult:
    """Audit ``units`` (default: all) of ``layer`` against natural images from ``dataset``.

    Steps: (1) one streaming sweep of ``dataset`` for per-unit statistics (spatial mean:
    moments and top-``top_k`` exemplars; spatial max: active fraction; a random sample of
    ``n_reference`` images); (2) one batched render of every unit (``steps`` updates,
    ``render_kwargs`` passed on to :func:`fvlab.render`), keeping the images after
    ``snapshot_steps`` updates too, with lucid's ReLU-gradient redirection for the first
    ``relu_redirect_steps`` updates so that a unit dead on the start image still gets a
    visualization (and a hidden branch behind it a chance to show); (3) response paths from
    each of the unit's top ``path_exemplars`` exemplars to its final FV and to each snapshot,
    with bisected jumps (several exemplars: a gate may misroute the most extreme natural image,
    and a path whose two ends it routes alike has nothing to jump); (4) exemplar path
    similarity; (5) scores and flags."""
    import fvlab

    thresholds = thresholds or AuditThresholds()
    if top_k < 2:
        raise FvlabError(f"top_k must be >= 2 (exemplar pairs are compared), got {top_k}")
    if not 1 <= path_exemplars <= top_k:
        raise FvlabError(f"path_exemplars must be in 1…top_k ({top_k}), got {path_exemplars}")
    n_units = _layer_units(model, layer)
    unit_ids = list(range(n_units)) if units is None else [int(u) for u in units]
    bad = [u for u in unit_ids if not 0 <= u < n_units]
    if bad or not unit_ids:
        raise FvlabError(
            f"layer {layer!r} has {n_units} units (0–{n_units - 1}); invalid units: {bad[:10]}"
        )
    if len(dataset) < max(top_k, n_reference):
        raise FvlabError(f"the dataset has {len(dataset)} images; the audit needs >= {top_k}")
    natural = sweep(
        model,
        dataset,
        {layer: ["spatial_mean", "spatial_max", "spatial_min"]},
        top_k=top_k,
        sample=n_reference,
        seed=seed,
        batch_size=batch_size,
        show_progress=show_progress,
    )
    mean_stats = natural[(layer, "spatial_mean")]
    max_stats = natural[(layer, "spatial_max")]
    min_stats = natural[(layer, "spatial_min")]
    ids = np.asarray(unit_ids)
    nat_mean, nat_max = mean_stats.moments.mean[ids], mean_stats.moments.max[ids]
    nat_min, nat_std = mean_stats.moments.min[ids], mean_stats.moments.std[ids]
    active = max_stats.moments.active_fraction[ids]
    # the natural range of one position of the unit's map: the scale of a jump of the map
    position_range = max_stats.moments.max[ids] - min_stats.moments.min[ids]
    exemplar_index = mean_stats.top.indices[ids]  # (U, k)

    render = fvlab.render(
        model,
        layer,
        unit_ids,
        steps=steps,
        seed=seed,
        thresholds=[t for t in snapshot_steps if t < steps] + [steps],
        relu_redirect_steps=relu_redirect_steps,
        show_progress=show_progress,
        **render_kwargs,
    )
    fv_images = render.images
    # path endpoints: the final FV and earlier states of the same optimisation
    endpoints = [fv_images] + [img for t, img in render.snapshots.items() if t < steps]
    endpoint_steps = [steps] + [t for t in render.snapshots if t < steps]
    fv_act = render.objective.double().numpy()
    size = fv_images.shape[-1]
    wanted = np.concatenate([exemplar_index.ravel(), mean_stats.sample.indices])
    fetched = fetch_images(dataset, wanted, batch_size)
    if fetched.shape[-1] != size:
        raise FvlabError(
            f"FVs are {size} px but natural images {fetched.shape[-1]} px; render at the "
            "natural images' size"
        )
    exemplars = fetched[: exemplar_index.size].view(len(unit_ids), top_k, *fetched.shape[1:])
    reference = fetched[exemplar_index.size :]

    with progress_bar("audit: paths", 2, show_progress) as advance:
        # one path per (exemplar rank e, endpoint j, unit u), ordered e-major then j then u
        n_units, n_ends = len(unit_ids), len(endpoints)
        starts = exemplars[:, :path_exemplars].transpose(0, 1)  # (E, U, C, H, W)
        response = response_path(
            model,
            layer,
            unit_ids * (n_ends * path_exemplars),
            starts.repeat_interleave(n_ends, dim=0).flatten(0, 1),
            torch.cat(endpoints).repeat(path_exemplars, 1, 1, 1),
            batch_size=batch_size,
        )
        jumps = response.jump.view(path_exemplars * n_ends, n_units)
        worst = jumps.argmax(0)
        pick = worst * n_units + torch.arange(n_units)
        advance(1)
        layers = _path_layers(model, layer, path_layers)
        paths = exemplar_path_similarity(
            model, fv_images, exemplars, reference, layers, metric=metric
        )
        advance(1)

    spread = np.maximum(nat_max - nat_mean, 1e-12)
    excess = (fv_act - nat_mean) / spread
    jump = jumps.amax(0).numpy() / np.maximum(position_range, 1e-12)
    score, flags = score_units(excess, jump, active, thresholds)
    normalised = paths.normalised
    rows = []
    for i, unit in enumerate(unit_ids):
        rows.append(
            {
                "unit": unit,
                "score": float(score[i]),
                "flags": flags[i],
                "excess": float(excess[i]),
                "jump": float(jump[i]),
                "jump_at": float(response.jump_at[pick[i]]),
                "jump_endpoint_step": int(endpoint_steps[int(worst[i]) % n_ends]),
                "jump_exemplar_rank": int(worst[i]) // n_ends + 1,
                "active_fraction": float(active[i]),
                "path_at_layer": float(normalised[-1, i]),
                "path_mean": float(np.nanmean(normalised[:, i])),
                "fv_activation": float(fv_act[i]),
                "natural_mean": float(nat_mean[i]),
                "natural_std": float(nat_std[i]),
                "natural_min": float(nat_min[i]),
                "natural_max": float(nat_max[i]),
                "non_monotonicity": float(response.non_monotonicity[i]),  # to the final FV
                "top_exemplars": [int(j) for j in exemplar_index[i]],
            }
        )
    settings = {
        "steps": steps,
        "top_k": top_k,
        "n_reference": n_reference,
        "metric": metric,
        "seed": seed,
        "natural_images": natural.n_images,
        "thresholds": asdict(thresholds),
        "bisection_width": response.width,
        "path_exemplars": path_exemplars,
        "relu_redirect_steps": relu_redirect_steps,
        "path_endpoints": endpoint_steps,
    }
    return AuditResult(model.name, layer, rows, layers, settings, fv_images, exemplars[:, 0])


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """ROC AUC of scores: P(positive > negative) + ½ P(tie) (the Mann–Whitney U statistic
    divided by n_pos · n_neg)."""
    from scipy.stats import mannwhitneyu

    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if positive.size == 0 or negative.size == 0:
        raise FvlabError("ROC AUC needs at least one positive and one negative score")
    return float(mannwhitneyu(positive, negative).statistic / (positive.size * negative.size))
