"""`fvlab theory`: one PNG per demonstration and summary.json, every check true."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from fvlab.cli import main
from fvlab.theory.run import TheorySettings, demonstrate

NAMES = ("relu_tents", "affine", "lipschitz", "convex_monotone", "toy_fooling")


def test_theory_writes_plots_and_summary(tmp_path):
    out = tmp_path / "theory"
    main(["theory", "--out", str(out), "--quiet", "--seed", "1"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 1 and summary["quick"] is False
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
