"""Lazy re-exports for package ``__init__`` files: ``import fvlab.models`` costs nothing until a
name is used, yet the package still states its public API with ``__all__``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], list]:
    """``(__getattr__, __all__)`` for a package whose public names live in submodules.

    ``exports`` maps each public name to the module defining it; the module is imported on the
    first access of the name."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__, sorted(exports)
