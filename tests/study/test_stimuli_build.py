"""End to end: `fvlab study build` on fmnist-cnn, then every claim of the manifest is re-checked
from the saved PNGs alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fvlab.cli import main
from fvlab.models.hooks import capture
from fvlab.report.images import load_png
from fvlab.study.manifest import CONDITIONS, image_sets, read_manifest
from fvlab.study.occlusion import occlusion_sweep, quantise

UNITS = "bn2:0-1,bn3:3-4,bn4:0-1"
BUILD = [
    "study", "build", "--units", UNITS, "--split", "test", "--max-images", "2000",
    "--top-k", "40", "--sets-per-unit", "2", "--fv-steps", "16", "--catch", "2",
    "--practice", "1", "--seed", "3", "-q",
]  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study") / "s"
    main([*BUILD, "--out", str(out)])
    return out


@pytest.fixture(scope="module")
def manifest(study) -> dict:
    return read_manifest(study)


def test_units_kinds_and_conditions(study, manifest):
    assert manifest["format"] == "fvlab-study" and manifest["version"] == 1
    assert manifest["model"] == "fmnist-cnn" and manifest["weights"] == "embedded"
    assert (manifest["image_size"], manifest["channels"], manifest["occluder_px"]) == (28, 1, 11)
    assert manifest["conditions"] == list(CONDITIONS)
    main_units = [u for u in manifest["units"] if u["kind"] == "main"]
    assert [u["unit_id"] for u in main_units] == [
        "bn2:0", "bn2:1", "bn3:3", "bn3:4", "bn4:0", "bn4:1",
    ]  # fmt: skip
    assert len({u["layer"] for u in main_units}) == 3
    kinds = [u["kind"] for u in manifest["units"]]
    assert kinds.count("catch") == 2 and kinds.count("practice") == 1
    extra = [u for u in manifest["units"] if u["kind"] != "main"]
    assert all(u["layer"] in {"bn2", "bn3", "bn4"} for u in extra)
    assert not {u["unit_id"] for u in extra} & {u["unit_id"] for u in main_units}
    for unit, s in image_sets(manifest):
        assert s["set_id"].startswith(unit["unit_id"] + ":")
        refs = s["references"]
        assert set(refs) == set(CONDITIONS)
        assert [len(refs[c]) for c in CONDITIONS] == [9, 9, 9, 9, 0]
        assert sum(p in refs["natural"] for p in refs["mixed"]) == 5
        assert sum(p in refs["synthetic"] for p in refs["mixed"]) == 4
        assert s["occluder"]["size"] == 11
        assert s["query_rank"] <= 4  # top bin of top-40 in 10 bins
        assert all(4 * (b + 1) < r <= 4 * (b + 2) for b, r in enumerate(s["natural_ranks"]))
        for rel in [s["query"], s["occluded_max"], s["occluded_min"], *refs["blur"]]:
            with Image.open(study / rel) as image:
                assert image.size == (28, 28) and image.mode == "L"
        assert all((study / rel).is_file() for c in CONDITIONS for rel in refs[c])
    for unit in manifest["units"]:
        queries = [s["query_index"] for s in unit["image_sets"]]
        assert len(set(queries)) == len(queries)


def test_ground_truth_recomputes_exactly_from_the_saved_pngs(study, manifest, reference_model):
    """Independent re-measurement: PNG → model → spatial mean of the unit's channel."""
    worst = 0.0
    for unit, s in image_sets(manifest):
        images = torch.stack(
            [load_png(study / s[k]) for k in ("query", "occluded_max", "occluded_min")]
        )
        with torch.no_grad(), capture(reference_model, [unit["layer"]]) as cap:
            reference_model(images)
            acts = cap[unit["layer"]][:, unit["unit"]].mean((1, 2))
        for value, key in zip(acts.tolist(), ("query", "max", "min"), strict=True):
            worst = max(worst, abs(value - s["activation"][key]))
        assert s["activation"]["max"] > s["activation"]["min"]
    assert worst <= 1e-5


def test_occluded_images_are_the_extremes_of_the_sweep(study, manifest, reference_model):
    """occluded_max/min are the query occluded (mean colour) at the recorded positions, and no
    other grid position leaves the activation higher / lowers it more."""
    model, side = reference_model, manifest["occluder_px"]
    for unit, s in image_sets(manifest):
        query = load_png(study / s["query"])
        sweep = occlusion_sweep(
            model, query[None], [(unit["layer"], unit["unit"])], side=side, stride=2
        )
        assert float(sweep.activations.max()) == pytest.approx(s["activation"]["max"], abs=1e-5)
        assert float(sweep.activations.min()) == pytest.approx(s["activation"]["min"], abs=1e-5)
        for key in ("max", "min"):
            y, x = s["occluder"][key]
            occluded = load_png(study / s[f"occluded_{key}"])
            window = torch.zeros(28, 28, dtype=torch.bool)
            window[y : y + side, x : x + side] = True
            assert torch.equal(occluded[:, ~window], query[:, ~window])
            fill = quantise(query[:, window].mean())
            assert torch.allclose(occluded[:, window], fill, atol=1e-7)


def test_blur_and_natural_references_are_the_same_exemplars(study, manifest):
    for _, s in list(image_sets(manifest))[:4]:
        for natural, blurred, (y, x) in zip(
            s["references"]["natural"], s["references"]["blur"], s["blur_window"], strict=True
        ):
            a = np.asarray(Image.open(study / natural))
            b = np.asarray(Image.open(study / blurred))
            assert np.array_equal(a[y : y + 11, x : x + 11], b[y : y + 11, x : x + 11])
        assert s["query"] not in s["references"]["natural"]


def test_observer_and_baselines_run_on_the_built_study(study, manifest, reference_model):
    from fvlab.study.baselines import center_choice, variance_choice
    from fvlab.study.observer import observer_accuracy

    main_sets = [s for _, s in image_sets(manifest, ["main"])]
    for condition in CONDITIONS:
        result = observer_accuracy(study, condition, loaded=reference_model)
        assert result["n_sets"] == len(main_sets) == 12
        assert 0 <= result["accuracy"] <= 1
        assert set(result["per_unit"]) == {s["set_id"].rsplit(":", 1)[0] for s in main_sets}
        json.dumps(result)
    for s in main_sets:
        assert center_choice(s, manifest) in ("max", "min")
        assert variance_choice(s, study) in ("max", "min")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--units", "bn9:0"], "unknown layer"),
        (["--units", "bn3:99", "--catch", "0", "--practice", "0"], "out of range"),
        (["--units", "0-3"], "LAYER:UNITS"),
        (["--units", "bn3:0", "--sets-per-unit", "9"], "sets_per_unit: 9 must be"),
        (["--units", "bn3:0", "--split", "val"], "split: must be one of train, test"),
    ],
)
def test_build_rejects_bad_input(tmp_path, capsys, args, message):
    base = ["study", "build", "--max-images", "200", "--top-k", "20", "--bins", "5"]
    base += ["--sets-per-unit", "2", "-q"]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, *args, "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_small_build_without_catch_units_is_deterministic(tmp_path):
    args = ["study", "build", "--units", "bn2:0,bn4:3", "--split", "test", "--max-images", "300"]
    args += ["--top-k", "20", "--bins", "5", "--sets-per-unit", "2", "--fv-steps", "4"]
    args += ["--catch", "0", "--practice", "0", "--seed", "5", "-q"]
    main([*args, "--out", str(tmp_path / "a")])
    main([*args, "--out", str(tmp_path / "b")])
    first, second = read_manifest(tmp_path / "a"), read_manifest(tmp_path / "b")
    assert first == second
    assert [u["kind"] for u in first["units"]] == ["main", "main"]
    assert [len(s["references"]["natural"]) for _, s in image_sets(first)] == [4] * 4
    assert [len(s["references"]["mixed"]) for _, s in image_sets(first)] == [4] * 4
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert files and all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files
    )


def test_png_sizes_leak_on_disk_but_not_over_http(study, manifest, tmp_path):
    """On a real build the correct occlusion and the foil differ in PNG size (the foil covers
    more structure, which compresses better); the server pads every image to one length."""
    from fastapi.testclient import TestClient

    from fvlab.study.server import create_app
    from fvlab.study.settings import ServerSettings

    sets = [s for _, s in image_sets(manifest)]
    sizes = [
        ((study / s["occluded_max"]).stat().st_size, (study / s["occluded_min"]).stat().st_size)
        for s in sets
    ]
    larger_is_correct = sum(a > b for a, b in sizes)
    print(f"on disk: the correct PNG is the larger in {larger_is_correct} of {len(sizes)} sets")
    assert len({a for a, _ in sizes} | {b for _, b in sizes}) > 1  # sizes do vary on disk
    app = create_app(study, f"sqlite:///{tmp_path}/db.sqlite", ServerSettings(), "k" * 20)
    with TestClient(app) as client:
        enrolment = client.post("/api/participants", json={}).json()
        lengths = {
            len(client.get(f"/{t[side]}").content)
            for t in enrolment["practice"] + enrolment["trials"]
            for side in ("query", "left", "right")
        }
    assert lengths == {app.state.padded_length}


def test_build_has_default_units(reference_model, tmp_path, capsys):
    """Without --units: units 0-5 of the last three batch-norm layers (P2's 18 units); a bad
    value found after that is still a one-line error, not a traceback."""
    from fvlab.study.stimuli import default_units

    units = default_units(reference_model)
    assert len(units) == 18 and {layer for layer, _ in units} == {"bn3", "bn4", "bn5"}
    with pytest.raises(SystemExit) as done:
        main(["study", "build", "--out", str(tmp_path / "s"), "--max-images", "10", "-q"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_images" in err[0]


def test_end_urls_and_codes_are_checked(tmp_path):
    from fvlab.jobs import SettingsError
    from fvlab.study.settings import ServerSettings

    for url in ('https://x/"onmouseover="alert(1)', "https://x/a b", "javascript:alert(1)", "//x"):
        with pytest.raises(SettingsError, match="completion_url"):
            ServerSettings(completion_url=url)
    with pytest.raises(SettingsError, match="practice_failed_url"):
        ServerSettings(practice_failed_url="https://x/<script>")
    with pytest.raises(SettingsError, match="completion_code"):
        ServerSettings(completion_code="<b>")
    assert ServerSettings(completion_url="https://app.prolific.com/c?cc=AB12").completion_url
