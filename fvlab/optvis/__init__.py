"""Feature-visualization engine ("optvis", the field's name): settings, parameterizations,
transforms, objectives, the render loop and the render job.

* :func:`render` (also ``fvlab.render``) — one optimisation of a batch of images;
  :class:`RenderSettings` says how (:data:`LUCID` is lucid's schedule), :class:`RenderResult`
  is what comes back.
* :func:`run_render` — the ``fvlab render`` job: many units, PNGs, grid and summary.json.
* :mod:`~fvlab.optvis.objectives`, :mod:`~fvlab.optvis.param`, :mod:`~fvlab.optvis.transforms`
  — the parts.
"""

from fvlab.optvis import objectives, param, transforms
from fvlab.optvis.api import make_param, natural_magnitude, render
from fvlab.optvis.job import RenderJobResult, RenderJobSettings, run_render
from fvlab.optvis.loop import RenderResult, plateau
from fvlab.optvis.settings import LUCID, PRESETS, RenderSettings

#: ``fvlab.optvis.parameterizations`` is :mod:`fvlab.optvis.param`
parameterizations = param

__all__ = [
    "LUCID",
    "PRESETS",
    "RenderJobResult",
    "RenderJobSettings",
    "RenderResult",
    "RenderSettings",
    "make_param",
    "natural_magnitude",
    "objectives",
    "param",
    "parameterizations",
    "plateau",
    "render",
    "run_render",
    "transforms",
]
