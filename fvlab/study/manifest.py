"""``STUDY_DIR/manifest.json``: what a study's stimuli are, and their ground truth.

Layout (paths relative to STUDY_DIR; ``occluded_max`` is always the correct answer to "which
occluded image does the unit respond to MORE")::

    {"format": "fvlab-study", "version": 1, "model": ..., "weights": ..., "image_size": 28,
     "channels": 1, "occluder_px": 11, "stride": 2, "seed": 0, "conditions": [...],
     "units": [{"unit_id": "bn3:5", "layer": "bn3", "unit": 5, "kind": "main"|"catch"|"practice",
                "image_sets": [{"set_id": "bn3:5:0", "query": ..., "occluded_max": ...,
                                "occluded_min": ..., "activation": {"query", "max", "min"},
                                "occluder": {"max": [y, x], "min": [y, x], "size": 11},
                                "references": {"synthetic": [9], "natural": [9], "mixed": [9],
                                               "blur": [9], "none": []}, ...}]}]}

Activations are the unit's spatial-mean activation computed from the SAVED 8-bit PNGs.
Extra fields written by the builder: per unit ``activation_std``; per set ``query_index``,
``query_rank``, ``natural_index``, ``natural_ranks`` (dataset indices, 1-based ranks),
``blur_window`` (sharp-window corners), ``changed_pixels`` {max, min} (pixels an occluder
changed; 0 = invisible on a plain background) and ``reference_activations`` per condition;
top level ``dataset`` and ``build`` (every setting).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fvlab.errors import CorruptFileError, FvlabError

if TYPE_CHECKING:
    import torch

    from fvlab.models.zoo import LoadedModel

MANIFEST_NAME = "manifest.json"
FORMAT = "fvlab-study"
VERSION = 1
#: the between-subject conditions: which reference images a participant sees
CONDITIONS = ("synthetic", "natural", "mixed", "blur", "none")
#: unit kinds: scored units, easy catch units (attention checks), practice units (feedback)
KINDS = ("main", "catch", "practice")
REMEDY = "Make a study directory with `fvlab study build --out STUDY_DIR`."
_TOP_KEYS = ("model", "image_size", "channels", "occluder_px", "stride", "units")
_SET_KEYS = (
    "set_id",
    "query",
    "occluded_max",
    "occluded_min",
    "activation",
    "occluder",
    "references",
)


def read_manifest(study_dir: str | Path) -> dict[str, Any]:
    """Read and check ``STUDY_DIR/manifest.json``: format, version, the required top-level
    keys, and per unit a known kind and at least one image set with every required key.

    Torch-free: the server reads manifests with it."""
    from fvlab.report.summary import read_versioned_json

    path = Path(study_dir) / MANIFEST_NAME
    manifest = read_versioned_json(path, FORMAT, VERSION, REMEDY)
    missing = [k for k in _TOP_KEYS if k not in manifest]
    for unit in manifest.get("units", []):
        name = unit.get("unit_id")
        if unit.get("kind") not in KINDS:
            raise CorruptFileError(
                f"{path}: unit {name!r} has kind {unit.get('kind')!r}; "
                f"valid kinds are {', '.join(KINDS)}"
            )
        if not unit.get("image_sets"):
            raise CorruptFileError(f"{path}: unit {name!r} has no image sets")
        for image_set in unit["image_sets"]:
            set_id = image_set.get("set_id", f"{name}:?")
            missing += [f"{set_id}.{k}" for k in _SET_KEYS if k not in image_set]
    if missing:
        raise CorruptFileError(f"{path} lacks required entries: {', '.join(missing[:10])}")
    return manifest


def image_sets(
    manifest: dict[str, Any], kinds: Sequence[str] | None = None
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield (unit, image_set) pairs, optionally only for units of the given kinds."""
    for unit in manifest["units"]:
        if kinds is None or unit["kind"] in kinds:
            for image_set in unit["image_sets"]:
                yield unit, image_set


def manifest_image_paths(manifest: dict[str, Any]) -> set[str]:
    """Every image path (relative to the study directory) the manifest refers to."""
    paths: set[str] = set()
    for _, image_set in image_sets(manifest):
        paths.update((image_set["query"], image_set["occluded_max"], image_set["occluded_min"]))
        for refs in image_set["references"].values():
            paths.update(refs)
    return paths


def load_study_model(manifest: dict[str, Any], device: str = "cpu") -> LoadedModel:
    """The model a study was built with (its recorded name and weights)."""
    from fvlab.models.zoo import load

    weights = manifest.get("weights")
    return load(manifest["model"], None if weights in (None, "embedded") else weights, device)


def load_images(study_dir: str | Path, paths: Sequence[str]) -> torch.Tensor:
    """Stack PNGs given relative to STUDY_DIR into (N, C, H, W) floats in [0, 1]."""
    import torch

    from fvlab.report.images import load_png

    root = Path(study_dir)
    missing = [p for p in paths if not (root / p).is_file()]
    if missing:
        raise FvlabError(f"{len(missing)} stimulus images missing in {root}, e.g. {missing[0]}")
    return torch.stack([load_png(root / p) for p in paths])


def recompute_ground_truth(
    study_dir: str | Path, loaded: LoadedModel | None = None, batch_size: int = 1024
) -> dict[str, dict[str, float]]:
    """Re-measure ``{set_id: {"query", "max", "min"}}`` from the saved PNGs (batched)."""
    from fvlab.study.occlusion import unit_activations

    manifest = read_manifest(study_dir)
    loaded = loaded or load_study_model(manifest)
    pairs = list(image_sets(manifest))
    if not pairs:
        return {}
    paths = [s[k] for _, s in pairs for k in ("query", "occluded_max", "occluded_min")]
    images = load_images(study_dir, paths).view(len(pairs), 3, *_shape(manifest))
    layer_units = [(u["layer"], int(u["unit"])) for u, _ in pairs]
    acts = unit_activations(loaded, images, layer_units, batch_size=batch_size)
    return {
        s["set_id"]: {"query": float(a[0]), "max": float(a[1]), "min": float(a[2])}
        for (_, s), a in zip(pairs, acts, strict=True)
    }


def _shape(manifest: dict[str, Any]) -> tuple[int, int, int]:
    size = int(manifest["image_size"])
    return int(manifest["channels"]), size, size
