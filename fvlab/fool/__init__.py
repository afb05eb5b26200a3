"""Fooling constructions: models whose natural behaviour is unchanged but whose feature
visualizations show something else.

Two constructions, laid out alike — the construction (maths), building it from data,
evaluating it, and a job whose result has ``.summary()`` and ``.save(out)``:

* :mod:`fvlab.fool.circuit` — the classifier-gated circuit (``run_circuit``);
* :mod:`fvlab.fool.silent` — silent units (``run_silent``).

Shared: :mod:`fvlab.fool.install` (install / save / rebuild), :mod:`fvlab.fool.targets`
(target images), :mod:`fvlab.fool.measures` (image correlations). Names are imported lazily,
so ``import fvlab.fool`` costs nothing.
"""

from __future__ import annotations

from fvlab.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "CircuitSettings": "fvlab.fool.circuit",
        "CircuitResult": "fvlab.fool.circuit",
        "DetectorSettings": "fvlab.fool.circuit",
        "build_circuit": "fvlab.fool.circuit",
        "run_circuit": "fvlab.fool.circuit",
        "run_train_detector": "fvlab.fool.circuit",
        "SilentSettings": "fvlab.fool.silent",
        "SilentResult": "fvlab.fool.silent",
        "build_silent": "fvlab.fool.silent",
        "run_silent": "fvlab.fool.silent",
        "resolve_target": "fvlab.fool.targets",
        "image_correlation": "fvlab.fool.measures",
        "shifted_correlation": "fvlab.fool.measures",
    },
)
