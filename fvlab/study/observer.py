"""A machine observer for the causal-understanding task, in the spirit of MIS (2024).

Feature space: the output of one layer of a model available offline, by default the study
model's own penultimate layer (``gap`` of ``fmnist-cnn``: 128 numbers per image); a conv layer's
output is flattened with its positions, so spatial layout counts. Similarity = cosine.

Decision variable of an image set with occluded queries q_max, q_min and references r_1…r_n:

    dv = (1/n) Σ_i cos(f(q_max), f(r_i)) − (1/n) Σ_i cos(f(q_min), f(r_i))

(dv > 0 favours "max", the correct answer). Choice model: P(correct) = σ(α · dv), one α for all
trials, fitted by maximum likelihood to observed answers (:func:`fit_alpha`); without answers
the observer is deterministic (α → ∞: correct iff dv > 0, a coin flip if dv = 0).

Condition ``none`` has no references. Fallback: the unoccluded query is the only reference, so
the observer picks the occlusion that changes the image's representation least — what a person
without references can do (keep what the image looks like).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fvlab.errors import FvlabError
from fvlab.study.manifest import (
    CONDITIONS,
    image_sets,
    load_images,
    load_study_model,
    read_manifest,
)

DEFAULT_FEATURE_LAYER = "gap"


@dataclass
class ObserverTrials:
    """One decision variable per image set (arrays aligned with ``set_ids``)."""

    set_ids: list[str]
    unit_ids: list[str]
    layers: list[str]
    dv: np.ndarray


def features(loaded, images: torch.Tensor, layer: str, batch_size: int = 512) -> torch.Tensor:
    """L2-normalised, flattened outputs of ``layer`` for images (N, C, H, W) in [0, 1]."""
    from fvlab.models.hooks import Capture

    parts = []
    with torch.no_grad(), Capture(loaded.module, [layer], detach=True, stop_early=True) as cap:
        for first in range(0, images.shape[0], batch_size):
            cap.run(loaded, images[first : first + batch_size].to(loaded.device))
            parts.append(cap[layer].flatten(1).float().cpu())
    return torch.nn.functional.normalize(torch.cat(parts), dim=1)


def decision_variables(
    study_dir: str | Path,
    condition: str,
    *,
    loaded=None,
    feature_layer: str = DEFAULT_FEATURE_LAYER,
    kinds: Sequence[str] = ("main",),
    batch_size: int = 512,
) -> ObserverTrials:
    """The decision variable of every image set of the given unit kinds (module docstring)."""
    if condition not in CONDITIONS:
        raise FvlabError(f"unknown condition {condition!r}; valid: {', '.join(CONDITIONS)}")
    manifest = read_manifest(study_dir)
    loaded = loaded or load_study_model(manifest)
    pairs = list(image_sets(manifest, kinds))
    if not pairs:
        raise FvlabError(f"{study_dir} has no image sets of kind {', '.join(kinds)}")
    refs = [s["references"][condition] or [s["query"]] for _, s in pairs]
    paths = list(
        dict.fromkeys(
            p
            for (_, s), r in zip(pairs, refs, strict=True)
            for p in (s["occluded_max"], s["occluded_min"], *r)
        )
    )
    row = {p: i for i, p in enumerate(paths)}
    feats = features(loaded, load_images(study_dir, paths), feature_layer, batch_size)
    dvs = []
    for (_, s), r in zip(pairs, refs, strict=True):
        ref = feats[[row[p] for p in r]]  # (n, D)
        sim_max = (ref @ feats[row[s["occluded_max"]]]).mean()
        sim_min = (ref @ feats[row[s["occluded_min"]]]).mean()
        dvs.append(float(sim_max - sim_min))
    return ObserverTrials(
        [s["set_id"] for _, s in pairs],
        [u["unit_id"] for u, _ in pairs],
        [u["layer"] for u, _ in pairs],
        np.asarray(dvs, dtype=np.float64),
    )


def p_correct(dv: np.ndarray | Sequence[float], alpha: float | None) -> np.ndarray:
    """σ(α · dv); ``alpha=None`` is the deterministic limit (1 if dv > 0, ½ if 0, else 0)."""
    from scipy.special import expit

    dv = np.asarray(dv, dtype=np.float64)
    if alpha is None:
        return np.where(dv > 0, 1.0, np.where(dv < 0, 0.0, 0.5))
    return expit(alpha * dv)


def fit_alpha(
    dvs: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, max_beta: float = 200.0
) -> float:
    """Maximum-likelihood α of P(correct) = σ(α · dv) for answers ``correct`` (0/1) given on
    trials with decision variables ``dvs``: maximise Σ c·log σ(α dv) + (1 − c)·log σ(−α dv).

    α is searched in |α| ≤ max_beta / std(dv) (perfectly separable data would push α → ∞)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_expit

    dv = np.asarray(dvs, dtype=np.float64)
    c = np.asarray(correct, dtype=np.float64)
    if dv.shape != c.shape or dv.ndim != 1 or dv.size == 0:
        raise FvlabError(
            f"fit_alpha needs two equally long 1-D arrays, got {dv.shape} and {c.shape}"
        )
    if not np.all((c == 0) | (c == 1)):
        raise FvlabError("fit_alpha: 'correct' must hold only 0/1 (False/True)")
    scale = float(np.std(dv)) or float(np.max(np.abs(dv)))
    if scale == 0:
        raise FvlabError("fit_alpha: every decision variable is 0, so alpha is not identifiable")

    def nll(alpha: float) -> float:
        z = alpha * dv
        return -float(np.sum(c * log_expit(z) + (1 - c) * log_expit(-z)))

    bound = max_beta / scale
    result = minimize_scalar(
        nll, bounds=(-bound, bound), method="bounded", options={"xatol": 1e-8 * bound}
    )
    return float(result.x)


def per_unit_score(
    unit_ids: Sequence[str], dvs: Sequence[float] | np.ndarray, alpha: float | None
) -> dict[str, float]:
    """Mean P(correct) over each unit's trials (the unit's interpretability score)."""
    probs = p_correct(dvs, alpha)
    scores: dict[str, list[float]] = {}
    for unit, p in zip(unit_ids, probs, strict=True):
        scores.setdefault(unit, []).append(float(p))
    return {u: float(np.mean(v)) for u, v in scores.items()}


def observer_accuracy(
    study_dir: str | Path,
    condition: str,
    *,
    alpha: float | None = None,
    fit_to: Mapping[str, Sequence[bool]] | None = None,
    loaded=None,
    feature_layer: str = DEFAULT_FEATURE_LAYER,
    kinds: Sequence[str] = ("main",),
    show_progress: bool = False,
) -> dict[str, Any]:
    """The machine observer's expected accuracy in one condition (JSON-ready).

    ``alpha``: a fixed α; ``fit_to``: {set_id: [correct answers of people on that set]} to fit α
    by maximum likelihood first; neither: the deterministic observer. Returns the mean P(correct)
    over the study's image sets (``accuracy``), the deterministic accuracy, per-unit and per-layer
    scores, α and the number of image sets. ``show_progress`` is accepted for symmetry with the
    other long steps; feature extraction of a study takes seconds.
    """
    trials = decision_variables(
        study_dir, condition, loaded=loaded, feature_layer=feature_layer, kinds=kinds
    )
    if fit_to is not None:
        index = {s: i for i, s in enumerate(trials.set_ids)}
        unknown = [s for s in fit_to if s not in index]
        if unknown:
            raise FvlabError(f"fit_to names image sets not in the study: {unknown[:5]}")
        dv = [trials.dv[index[s]] for s, answers in fit_to.items() for _ in answers]
        correct = [bool(a) for answers in fit_to.values() for a in answers]
        alpha = fit_alpha(dv, correct)
    probs = p_correct(trials.dv, alpha)
    by_layer: dict[str, list[float]] = {}
    for layer, p in zip(trials.layers, probs, strict=True):
        by_layer.setdefault(layer, []).append(float(p))
    return {
        "condition": condition,
        "feature_layer": feature_layer,
        "alpha": alpha,
        "n_sets": len(trials.set_ids),
        "accuracy": float(np.mean(probs)),
        "accuracy_deterministic": float(np.mean(p_correct(trials.dv, None))),
        "mean_dv": float(np.mean(trials.dv)),
        "per_unit": per_unit_score(trials.unit_ids, trials.dv, alpha),
        "per_layer": {layer: float(np.mean(v)) for layer, v in by_layer.items()},
        "reference_fallback": "query" if condition == "none" else None,
    }
