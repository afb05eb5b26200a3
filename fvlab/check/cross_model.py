"""The cross-model cut: a 5 % flag cut that holds for a clean model the calibration never saw.

A rule fitted on clean calibration units — thresholds τ_s = safety × their largest value of each
signal, tail p-values among them — and then cut at the value that flags 5 % of *those same
units* is cut in-sample. For the audit's score, max_s s / τ_s, the units holding a signal's
maximum score exactly 1 / safety, so that cut sits at or just below 1 / safety: "beyond the
calibration's largest value of some signal". A fresh clean model's 64 units are new draws and
a few of them land beyond those maxima; measured on fmnist-cnn relu3, such a cut flags 6.2 % of
a held-out clean model whether one or two models are pooled (docs/check.md).

The cross-model cut takes its 5 % from units scored the way a fresh model's are: by a rule
fitted without their own model. Given K ≥ 2 clean calibration models with audit rows
R_1 … R_K and a rule ``fit(rows) → f`` (f maps rows to values, larger = more suspect),

    v_k = f_{−k}(R_k),     f_{−k} = fit(R_1 ∪ … ∪ R_K without R_k)     (leave one model out)
    c   = flag_cut(v_1 ∪ … ∪ v_K, rate)

with :func:`~fvlab.check.joint_tail.flag_cut` (the smallest value flagging at most ⌊rate · n⌋
of them, ties included); a unit of a new model is flagged when f(R_1 ∪ … ∪ R_K)(its row) ≥ c.
The final rule is fitted on every calibration model; f_{−k} on one model fewer. For a
max-threshold rule that makes c conservative (τ_{−k} ≤ τ, so a unit scores at least as high
under f_{−k} as under f); for rank-based rules (tail p-values) it is the same estimate with
(K − 1) / K of the units.

The cut's own error is that of a 5 % quantile of K models' units: with K = 4 models of 64 units
it rests on the 12 highest of 256 out-of-model values, against 3–6 in-sample values before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from fvlab.check.joint_tail import flag_cut
from fvlab.errors import FvlabError

Rows = Sequence[Mapping]
Fit = Callable[[list[Mapping]], Callable[[Rows], np.ndarray]]


def leave_one_model_out(groups: Sequence[Rows], fit: Fit) -> list[np.ndarray]:
    """v_k = f_{−k}(R_k) for every calibration model k (module docstring); ``groups`` are the
    models' rows, ``fit`` builds the rule from rows. Needs at least two models."""
    if len(groups) < 2:
        raise FvlabError(
            f"cross-model cut: needs at least 2 clean calibration models, got {len(groups)} "
            "(pass more reference weights)"
        )
    if any(len(rows) == 0 for rows in groups):
        raise FvlabError("cross-model cut: a calibration model has no units")
    out = []
    for k, rows in enumerate(groups):
        others = [row for j, group in enumerate(groups) if j != k for row in group]
        out.append(np.asarray(fit(others)(rows), float))
    return out


def cross_model_cut(groups: Sequence[Rows], fit: Fit, rate: float = 0.05) -> float:
    """c = flag_cut(∪_k f_{−k}(R_k), rate) (module docstring): flag a new model's unit when the
    rule fitted on all of ``groups`` gives it a value ≥ c."""
    if not 0 < rate < 1:
        raise FvlabError(f"cross-model cut: rate must be in (0, 1), not {rate}")
    return flag_cut(np.concatenate(leave_one_model_out(groups, fit)), rate)
