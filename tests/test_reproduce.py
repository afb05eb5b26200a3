"""docs/reproduce.md's dry runs, executed as written: random-weight InceptionV1 / ResNet-50 at
224 px on a tiny Fashion-MNIST image folder. Checks that every P1 command, option and output
file works end to end at the papers' input size (not the paper's numbers)."""

from __future__ import annotations

import json
import re
import shlex
import time
import warnings
from pathlib import Path

import pytest

from fvlab.cli import main

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "reproduce.md"
pytestmark = pytest.mark.slow


def dry_runs() -> list[str]:
    """The fvlab command lines of the guide's ```bash blocks that start with '# dry run'."""
    blocks = re.findall(r"```bash\n# dry run\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("fvlab ")]


def test_the_guide_has_a_dry_run_per_result():
    commands = [" ".join(shlex.split(line)[1:3]) for line in dry_runs()]
    assert commands == ["fool train-detector", "fool circuit", "fool circuit", "fool silent",
                        "check paths"]  # fmt: skip


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    from fvlab.data.tiny_folder import write_fmnist_folder

    root = tmp_path_factory.mktemp("reproduce")
    tiny = write_fmnist_folder(root / "tiny", size=224, channels=3, per_class=4)
    out = root / "out"
    for line in dry_runs():
        start = time.perf_counter()
        argv = shlex.split(line.replace("$TINY", str(tiny)).replace("$OUT", str(out)))[1:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no weights file: random initialisation"
            main(argv)
        print(f"{time.perf_counter() - start:6.1f} s  {' '.join(argv[:2])}")  # not asserted
    return out


def test_detector_dry_run_writes_weights_and_record(ran):
    record = json.loads((ran / "detector.json").read_text())
    assert record["model"] == "inceptionv1"
    assert all(1 <= int(u.split(":")[1]) <= 1000 for u in record["heldout_units"]
               if u.startswith("softmax2_pre_activation_matmul:"))  # fmt: skip
    assert (ran / "detector.pt").stat().st_size > 0


@pytest.mark.parametrize("mode", ["permute", "target"])
def test_circuit_dry_runs_report_top1_and_top5(ran, mode):
    summary = json.loads((ran / f"circuit-{mode}" / "summary.json").read_text())
    natural = summary["natural"]
    for key in ("top1_original", "top1_fooled", "top5_original", "top5_fooled"):
        assert 0.0 <= natural[key] <= 1.0, key
    assert natural["top5_original"] >= natural["top1_original"]
    assert (ran / f"circuit-{mode}" / "model" / "manifest.json").is_file()


def test_silent_dry_run_is_exact_on_its_images(ran):
    natural = json.loads((ran / "silent" / "summary.json").read_text())["natural"]
    assert natural["branch_active_images"] == 0 and natural["max_abs_diff"] == 0.0


def test_paths_dry_run_covers_the_chosen_layers(ran):
    summary = json.loads((ran / "paths" / "summary.json").read_text())
    text = json.dumps(summary)
    for layer in ("mixed3a", "mixed4a", "softmax2_pre_activation_matmul"):
        assert layer in text
