"""Saved models: a directory with ``manifest.json`` and ``tensors.pt`` — never pickled code.

The manifest names the base model (zoo name and weights source), the construction applied to it
(e.g. a fooling circuit) with its JSON parameters, and the SHA-256 of the tensor file. Loading
rebuilds the base model (with the loader :func:`fvlab.models.zoo.load` passes in), then calls
the construction's ``rebuild(base, params, tensors)`` function, so a reloaded model computes
exactly what the saved one did.

Constructions register under the entry-point group ``fvlab.constructions`` (fvlab's own in its
``pyproject.toml``; a third-party package registers in its own the same way)::

    [project.entry-points."fvlab.constructions"]
    circuit = "fvlab.fool.circuit:rebuild"

This module imports neither the zoo nor torch at import time: reading a manifest is torch-free.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fvlab.errors import CorruptFileError, FvlabError

if TYPE_CHECKING:
    import torch

    from fvlab.models.zoo import LoadedModel

FORMAT = "fvlab-saved-model"
VERSION = 1
#: the entry-point group constructions register under
GROUP = "fvlab.constructions"


class UnknownConstructionError(FvlabError, LookupError):
    """A saved model names a construction that no installed package registers."""


def constructions() -> dict[str, EntryPoint]:
    """Registered constructions: name → entry point of its ``rebuild`` function."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def _unknown(name: object, where: str) -> UnknownConstructionError:
    known = sorted(constructions())
    return UnknownConstructionError(
        f"{where} names construction {name!r}, which no installed package registers (entry-point "
        f"group {GROUP!r}); registered: {', '.join(known) or 'none'}. Install the package that "
        "provides it"
        + ("" if known else " (for fvlab's own: pip install -e . in the fvlab checkout)")
    )


def rebuild_function(name: str) -> Callable[..., LoadedModel]:
    """The ``rebuild(base, params, tensors)`` function registered as construction ``name``."""
    registered = constructions()
    if name not in registered:
        raise _unknown(name, "the request")
    return registered[name].load()


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
    import torch

    if construction not in constructions():
        raise _unknown(construction, "save_model")
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
    """Read and validate a saved model's manifest (torch-free)."""
    from fvlab.report.summary import read_versioned_json

    path = Path(directory) / "manifest.json"
    remedy = (
        "A saved model is a directory written by a construction's save(dir) (e.g. OUT/model of "
        "`fvlab fool circuit`/`fvlab fool silent`)"
    )
    manifest = read_versioned_json(path, FORMAT, VERSION, remedy)
    if manifest.get("construction") not in constructions():
        raise _unknown(manifest.get("construction"), str(path))
    return manifest


def load_saved(
    directory: str | Path, load_base: Callable[[str, str | None], LoadedModel]
) -> LoadedModel:
    """Rebuild a saved model: ``load_base(name, weights)`` (the zoo's loader) gives the base
    model, then the registered construction's ``rebuild`` installs the construction."""
    import torch

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
    model = load_base(base["name"], weights)
    rebuilt = rebuild_function(manifest["construction"])(model, manifest["params"], tensors)
    rebuilt.name = str(directory)
    return rebuilt
