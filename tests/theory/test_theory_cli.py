"""`fvlab theory`: one PNG per demonstration and summary.json, every check true."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from fvlab.cli import main
from fvlab.theory.run import TheorySettings, demonstrate

NAMES = (
    "relu_tents",
    "affine",
    "lipschitz",
    "convex_monotone",
    "toy_fooling",
    "erm",
    "positive",
    "lipschitz_small",
    "structured",
)
#: every row of P1's table (issue 19), with its verdict
CLASSES = {
    "general black boxes": "not reliable",
    "neural networks": "not reliable",
    "ERM-trained networks": "not reliable",
    "piecewise-affine (ReLU nets)": "not reliable",
    "monotone": "not reliable",
    "convex": "not reliable",
    "L-Lipschitz, large L": "not reliable",
    "L-Lipschitz, small L": "reliable",
    "affine, d ≥ 2 (from the arg max)": "not reliable",
    "affine, d = 1": "reliable",
    "constant": "reliable",
    "structured: single-index monotone nets": "reliable",
}


def test_theory_writes_plots_summary_and_table(tmp_path, capsys):
    out = tmp_path / "theory"
    main(["theory", "--out", str(out), "--quiet", "--seed", "1", "--quick"])
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 1 and summary["quick"] is True
    assert set(summary["demonstrations"]) == set(NAMES)
    for name in NAMES:
        entry = summary["demonstrations"][name]
        assert entry["plot"] == f"{name}.png"
        with Image.open(out / entry["plot"]) as image:
            assert image.format == "PNG" and min(image.size) >= 300
        assert entry["checks"] and all(entry["checks"].values()), (name, entry["checks"])
    assert summary["all_checks_pass"] is True
    tents = summary["demonstrations"]["relu_tents"]
    assert min(tents["abs_difference_at_points"]) >= tents["delta"] * (1 - 1e-9)
    affine = {row["d"]: row for row in summary["demonstrations"]["affine"]["curve"]}
    assert affine[1]["posterior_vote"]["value"] == 1.0
    assert all(affine[d]["best_decoder_upper"]["ci95"][1] < 1 for d in (2, 5, 10))
    # the table: every class, its verdict, a passing demonstration and the measured worst case
    table = {row["class"]: row for row in summary["table"]}
    assert {c: r["verdict"] for c, r in table.items()} == CLASSES
    assert all(row["checks_pass"] for row in table.values())
    assert "class" in printed and "measured worst case" in printed
    for cls in CLASSES:
        assert cls in printed
    value = {c: r["value"] for c, r in table.items()}
    assert value["ERM-trained networks"] >= 0.2  # held-out disagreement >= the stated margin
    assert value["constant"] <= 1e-6 and value["affine, d = 1"] <= 1e-6
    assert value["L-Lipschitz, small L"] <= 0.05 * (1 + 1e-12)  # worst error <= eps for L <= L*
    assert value["structured: single-index monotone nets"] >= 0.999
    assert value["neural networks"] >= tents["delta"] / 2 * (1 - 1e-9)
    assert value["affine, d ≥ 2 (from the arg max)"] < 0.9
    assert value["convex"] > 0.1 and value["monotone"] > 0.1
    assert value["piecewise-affine (ReLU nets)"] == value["neural networks"]
    assert value["general black boxes"] == 0  # test logits bit-identical under the gated unit
    lipschitz = summary["demonstrations"]["lipschitz"]
    assert value["L-Lipschitz, large L"] == pytest.approx(
        lipschitz["eps"] / max(lipschitz["lipschitz"]), rel=1e-6
    )


@pytest.mark.parametrize("name", ["affine", "lipschitz"])
def test_quick_mode_keeps_the_checks(tmp_path, name):
    demo = demonstrate(name, TheorySettings(seed=0, quick=True))
    assert all(demo.checks.values()), demo.checks
    demo.plot(tmp_path / demo.plot_file)
    assert (tmp_path / demo.plot_file).stat().st_size > 10_000


def test_theory_help_and_bad_out(tmp_path, capsys):
    main(["theory", "--help"])  # prints the help and returns
    assert "fvlab theory --out" in capsys.readouterr().out
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main(["theory", "--out", str(a_file), "--quick", "-q"])
    assert exit_info.value.code == 2
    assert "is a file" in capsys.readouterr().err
