"""Vectorised similarity of activation vectors: Spearman, Pearson and cosine.

All three are a dot product of transformed, unit-length vectors, so a whole similarity matrix
is ONE matrix product::

    cosine(a, b)   = ⟨a/‖a‖, b/‖b‖⟩
    pearson(a, b)  = cosine(a − ā, b − b̄)
    spearman(a, b) = pearson(rank(a), rank(b))      ranks 1…D, ties get their average rank

:func:`unit_vectors` applies the transform row by row; ``unit_vectors(A) @ unit_vectors(B).T``
is the (N_A, N_B) similarity matrix. A row with zero norm after the transform (a constant
vector for Pearson/Spearman, the zero vector for cosine) has no defined correlation; it becomes
the zero vector, i.e. similarity 0 with everything (scipy returns NaN there).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from fvlab.jobs import SettingsError

Metric = Literal["spearman", "pearson", "cosine"]
METRICS: tuple[str, ...] = ("spearman", "pearson", "cosine")


def check_metric(metric: str) -> str:
    """Return ``metric`` if valid, else raise a :class:`~fvlab.jobs.SettingsError` (a
    :class:`~fvlab.errors.FvlabError`) for the parameter ``metric`` naming the valid ones."""
    if metric not in METRICS:
        raise SettingsError(
            "metric", f"unknown similarity metric {metric!r}; valid: {', '.join(METRICS)}"
        )
    return metric


def _average_ranks_numpy(x: np.ndarray) -> np.ndarray:
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    n, d = x.shape
    order = np.argsort(x, axis=-1)
    values = np.sort(x, axis=-1)  # a second (SIMD) sort is cheaper than gathering by ``order``
    # runs of equal values over the flattened rows; every row starts a new run
    new_run = np.ones((n, d), dtype=bool)
    np.not_equal(values[:, 1:], values[:, :-1], out=new_run[:, 1:])
    flat_new = new_run.ravel()
    run_id = np.cumsum(flat_new, dtype=np.int64) - 1
    starts = np.flatnonzero(flat_new)
    ends = np.append(starts[1:], n * d) - 1
    # average 1-based rank of each run within its row (a run never crosses rows)
    mid = starts % d + (ends - starts) / 2 + 1
    ranks = np.empty(n * d, dtype=np.float64)
    ranks[(order + (np.arange(n, dtype=np.int64) * d)[:, None]).ravel()] = mid[run_id]
    return ranks.reshape(shape)


def _average_ranks_torch(x: torch.Tensor) -> torch.Tensor:
    values, order = torch.sort(x, dim=-1)
    d = x.shape[-1]
    position = torch.arange(d, device=x.device).expand_as(values)
    new_run = torch.ones_like(values, dtype=torch.bool)
    new_run[..., 1:] = values[..., 1:] != values[..., :-1]
    run_end = torch.ones_like(values, dtype=torch.bool)
    run_end[..., :-1] = new_run[..., 1:]
    start = torch.where(new_run, position, torch.zeros_like(position)).cummax(-1).values
    end_marks = torch.where(run_end, position, torch.full_like(position, d - 1))
    end = end_marks.flip(-1).cummin(-1).values.flip(-1)
    ranks_sorted = (start + end).to(torch.float64) / 2 + 1
    return torch.empty_like(ranks_sorted).scatter_(-1, order, ranks_sorted)


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1…D (float64) along the last dimension; tied values share the mean of their ranks.

    One sort per row: after sorting, a run of equal values occupying sorted positions s…e
    (0-based) gets rank (s + e)/2 + 1. Run starts come from a cumulative max over "a new value
    starts here", run ends from a reversed cumulative min over "the value ends here". On the
    CPU the sort runs in numpy (its SIMD argsort is ~2-3× faster than torch.sort there).
    """
    if x.ndim == 0:
        raise ValueError("average_ranks needs at least one dimension")
    if x.device.type == "cpu":
        return torch.from_numpy(_average_ranks_numpy(x.detach().numpy()))
    return _average_ranks_torch(x)


def unit_vectors(
    x: torch.Tensor, metric: Metric = "spearman", dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Transform rows of ``x`` (N, D) so that row dot products are the chosen similarity.

    The result has ``dtype`` (default: ``x``'s floating dtype; ranks are always exact). Pass
    float64 for ~1e-12 agreement with scipy; float32 agrees to ~1e-6. Zero-norm rows become
    zero vectors (see the module docstring).
    """
    check_metric(metric)
    if x.ndim != 2:
        raise ValueError(f"expected a (N, D) matrix of activation vectors, got {tuple(x.shape)}")
    if dtype is None:
        dtype = x.dtype if x.is_floating_point() else torch.float64
    if metric == "spearman":
        # centred ranks are exactly zero only for a row of ties (exact float64 arithmetic)
        x = average_ranks(x).to(dtype)
        x = x - x.mean(dim=1, keepdim=True)
        norm = x.norm(dim=1, keepdim=True)
        degenerate = norm == 0
    else:
        x = x.to(dtype)
        # a constant row leaves only rounding noise after centring: compare with its scale
        scale = x.abs().amax(dim=1, keepdim=True) * x.shape[1] ** 0.5
        if metric == "pearson":
            x = x - x.mean(dim=1, keepdim=True)
        norm = x.norm(dim=1, keepdim=True)
        degenerate = (norm == 0) | (norm <= torch.finfo(x.dtype).eps * 64 * scale)
    return x * torch.where(degenerate, torch.zeros_like(norm), 1 / norm.clamp_min(1e-300))


def similarity_matrix(
    a: torch.Tensor, b: torch.Tensor, metric: Metric = "spearman"
) -> torch.Tensor:
    """(N_A, N_B) matrix of similarities between the rows of ``a`` and the rows of ``b``."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"expected (N_A, D) and (N_B, D) with the same D, got {tuple(a.shape)}, "
            f"{tuple(b.shape)}"
        )
    return unit_vectors(a, metric) @ unit_vectors(b, metric).T


def pairwise_similarity(
    a: torch.Tensor, b: torch.Tensor, metric: Metric = "spearman"
) -> torch.Tensor:
    """(N,) similarity of row i of ``a`` with row i of ``b``."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (N, D) matrices, got {tuple(a.shape)}, {tuple(b.shape)}")
    return (unit_vectors(a, metric) * unit_vectors(b, metric)).sum(1)
