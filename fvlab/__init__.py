"""fvlab: feature visualization you can check.

Render feature visualizations for any ``torch.nn.Module``, build models whose visualizations
lie, check visualizations against natural images, and run the human study that measures
whether they help. Submodules are imported lazily so that ``import fvlab`` does no work.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": ("fvlab.models.zoo", "load"),
    "from_module": ("fvlab.models.zoo", "from_module"),
    "capture": ("fvlab.models.hooks", "capture"),
    "InputSpec": ("fvlab.models.spec", "InputSpec"),
    "render": ("fvlab.optvis.api", "render"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'fvlab' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    return getattr(importlib.import_module(module_name), attr)


__all__ = sorted(_LAZY) + ["__version__"]
