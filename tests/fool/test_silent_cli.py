"""``fvlab fool silent`` end to end on a small slice of Fashion-MNIST."""

import json

import pytest
import torch

import fvlab
from fvlab.cli import main
from fvlab.report.images import save_png


def test_fool_silent_writes_model_grid_and_summary(tmp_path, reference_model, fmnist_test):
    """(A --target-unit target is exercised by tests/fool/test_silent_fmnist.py.)"""
    images, labels = fmnist_test
    save_png(images[7], tmp_path / "target.png")
    target = ["--target", str(tmp_path / "target.png")]
    out = tmp_path / "out"
    main(
        [
            "fool",
            "silent",
            "--layer",
            "conv3",
            *target,
            "--units",
            "0-2,9",
            "--natural-limit",
            "3000",
            "--eval-limit",
            "1000",
            "--fv-steps",
            "24",
            "--target-steps",
            "24",
            "--out",
            str(out),
            "-q",
        ]
    )
    summary = json.loads((out / "summary.json").read_text())
    natural = summary["natural"]
    with torch.no_grad():
        top1 = (reference_model(images[:1000]).argmax(1) == labels[:1000]).float().mean()
    assert natural["bias_images"] == 3000 and natural["n_images"] == 1000
    assert natural["top1_original"] == natural["top1_fooled"] == pytest.approx(float(top1))
    assert natural["max_abs_diff"] == 0.0 and natural["branch_active_images"] == 0
    units = summary["fv"]["units"]
    assert [u["unit"] for u in units] == [0, 1, 2, 9]
    for row in units:
        assert -1 <= row["corr_target"] <= 1 and -1 <= row["corr_original"] <= 1
    share = summary["fv"]["share_closer_to_target"]
    assert share == sum(u["corr_target"] > u["corr_original"] for u in units) / 4
    assert summary["construction"]["target"] == {"kind": "image", "path": target[1]}
    assert (out / "grid.png").stat().st_size > 0
    fooled = fvlab.load(str(out / "model"))
    with torch.no_grad():
        assert torch.equal(fooled(images[:500]), reference_model(images[:500]))
