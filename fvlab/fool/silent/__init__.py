"""Silent units (docs/fool.md, "Silent units"): orthogonal filters that never fire on natural
data.

* construction (maths): :mod:`.filters` (the filter arithmetic), :mod:`.branch` — the parallel
  branch ``SilentUnits``, ``install``, ``rebuild`` (the saved-model constructor, registered as
  ``silent``); where it joins: :mod:`.attach`;
* building it from data: :mod:`.build` — ``build_silent(model, target, natural,
  SilentConstruction)`` or ``silent(model, layer, target, natural, **options)``, with the
  streamed response statistics of :mod:`.responses`;
* evaluating it: :mod:`.evaluate`;
* the job: :mod:`.job` — ``run_silent(model, SilentSettings, out) -> SilentResult``.
"""

from fvlab.fool.silent.attach import choose_attach, conv_layer
from fvlab.fool.silent.branch import CHILD, POOLINGS, SilentUnits, install, rebuild
from fvlab.fool.silent.build import BuiltSilent, SilentConstruction, build_silent, silent
from fvlab.fool.silent.evaluate import compare_visualizations, natural_agreement
from fvlab.fool.silent.job import SilentResult, SilentSettings, run_silent

__all__ = [
    "CHILD",
    "POOLINGS",
    "BuiltSilent",
    "SilentConstruction",
    "SilentResult",
    "SilentSettings",
    "SilentUnits",
    "build_silent",
    "choose_attach",
    "compare_visualizations",
    "conv_layer",
    "install",
    "natural_agreement",
    "rebuild",
    "run_silent",
    "silent",
]
