"""The joint-tail rule: how unusual is a unit on several audit signals at once?

The audit's score is a maximum, max_s value_s / τ_s, so a unit is flagged only when ONE signal
leaves the clean range. A weight-only manipulation (a gradient slingshot, push-down / push-up)
can leave every signal inside it and still sit in the clean units' tail on several at once:
its exemplars hold (the ascent from them barely moves), its path to the FV is unusually smooth
(the slingshot's field loss imposes one gradient magnitude along the way), the path response is
non-monotone. This rule scores that conjunction against the units of a clean calibration model.

Signals, each with a direction: ``"hold"`` means large values are suspect, ``"-gradient"``
means small values are. For a direction d with signed value v_d (the column, negated for
"-"), the **empirical tail p-value** of a unit against the n calibration units is

    p_d = (1 + #{calibration units with v_d ≥ the unit's v_d}) / (n + 1)         ∈ (0, 1]

(a calibration unit scored against the others leaves itself out: (1 + #others ≥) / n), and
Fisher's combination over the chosen directions D is

    F = −2 Σ_{d ∈ D} ln p_d                                              (0 for D = ∅)

F is large when a unit is in the calibration units' tail on every direction of D at once; the
p-values are not independent (the path signals share a path), so F is compared with the
calibration units' own F, never with a χ² table. The rule's score is the union of the audit
and F,

    score = max(audit score / c_audit, F / c_F) / c

with each cut c the **flag cut** of the calibration units' values (:func:`flag_cut`: the
smallest value that flags at most ⌊rate · n⌋ of them, ties included — just above the largest
if that one is shared by more); a unit is flagged when score ≥ 1. The rule needs the
calibration rows themselves (the p-values are ranks), not only thresholds.

Which directions: :func:`select_directions` picks D among the subsets of ``DIRECTIONS`` (up to
``max_size``) by the TPR it reaches on given positive rows (the worst family first, then the
mean, then the smaller D). Scored on a family that took part in the choice it is in-sample;
``benchmarks/audit_generalisation.py`` chooses D once per held-out family, from the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

DIRECTIONS = ("hold", "valley", "non_monotonicity", "-excess", "-gradient", "-jump")


def signed(rows: Sequence[Mapping], direction: str) -> np.ndarray:
    """The column of ``direction`` (``"name"`` or ``"-name"``), negated for "-" (n,)."""
    name = direction.removeprefix("-")
    values = np.array([row[name] for row in rows], float)
    if not np.isfinite(values).all():
        raise ValueError(f"signal {name!r} is missing (NaN) in some rows; the audit skipped it")
    return -values if direction.startswith("-") else values


def tail_p(
    calibration: np.ndarray, values: np.ndarray, *, leave_one_out: bool = False
) -> np.ndarray:
    """Empirical upper-tail p-value of each of ``values`` against ``calibration`` (module
    docstring); ``leave_one_out`` when ``values`` are the calibration values themselves."""
    calibration = np.sort(np.asarray(calibration, float))
    values = np.asarray(values, float)
    at_least = len(calibration) - np.searchsorted(calibration, values, side="left")
    if leave_one_out:
        return at_least / len(calibration)  # (1 + #others ≥) / ((n − 1) + 1)
    return (1 + at_least) / (len(calibration) + 1)


def flag_cut(values: np.ndarray, rate: float = 0.05) -> float:
    """The smallest c among ``values`` with #{v ≥ c} ≤ ⌊rate · n⌋, so flagging v ≥ c flags at
    most that share, ties included; when even the largest value is shared by too many, the next
    float above it (flag only what exceeds every value)."""
    values = np.asarray(values, float)
    allowed = int(np.floor(rate * len(values)))
    cut = float(np.nextafter(values.max(), np.inf))
    for value in np.unique(values)[::-1]:  # from the largest down
        if (values >= value).sum() > allowed:
            break
        cut = float(value)
    return cut


def fisher(
    calibration: Sequence[Mapping],
    rows: Sequence[Mapping],
    directions: Sequence[str],
    *,
    leave_one_out: bool = False,
) -> np.ndarray:
    """F = −2 Σ_d ln p_d of ``rows`` against the calibration rows (module docstring) (n,)."""
    total = np.zeros(len(rows))
    for direction in directions:
        p = tail_p(signed(calibration, direction), signed(rows, direction),
                   leave_one_out=leave_one_out)  # fmt: skip
        total -= 2 * np.log(p)
    return total


@dataclass
class JointTail:
    """The joint-tail rule with directions ``directions``, fixed on clean ``calibration`` rows
    and their audit scores ``calibration_scores`` (module docstring). Call it with rows and
    their audit scores; ≥ 1 is flagged."""

    calibration: Sequence[Mapping]
    calibration_scores: np.ndarray
    directions: tuple[str, ...]
    rate: float = 0.05
    audit_cut: float = field(init=False)
    fisher_cut: float = field(init=False)
    cut: float = field(init=False)
    _calibration_union: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        audit = np.asarray(self.calibration_scores, float)
        f = fisher(self.calibration, self.calibration, self.directions, leave_one_out=True)
        self.audit_cut = flag_cut(audit, self.rate)
        self.fisher_cut = flag_cut(f, self.rate) if self.directions else np.inf
        self._calibration_union = self._union(audit, f)
        self.cut = flag_cut(self._calibration_union, self.rate)

    def _union(self, audit: np.ndarray, f: np.ndarray) -> np.ndarray:
        return np.maximum(np.asarray(audit, float) / self.audit_cut, f / self.fisher_cut)

    def calibration_values(self) -> np.ndarray:
        """The rule's values on its own calibration units (left out one at a time)."""
        return self._calibration_union / self.cut

    def __call__(self, rows: Sequence[Mapping], scores: np.ndarray) -> np.ndarray:
        return self._union(scores, fisher(self.calibration, rows, self.directions)) / self.cut


def select_directions(
    calibration: Sequence[Mapping],
    calibration_scores: np.ndarray,
    positives: Mapping[str, tuple[Sequence[Mapping], np.ndarray]],
    *,
    candidates: Sequence[str] = DIRECTIONS,
    max_size: int = 3,
    rate: float = 0.05,
) -> tuple[tuple[str, ...], dict[str, float]]:
    """The directions D (a subset of ``candidates``, up to ``max_size``, ∅ included) whose
    joint-tail rule flags most of the ``positives`` (name → (rows, audit scores)): the largest
    worst-family TPR, then the largest mean TPR, then the smallest D, then the first in order.
    Returns D and its TPR per family."""
    if not positives:
        raise ValueError("select_directions needs at least one family of positive rows")
    best, best_key, best_tpr = (), None, {}
    for size in range(max_size + 1):
        for directions in combinations(candidates, size):
            rule = JointTail(calibration, calibration_scores, directions, rate)
            tpr = {
                name: float((rule(rows, s) >= 1).mean()) for name, (rows, s) in positives.items()
            }
            key = (min(tpr.values()), float(np.mean(list(tpr.values()))), -size)
            if best_key is None or key > best_key:
                best, best_key, best_tpr = directions, key, tpr
    return best, best_tpr
