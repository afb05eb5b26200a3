"""Image-only baselines of the causal-understanding task (P2), scored on the same trials.

Each returns which occluded image (``"max"`` or ``"min"``) the baseline predicts the unit
responds to MORE; ``"max"`` is the correct answer.

* center:   occluding the middle of an image (where the object usually is) should hurt more,
            so pick the occluder whose centre is FARTHER from the image centre (Euclidean, px).
* variance: occluding a flat patch changes little, so pick the occluder over the patch of the
            unoccluded query with LOWER pixel variance (all channels pooled).

Ties (equal distances, or two equally flat patches, e.g. both on a plain background) are broken
by a fair, deterministic coin: the parity of the CRC-32 of the set id, so a tie is neither always
right nor always wrong and the same set always gets the same answer.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from fvlab.errors import FvlabError

Choice = Literal["max", "min"]


def tie_break(set_id: str) -> Choice:
    """A fixed, fair coin per image set."""
    return "max" if zlib.crc32(str(set_id).encode()) % 2 == 0 else "min"


def _decide(score_max: float, score_min: float, set_id: str, tol: float = 1e-12) -> Choice:
    """The side with the larger score; a tie goes to :func:`tie_break`."""
    if abs(score_max - score_min) <= tol:
        return tie_break(set_id)
    return "max" if score_max > score_min else "min"


def _occluder(image_set: dict[str, Any]) -> tuple[list[int], list[int], int]:
    try:
        occ = image_set["occluder"]
        return list(occ["max"]), list(occ["min"]), int(occ["size"])
    except (KeyError, TypeError) as exc:
        raise FvlabError(
            f"image set {image_set.get('set_id', '?')!r} has no occluder "
            "{'max': [y, x], 'min': [y, x], 'size': px}"
        ) from exc


def center_distance(corner: list[int], side: int, image_size: int) -> float:
    """Distance in px from the centre of a ``side`` px square at ``corner`` (y, x) to the image
    centre (pixel centres: the square's centre is corner + (side − 1)/2)."""
    mid = (image_size - 1) / 2
    cy, cx = corner[0] + (side - 1) / 2, corner[1] + (side - 1) / 2
    return float(np.hypot(cy - mid, cx - mid))


def center_choice(image_set: dict[str, Any], manifest: dict[str, Any]) -> Choice:
    """The occluded image whose occluder is farther from the image centre."""
    top, bottom, side = _occluder(image_set)
    size = int(manifest["image_size"])
    return _decide(
        center_distance(top, side, size), center_distance(bottom, side, size), image_set["set_id"]
    )


def patch_variance(image: np.ndarray, corner: list[int], side: int) -> float:
    """Variance of the pixels (all channels) of an (H, W[, C]) image in a square window."""
    y, x = corner
    return float(np.var(image[y : y + side, x : x + side].astype(np.float64)))


def variance_choice(image_set: dict[str, Any], study_dir: str | Path) -> Choice:
    """The occluded image whose occluder covers the lower-variance patch of the query."""
    top, bottom, side = _occluder(image_set)
    path = Path(study_dir) / image_set["query"]
    if not path.is_file():
        raise FvlabError(f"query image {path} is missing; is {study_dir} the right study?")
    image = np.asarray(Image.open(path))
    # lower variance wins, so compare negated variances
    return _decide(
        -patch_variance(image, top, side), -patch_variance(image, bottom, side), image_set["set_id"]
    )
