"""Checks of feature visualizations against natural images: the path check, the per-unit
audit, and the naturally-silent-unit check — each a job of the one shape of :mod:`fvlab.jobs`.

* :mod:`~fvlab.check.settings`        the jobs' settings (natural data, defaults, validation)
* :mod:`~fvlab.check.paths`           path similarity of class FVs vs natural images; ``run_paths``
* :mod:`~fvlab.check.audit`           per-unit audit scores and flags; ``run_audit``
* :mod:`~fvlab.check.natural_silence` units of a model that never fire on natural data;
  ``run_silent_check``
* :mod:`~fvlab.check.similarity`      Spearman / Pearson / cosine as dot products of unit vectors
* :mod:`~fvlab.check.interpolation`   response paths between images, with bisected jumps
* :mod:`~fvlab.check.manipulations`   self-contained gate / silent stand-ins (tests, benchmarks)
* :mod:`~fvlab.check.report`          the CSV, plot and HTML files the jobs write
"""

from fvlab.check.audit import AuditResult, audit, roc_auc, run_audit, score_units
from fvlab.check.natural_silence import (
    LayerSilence,
    SilentCheckResult,
    natural_silence,
    relu_layers,
    render_silent,
    run_silent_check,
)
from fvlab.check.paths import (
    PathCurves,
    exemplar_path_similarity,
    path_similarity,
    render_class_fvs,
    run_paths,
)
from fvlab.check.settings import (
    AuditSettings,
    AuditThresholds,
    NaturalData,
    PathsSettings,
    SilentCheckSettings,
)
from fvlab.check.similarity import METRICS, similarity_matrix, unit_vectors

__all__ = [
    "METRICS",
    "AuditResult",
    "AuditSettings",
    "AuditThresholds",
    "LayerSilence",
    "NaturalData",
    "PathCurves",
    "PathsSettings",
    "SilentCheckResult",
    "SilentCheckSettings",
    "audit",
    "exemplar_path_similarity",
    "natural_silence",
    "path_similarity",
    "relu_layers",
    "render_class_fvs",
    "render_silent",
    "roc_auc",
    "run_audit",
    "run_paths",
    "run_silent_check",
    "score_units",
    "similarity_matrix",
    "unit_vectors",
]
