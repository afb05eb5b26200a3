"""Center and variance baselines on hand-built image sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from fvlab.errors import FvlabError
from fvlab.study.baselines import center_choice, center_distance, tie_break, variance_choice

MANIFEST = {"image_size": 28}


def _set(set_id: str, top: list[int], bottom: list[int], size: int = 11) -> dict:
    return {
        "set_id": set_id,
        "query": "query.png",
        "occluder": {"max": top, "min": bottom, "size": size},
    }


def test_center_distance_uses_pixel_centres():
    assert center_distance([0, 0], 11, 28) == pytest.approx(math.hypot(8.5, 8.5))
    assert center_distance([9, 9], 10, 28) == pytest.approx(0.0)


def test_center_picks_the_occluder_farther_from_the_centre():
    assert center_choice(_set("a", [0, 0], [8, 8]), MANIFEST) == "max"
    assert center_choice(_set("a", [8, 9], [17, 0]), MANIFEST) == "min"
    # equal distances (mirror images): a fixed coin per set
    tie = _set("tie", [0, 0], [17, 17])
    assert center_choice(tie, MANIFEST) == tie_break("tie") == center_choice(tie, MANIFEST)


def test_tie_break_is_fair_and_fixed():
    picks = [tie_break(f"bn3:{u}:{s}") for u in range(100) for s in range(10)]
    share = picks.count("max") / len(picks)
    assert 0.45 < share < 0.55
    assert picks == [tie_break(f"bn3:{u}:{s}") for u in range(100) for s in range(10)]


def _query(tmp_path, image: np.ndarray) -> None:
    Image.fromarray(image.astype(np.uint8), mode="L").save(tmp_path / "query.png")


def test_variance_picks_the_occluder_over_the_flatter_patch(tmp_path):
    rng = np.random.default_rng(0)
    image = np.zeros((28, 28))
    image[14:, 14:] = rng.integers(0, 256, (14, 14))  # textured bottom-right, flat elsewhere
    _query(tmp_path, image)
    assert variance_choice(_set("v", [0, 0], [15, 15]), tmp_path) == "max"
    assert variance_choice(_set("v", [15, 15], [0, 0]), tmp_path) == "min"
    # partly textured vs fully textured: the lower variance wins, not the smaller window sum
    image[14:, 14:] = rng.integers(100, 110, (14, 14))
    image[:4, :4] = 255
    _query(tmp_path, image)
    assert variance_choice(_set("v", [14, 14], [0, 0]), tmp_path) == "max"


def test_variance_tie_on_plain_background_is_the_fixed_coin(tmp_path):
    image = np.full((28, 28), 7)
    _query(tmp_path, image)
    for set_id in ("x:0:0", "x:0:1", "x:0:2", "x:0:3"):
        assert variance_choice(_set(set_id, [0, 0], [17, 17]), tmp_path) == tie_break(set_id)


def test_baselines_reject_broken_sets(tmp_path):
    with pytest.raises(FvlabError, match="occluder"):
        center_choice({"set_id": "z"}, MANIFEST)
    with pytest.raises(FvlabError, match="missing"):
        variance_choice(_set("z", [0, 0], [1, 1]), tmp_path)
