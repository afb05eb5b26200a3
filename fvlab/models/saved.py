"""Saved models: a directory with ``manifest.json`` and ``tensors.pt`` — never pickled code.

The manifest names the base model (zoo name and weights source), the construction applied to it
(e.g. a fooling circuit) with its JSON parameters, and the SHA-256 of the tensor file. Loading
rebuilds the base model from the zoo, then calls the construction's ``rebuild`` function with the
parameters and tensors, so a reloaded model computes exactly what the saved one did.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import torch

from fvlab.errors import CorruptFileError, FvlabError

FORMAT = "fvlab-saved-model"
VERSION = 1
#: construction name → "module:function" that rebuilds it from (base, params, tensors)
CONSTRUCTIONS = {
    "circuit": "fvlab.fool.circuit:rebuild",
    "silent": "fvlab.fool.silent:rebuild",
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(
    directory: str | Path,
    base_name: str,
    base_weights: str | None,
    construction: str,
    params: dict[str, Any],
    tensors: dict[str, torch.Tensor],
) -> Path:
    """Write ``manifest.json`` and ``tensors.pt`` to ``directory`` (created if needed).

    The tensor file is written first and the manifest last (atomically renamed), so a crash
    never leaves a manifest that points at a missing or partial tensor file.
    """
    if construction not in CONSTRUCTIONS:
        raise ValueError(f"unknown construction {construction!r}; valid: {sorted(CONSTRUCTIONS)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensor_path = directory / "tensors.pt"
    torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tensor_path)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "base": {"name": base_name, "weights": base_weights},
        "construction": construction,
        "params": params,
        "tensors": {"file": tensor_path.name, "sha256": _sha256(tensor_path)},
    }
    tmp = directory / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(directory / "manifest.json")
    return directory


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read and validate a saved model's manifest."""
    path = Path(directory) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FvlabError(f"{directory} is not a saved fvlab model (no manifest.json)") from exc
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is not an fvlab saved-model manifest")
    if manifest.get("version") != VERSION:
        raise CorruptFileError(
            f"{path} has format version {manifest.get('version')}; this fvlab reads {VERSION}"
        )
    if manifest.get("construction") not in CONSTRUCTIONS:
        raise CorruptFileError(
            f"{path} names construction {manifest.get('construction')!r}; "
            f"known: {sorted(CONSTRUCTIONS)}"
        )
    return manifest


def load_saved(directory: str | Path):  # -> LoadedModel (import cycle avoided)
    """Rebuild a saved model: base model from the zoo, then the construction."""
    from fvlab.models.zoo import load

    directory = Path(directory)
    manifest = read_manifest(directory)
    tensor_path = directory / manifest["tensors"]["file"]
    if not tensor_path.is_file():
        raise CorruptFileError(f"{tensor_path} is missing; the saved model is incomplete")
    if _sha256(tensor_path) != manifest["tensors"]["sha256"]:
        raise CorruptFileError(
            f"{tensor_path} does not match the checksum in manifest.json; the file was changed "
            "or is corrupt"
        )
    try:
        tensors = torch.load(tensor_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CorruptFileError(f"cannot read {tensor_path}: {exc}") from exc
    base = manifest["base"]
    weights = None if base["weights"] in (None, "embedded") else base["weights"]
    model = load(base["name"], weights=weights)
    module_name, function = CONSTRUCTIONS[manifest["construction"]].split(":")
    rebuild = getattr(importlib.import_module(module_name), function)
    rebuilt = rebuild(model, manifest["params"], tensors)
    rebuilt.name = str(directory)
    return rebuilt
