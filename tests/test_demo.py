"""`fvlab demo` end to end: the whole job once (about 4 minutes on 2 cores), its report opened in
headless Chromium (every image loads, no console errors, a screenshot kept in artifacts/), its
numbers matched against summary.json and the commands' own summaries, and determinism."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from fvlab.cli import main

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    main(["demo", "--out", str(out), "-q"])
    return out, json.loads((out / "summary.json").read_text())


def test_report_opens_in_chromium_with_every_image(demo, browser):
    out, _ = demo
    browser.get((out / "report.html").as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);"
    )
    assert len(images) >= 15
    broken = [alt for complete, width, alt in images if not (complete and width > 0)]
    assert not broken, broken
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    page = browser.page_source
    # nothing is fetched from outside (the only URL is the study command's local example)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1200, min(int(height) + 100, 16000))
    assert browser.save_screenshot(str(ARTIFACTS / "demo-report.png"))
    sections = re.findall(r'<h2 id="([a-z]+)"', page)
    assert sections == [
        "model", "render", "circuit", "silent", "paths", "audit", "theory", "study", "timing",
    ]  # fmt: skip


def test_report_numbers_are_the_summaries(demo):
    out, summary = demo
    numbers = summary["numbers"]
    page = html.unescape((out / "report.html").read_text())
    assert numbers["model"]["n_images"] == 10000 and numbers["model"]["top1"] >= 0.91
    assert f"<td>{numbers['model']['top1']:.4g}</td>" in page
    # the circuit section reports exactly what `fvlab fool circuit` wrote
    for name, folder in (("permute_fc", "circuit-permute"), ("target_fc", "circuit-target")):
        command = json.loads((out / folder / "summary.json").read_text())
        assert numbers["circuit"][name]["natural"] == command["natural"]
        assert f"<td>{command['natural']['fraction_identical']:.4g}</td>" in page
    for variant in ("silent-paper", "silent-pooled"):
        command = json.loads((out / variant / "summary.json").read_text())
        assert numbers["silent"][variant]["natural"] == command["natural"]
        assert command["natural"]["branch_active_images"] == 0
        assert command["natural"]["identical"]
    assert numbers["audit"]["clean"]["flagged"] <= 0.05 * numbers["audit"]["clean"]["units"]
    assert all(v["auc_vs_clean"] >= 0.95 for k, v in numbers["audit"].items() if k != "clean")
    clean_paths = numbers["paths"]["clean fmnist-cnn"]
    assert clean_paths["nat_same_above_other_everywhere"]
    assert numbers["theory"]["all_checks_pass"]
    assert set(numbers["study"]["conditions"]) == {"synthetic", "natural", "mixed", "blur", "none"}


def test_same_seed_same_numbers(demo, tmp_path):
    _, first = demo
    again = tmp_path / "again"
    main(["demo", "--out", str(again), "--only", "model,render,theory,study", "-q"])
    second = json.loads((again / "summary.json").read_text())
    for section in ("model", "render", "theory", "study"):
        assert second["numbers"][section] == first["numbers"][section], section


def test_bad_section_names_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path), "--only", "model,rendr", "-q"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fvlab: error: only: unknown demo section(s) rendr")
    assert err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--only", "audit", "-q"])
    assert (
        "only: sections audit read the models that circuit, silent build" in capsys.readouterr().err
    )
