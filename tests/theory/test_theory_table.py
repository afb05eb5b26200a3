"""P1's table: rows are read from the demonstrations' summaries."""

from __future__ import annotations

from fvlab.theory.table import ROWS, build_table, format_table

POSITIVE = {
    "decoder": {"constant": "max value", "affine_d1": "interpolate arg min → arg max"},
    "constant_worst_error": 0.0,
    "affine_d1_worst_error": 4e-16,
}


def test_rows_come_from_the_demonstrations_that_ran():
    table = build_table({"positive": POSITIVE}, {"positive": True})
    assert [r["class"] for r in table] == ["affine, d = 1", "constant"]
    assert all(r["verdict"] == "reliable" and r["checks_pass"] for r in table)
    assert [r["value"] for r in table] == [4e-16, 0.0]
    text = format_table(table).splitlines()
    assert text[0].split(" | ")[:3] == ["class        ", "verdict ", "demonstration"]
    assert "4.0e-16" in text[2] and text[1].startswith("-")


def test_every_class_of_the_issue_has_a_row():
    classes = {row.cls for row in ROWS}
    assert len(classes) == len(ROWS) == 12
    for word in (
        "black boxes",
        "neural",
        "ERM",
        "piecewise-affine",
        "monotone",
        "convex",
        "large L",
        "small L",
        "d = 1",
        "constant",
        "structured",
    ):
        assert any(word in c for c in classes), word
