"""Analysis of the stored answers: exclusions, accuracy per condition, tests, agreement.

Per participant: accuracy = correct / answered over their *main* trials (catch and practice
trials are only used for exclusion). Per condition, over included participants:

* mean accuracy ± 2 SEM (SEM = sample sd / √n, ddof = 1) and a 95 % bootstrap CI of the mean
  (``scipy.stats.bootstrap``, BCa, resampling participants);
* a two-sided binomial test of the pooled main trials against chance (p = 0.5);
* accuracy per layer (per-participant accuracy on that layer's trials, mean ± 2 SEM) and per
  confidence level (pooled: proportion correct and share of answers);
* Welch's t-test between every pair of conditions.

Agreement (Cohen's κ) between two "raters" over the image sets both answered: a condition's
decision on an image set is *correct* when at least half of its included answers on that set
are correct; a baseline's decision is its choice. κ = (p_o − p_e) / (1 − p_e), with p_o the
observed agreement and p_e = a·b + (1 − a)(1 − b) for correct-rates a, b.

Between participants (P2's κ): for every pair of included participants who answered at least
``MIN_SHARED`` image sets in common, κ of their correct/wrong answers on those sets; per pair
of conditions (a condition with itself: pairs within it) the mean κ over pairs, how many pairs
had a defined κ and how many did not (one of the two got every shared set right, or every one
wrong). The server shows the k-th participant of every condition the same image sets, so
pairs across conditions share sets.

Exclusion criteria (P2's, configurable — :class:`ExclusionCriteria`): at least 2/3 of catch
trials correct; instruction time ≥ 20 s (``none``: ≥ 15 s); total time — the SERVER's, from
enrolment to the stored submission — within 90–900 s (``none``: 40–900 s); both response sides
used in the main trials; the practice passed within 5 attempts. The page's own clock
(``total_ms``) is reported (``reported_total_s``) but never trusted; its instruction time is
capped at the server's total.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats

from fvlab.errors import FvlabError
from fvlab.study.settings import ExclusionCriteria

#: fewest shared image sets for a between-participant κ
MIN_SHARED = 3
#: the exclusion reasons, in the order they are checked
REASONS = ("catch", "instructions_time", "total_time", "one_side", "practice")


def server_seconds(participant: dict[str, Any]) -> float:
    """Seconds from enrolment to the stored submission, by the server's clock."""
    created, submitted = participant.get("created_unix"), participant.get("submitted_unix")
    if created is None or submitted is None:
        return math.nan
    return float(submitted) - float(created)


def participant_results(
    participants: list[dict[str, Any]],
    responses: list[dict[str, Any]],
    criteria: ExclusionCriteria,
) -> list[dict[str, Any]]:
    """One dict per submitted participant: accuracy, catch score, timings, exclusion reasons."""
    by_pid: dict[str, list[dict[str, Any]]] = {}
    for r in responses:
        by_pid.setdefault(r["participant_id"], []).append(r)
    results = []
    for p in participants:
        if p["submitted_unix"] is None:
            continue
        rows = by_pid.get(p["participant_id"], [])
        main = [r for r in rows if r["kind"] == "main"]
        catch = [r for r in rows if r["kind"] == "catch"]
        catch_fraction = np.mean([r["correct"] for r in catch]) if catch else None
        min_instructions, min_total, max_total = criteria.window(p["condition"])
        total_s = server_seconds(p)
        instructions_s = min((p["instructions_ms"] or 0) / 1000, total_s)
        reasons = []
        if catch_fraction is not None and catch_fraction < criteria.min_catch_fraction - 1e-9:
            reasons.append("catch")
        if not instructions_s >= min_instructions:
            reasons.append("instructions_time")
        if not min_total <= total_s <= max_total:
            reasons.append("total_time")
        if criteria.require_both_sides and len({r["chosen_side"] for r in main}) < 2:
            reasons.append("one_side")
        if (
            not p["practice_passed"]
            or (p["practice_attempts"] or 0) > criteria.max_practice_attempts
        ):
            reasons.append("practice")
        results.append(
            {
                "participant_id": p["participant_id"],
                "condition": p["condition"],
                "main_trials": len(main),
                "main_correct": int(sum(r["correct"] for r in main)),
                "accuracy": float(np.mean([r["correct"] for r in main])) if main else math.nan,
                "catch_fraction": None if catch_fraction is None else float(catch_fraction),
                "instructions_s": instructions_s,
                "total_s": total_s,
                "reported_total_s": (p["total_ms"] or 0) / 1000,
                "practice_attempts": p["practice_attempts"],
                "included": not reasons,
                "exclusion_reasons": reasons,
            }
        )
    return results


def mean_and_intervals(
    values: np.ndarray, seed: int = 0, n_resamples: int = 9999, bootstrap: bool = True
) -> dict[str, Any]:
    """Mean, SEM, mean ± 2 SEM and (if ``bootstrap``) a 95 % BCa bootstrap CI of the mean."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    out: dict[str, Any] = {"n": n, "mean": float(values.mean()) if n else None}
    if n < 2:
        return {
            **out,
            "sem": None,
            "two_sem": None,
            **({"bootstrap_ci95": None} if bootstrap else {}),
        }
    sem = float(values.std(ddof=1) / math.sqrt(n))
    mean = out["mean"]
    if not bootstrap:
        return {**out, "sem": sem, "two_sem": [mean - 2 * sem, mean + 2 * sem]}
    if np.all(values == values[0]):
        ci = [mean, mean]
    else:
        res = stats.bootstrap(
            (values,),
            np.mean,
            confidence_level=0.95,
            n_resamples=n_resamples,
            method="BCa",
            rng=np.random.default_rng(seed),
        )
        ci = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
    return {**out, "sem": sem, "two_sem": [mean - 2 * sem, mean + 2 * sem], "bootstrap_ci95": ci}


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's κ of two binary label vectors (None when chance agreement is 1)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise FvlabError(f"κ needs two equally long non-empty label lists, got {len(a)}, {len(b)}")
    observed = float(np.mean(a == b))
    pa, pb = a.mean(), b.mean()
    expected = float(pa * pb + (1 - pa) * (1 - pb))
    if expected >= 1 - 1e-12:
        return None
    return (observed - expected) / (1 - expected)


def _kappa_matrix(decisions: dict[str, dict[str, bool]]) -> dict[str, Any]:
    names = list(decisions)
    matrix: dict[str, dict[str, Any]] = {n: {} for n in names}
    for x, y in combinations(names, 2):
        common = sorted(set(decisions[x]) & set(decisions[y]))
        kappa = None
        if len(common) >= 2:
            kappa = cohen_kappa(
                np.array([decisions[x][s] for s in common]),
                np.array([decisions[y][s] for s in common]),
            )
        matrix[x][y] = matrix[y][x] = {"kappa": kappa, "image_sets": len(common)}
    return {"raters": names, "pairs": matrix}


def participant_kappa(
    rows: list[dict[str, Any]], condition_of: dict[str, str], conditions: list[str]
) -> dict[str, Any]:
    """Between-participant Cohen's κ (see the module docstring) over main-trial ``rows`` of
    the participants in ``condition_of`` (participant → condition)."""
    answers: dict[str, dict[str, bool]] = {}
    for r in rows:
        if r["participant_id"] in condition_of:
            answers.setdefault(r["participant_id"], {})[r["set_id"]] = bool(r["correct"])
    people = sorted(answers)
    sums: dict[tuple[str, str], list[float]] = {}
    undefined: dict[tuple[str, str], int] = {}
    for i, a in enumerate(people):
        for b in people[i + 1 :]:
            common = sorted(set(answers[a]) & set(answers[b]))
            if len(common) < MIN_SHARED:
                continue
            pair = tuple(sorted((condition_of[a], condition_of[b]), key=conditions.index))
            kappa = cohen_kappa(
                np.array([answers[a][s] for s in common]), np.array([answers[b][s] for s in common])
            )
            if kappa is None:
                undefined[pair] = undefined.get(pair, 0) + 1
            else:
                sums.setdefault(pair, []).append(kappa)
    out: dict[str, dict[str, Any]] = {c: {} for c in conditions}
    for x in conditions:
        for y in conditions:
            pair = tuple(sorted((x, y), key=conditions.index))
            values = sums.get(pair, [])
            out[x][y] = {
                "mean_kappa": float(np.mean(values)) if values else None,
                "pairs": len(values),
                "undefined_pairs": undefined.get(pair, 0),
            }
    return {"min_shared_image_sets": MIN_SHARED, "conditions": out}


def _grouped_accuracy(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Per value of ``key``: per-participant accuracy mean ± 2 SEM (no bootstrap)."""
    groups: dict[Any, dict[str, list[bool]]] = {}
    for r in rows:
        groups.setdefault(r[key], {}).setdefault(r["participant_id"], []).append(r["correct"])
    out = {}
    for value in sorted(groups, key=str):
        accs = np.array([np.mean(v) for v in groups[value].values()])
        n_trials = sum(len(v) for v in groups[value].values())
        sem = float(accs.std(ddof=1) / math.sqrt(len(accs))) if len(accs) > 1 else None
        out[str(value)] = {
            "participants": len(accs),
            "trials": n_trials,
            "mean": float(accs.mean()),
            "two_sem": None if sem is None else [accs.mean() - 2 * sem, accs.mean() + 2 * sem],
        }
    return out


def _confidence(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for level in (1, 2, 3):
        chosen = [r["correct"] for r in rows if r["confidence"] == level]
        out[str(level)] = {
            "answers": len(chosen),
            "share": len(chosen) / len(rows) if rows else None,
            "accuracy": float(np.mean(chosen)) if chosen else None,
        }
    return out


def analyse(
    participants: list[dict[str, Any]],
    responses: list[dict[str, Any]],
    conditions: list[str],
    criteria: ExclusionCriteria | None = None,
    baselines: dict[str, dict[str, bool]] | None = None,
    seed: int = 0,
    n_resamples: int = 9999,
) -> dict[str, Any]:
    """The full analysis as a JSON-ready dict (see the module docstring).

    ``baselines`` maps a baseline name to {set_id: correct?}; each is scored on exactly the
    main trials the included participants of each condition saw.
    """
    criteria = criteria or ExclusionCriteria()
    baselines = baselines or {}
    people = participant_results(participants, responses, criteria)
    included = {p["participant_id"]: p for p in people if p["included"]}
    main_rows = [r for r in responses if r["kind"] == "main" and r["participant_id"] in included]
    result: dict[str, Any] = {
        "criteria": criteria.to_dict(),
        "participants": {
            "submitted": len(people),
            "included": len(included),
            "excluded_by_reason": {
                reason: sum(reason in p["exclusion_reasons"] for p in people) for reason in REASONS
            },
        },
        "conditions": {},
    }
    per_condition_accs: dict[str, np.ndarray] = {}
    decisions: dict[str, dict[str, bool]] = {}
    for k, condition in enumerate(conditions):
        rows = [r for r in main_rows if r["condition"] == condition]
        accs = np.array(
            [p["accuracy"] for p in included.values() if p["condition"] == condition], dtype=float
        )
        per_condition_accs[condition] = accs
        n_correct = int(sum(r["correct"] for r in rows))
        entry: dict[str, Any] = {
            "participants_submitted": sum(p["condition"] == condition for p in people),
            **mean_and_intervals(accs, seed + k, n_resamples),
            "trials": len(rows),
            "trials_correct": n_correct,
            "binomial_vs_chance_p": (
                float(stats.binomtest(n_correct, len(rows), 0.5).pvalue) if rows else None
            ),
            "median_rt_s": float(np.median([r["rt_ms"] for r in rows]) / 1000) if rows else None,
            "by_layer": _grouped_accuracy(rows, "layer"),
            "by_confidence": _confidence(rows),
            "baselines": {},
        }
        for name, correct_of_set in baselines.items():
            scored = [
                {**r, "correct": correct_of_set[r["set_id"]]}
                for r in rows
                if r["set_id"] in correct_of_set
            ]
            per_person: dict[str, list[bool]] = {}
            for r in scored:
                per_person.setdefault(r["participant_id"], []).append(r["correct"])
            b_accs = np.array([np.mean(v) for v in per_person.values()])
            entry["baselines"][name] = mean_and_intervals(b_accs, bootstrap=False)
        result["conditions"][condition] = entry
        by_set: dict[str, list[bool]] = {}
        for r in rows:
            by_set.setdefault(r["set_id"], []).append(r["correct"])
        decisions[condition] = {s: bool(np.mean(v) >= 0.5) for s, v in by_set.items()}
    seen_sets = {r["set_id"] for r in main_rows}
    for name, correct_of_set in baselines.items():
        decisions[name] = {s: c for s, c in correct_of_set.items() if s in seen_sets}
        result.setdefault("baselines", {})[name] = {
            "image_sets": len(decisions[name]),
            "accuracy_over_image_sets": (
                float(np.mean(list(decisions[name].values()))) if decisions[name] else None
            ),
        }
    result["kappa"] = _kappa_matrix({k: v for k, v in decisions.items() if v})
    condition_of = {pid: p["condition"] for pid, p in included.items()}
    result["participant_kappa"] = participant_kappa(main_rows, condition_of, conditions)
    comparisons = {}
    for x, y in combinations(conditions, 2):
        a, b = per_condition_accs[x], per_condition_accs[y]
        if len(a) >= 2 and len(b) >= 2 and (a.std() > 0 or b.std() > 0):
            test = stats.ttest_ind(a, b, equal_var=False)
            comparisons[f"{x} vs {y}"] = {
                "difference": float(a.mean() - b.mean()),
                "welch_t": float(test.statistic),
                "p": float(test.pvalue),
            }
    result["comparisons"] = comparisons
    result["participant_table"] = people
    return result
