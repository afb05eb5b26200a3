"""fvlab: feature visualization you can check.

Render feature visualizations for any ``torch.nn.Module``, build models whose visualizations
lie, check visualizations against natural images, and run the human study that measures
whether they help. Submodules are imported lazily so that ``import fvlab`` does no work.
"""

from __future__ import annotations

from fvlab.lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, _PUBLIC = lazy_exports(
    __name__,
    {
        "load": "fvlab.models.zoo",
        "from_module": "fvlab.models.zoo",
        "LoadedModel": "fvlab.models.zoo",
        "capture": "fvlab.models.hooks",
        "InputSpec": "fvlab.models.spec",
        "render": "fvlab.optvis.api",
    },
)
__all__ = [*_PUBLIC, "__version__"]
