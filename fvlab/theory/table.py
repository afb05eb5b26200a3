"""P1's table of function classes: one row per class with its verdict, the demonstration that
backs it and that demonstration's measured worst case (read from the run's summaries).

Verdict "reliable": a decoder from the visualization predicts the unit (values or pair order)
within the stated tolerance on every unit tried; "not reliable": two units of the class with the
same visualization differ by the stated amount, or the best decoder errs on a measured share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Summaries = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Row:
    """One class: its verdict, the demonstration behind it and how to read the worst case."""

    cls: str
    reliable: bool
    demonstration: str
    measure: Callable[[dict[str, Any]], tuple[float, str]]  # demo summary → (value, text)


def _tents(s: dict) -> tuple[float, str]:
    worst = min(min(errors) for errors in s["decoder_worst_error"].values())
    return worst, (
        f"every decoder errs by ≥ {worst:.3g} at a chosen point (δ/2 = {s['delta'] / 2:.3g}); "
        "extremes and ascent paths identical"
    )


def _erm(s: dict) -> tuple[float, str]:
    gap = s["min_held_out_disagreement"]
    return gap, (
        f"two nets, training MSE ≤ {s['loss_tol']:g}, same arg max/min: differ by ≥ {gap:.3f} "
        f"at held-out points (margin {s['margin']:g}; "
        f"seeds alone: {s['seeds_only_held_out_gap']:.3f})"
    )


def _pair(name: str) -> Callable[[dict], tuple[float, str]]:
    def measure(s: dict) -> tuple[float, str]:
        pair = next(p for p in s["pairs"] if p["name"] == name)
        flipped = pair["flipped_order_share"]
        return pair["max_abs_difference"], (
            f"same extremes and values; max |f − g| = {pair['max_abs_difference']:.3f}, "
            f"{100 * flipped:.0f} % of pairs ordered differently"
        )

    return measure


def _black_box(s: dict) -> tuple[float, str]:
    return s["max_abs_logit_difference"], (
        f"gated unit: test logits unchanged (max |Δ| = {s['max_abs_logit_difference']:.2g}), "
        f"visualization ends in unit {s['other_unit']}'s region instead of unit {s['unit']}'s"
    )


def _lipschitz_large(s: dict) -> tuple[float, str]:
    L, r = s["lipschitz"][-1], s["certified_radius"][-1]
    return r, f"ε = {s['eps']:g} certified only within radius {r:.2g} = ε/L at L = {L:.3g}"


def _lipschitz_small(s: dict) -> tuple[float, str]:
    worst = s["worst_error_at_or_below_crossover"]
    return worst, (
        f"for L ≤ L* = ε/R = {s['crossover_L']:.3g}: radius ε/L covers [0, 1]², "
        f"max-value decoder's worst error {worst:.3g} ≤ ε = {s['eps']:g}"
    )


def _affine_d2(s: dict) -> tuple[float, str]:
    row = next(r for r in s["curve"] if r["d"] == 2)
    best = row["best_decoder_upper"]["value"]
    text = f"d = 2: best decoder orders {100 * best:.1f} % of pairs (1/6 + ln 2); → 75 % as d → ∞"
    return best, text


def _positive(key: str) -> Callable[[dict], tuple[float, str]]:
    def measure(s: dict) -> tuple[float, str]:
        kind = key.removesuffix("_worst_error")
        return s[key], f"{s['decoder'][kind]!r} decoder: worst |error| = {s[key]:.1e}"

    return measure


def _structured(s: dict) -> tuple[float, str]:
    return s["structured_worst_accuracy"], (
        f"{s['decoder']!r} orders {100 * s['structured_worst_accuracy']:.1f} % of pairs on every "
        f"net; unstructured, same size: {100 * s['unstructured_mean_accuracy']:.1f} % "
        f"(best decoder {100 * s['unstructured_best_decoder']['mean_accuracy']:.1f} %)"
    )


ROWS = (
    Row("general black boxes", False, "toy_fooling", _black_box),
    Row("neural networks", False, "relu_tents", _tents),
    Row("ERM-trained networks", False, "erm", _erm),
    Row("piecewise-affine (ReLU nets)", False, "relu_tents", _tents),
    Row("monotone", False, "convex_monotone", _pair("monotone (orderings differ)")),
    Row("convex", False, "convex_monotone", _pair("convex")),
    Row("L-Lipschitz, large L", False, "lipschitz", _lipschitz_large),
    Row("L-Lipschitz, small L", True, "lipschitz_small", _lipschitz_small),
    Row("affine, d ≥ 2 (from the arg max)", False, "affine", _affine_d2),
    Row("affine, d = 1", True, "positive", _positive("affine_d1_worst_error")),
    Row("constant", True, "positive", _positive("constant_worst_error")),
    Row("structured: single-index monotone nets", True, "structured", _structured),
)


def build_table(summaries: Summaries, passed: dict[str, bool]) -> list[dict[str, Any]]:
    """One dict per row of :data:`ROWS` whose demonstration ran: class, verdict, demonstration,
    measured worst case (text and number) and whether that demonstration's checks all pass."""
    table = []
    for row in ROWS:
        if row.demonstration not in summaries:
            continue
        value, text = row.measure(summaries[row.demonstration])
        table.append(
            {
                "class": row.cls,
                "verdict": "reliable" if row.reliable else "not reliable",
                "demonstration": row.demonstration,
                "measured_worst_case": text,
                "value": value,
                "checks_pass": passed[row.demonstration],
            }
        )
    return table


def format_table(table: list[dict[str, Any]]) -> str:
    """The table as aligned plain text (class | verdict | demonstration | measured worst case)."""
    head = ("class", "verdict", "demonstration", "measured worst case")
    rows = [(r["class"], r["verdict"], r["demonstration"], r["measured_worst_case"]) for r in table]
    widths = [max(len(x[i]) for x in (head, *rows)) for i in range(3)]
    lines = []
    for cells in (head, *rows):
        lines.append(
            " | ".join(c.ljust(w) for c, w in zip(cells[:3], widths, strict=True))
            + " | "
            + cells[3]
        )
        if cells is head:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 19)
    return "\n".join(lines)
