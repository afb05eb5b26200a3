"""The causal-understanding study (P2): stimuli, trials, server, analysis, observers.

Jobs (the shape of :mod:`fvlab.jobs`): :func:`run_build_study` (``fvlab study build``),
:func:`run_analysis` (``fvlab study analyze``), :func:`run_power` (``fvlab study power``); their
settings and the server's are in :mod:`fvlab.study.settings` (torch-free). The names below are
imported lazily, so ``import fvlab.study`` (and the server) never imports torch.

Stimuli side:

* :mod:`fvlab.study.settings`    every settings dataclass of the study, and ``parse_units``
* :mod:`fvlab.study.exemplars`   top-k natural exemplars per unit (one activation sweep)
* :mod:`fvlab.study.occlusion`   mean-colour occluders on a stride grid, batched activations
* :mod:`fvlab.study.references`  diverse feature visualizations and blurred exemplars
* :mod:`fvlab.study.stimuli`     ``run_build_study``: everything above, written as PNG + manifest
* :mod:`fvlab.study.manifest`    reading (torch-free), validating, re-checking ``manifest.json``
* :mod:`fvlab.study.baselines`   center and variance baselines
* :mod:`fvlab.study.observer`    a machine observer (similarity in a model's feature space)

Running side (no torch; see docs/study.md):

* :mod:`fvlab.study.trials`      per-participant trial lists (matched sets, random sides)
* :mod:`fvlab.study.protocol`    image ids and padding, strict JSON, the browser's trial view
* :mod:`fvlab.study.enrolment`   balanced condition assignment, resuming Prolific participants
* :mod:`fvlab.study.submission`  submission schema, checks and scoring (one transaction)
* :mod:`fvlab.study.storage`     SQLAlchemy tables; SQLite (WAL) or PostgreSQL
* :mod:`fvlab.study.server`      FastAPI app: experiment page, images, enrolment, export
* :mod:`fvlab.study.export`      CSV / Parquet / JSON-lines export
* :mod:`fvlab.study.simulate`    simulated participants driving the real server over HTTP
* :mod:`fvlab.study.power`       participants per condition for a given accuracy difference
* :mod:`fvlab.study.analysis`    exclusions, accuracy ± 2 SEM, bootstrap, binomial, κ
  (:mod:`~fvlab.study.analysis_report` runs it, :mod:`~fvlab.study.analysis_plots` plots it)
* ``web/``                       the jsPsych 8 experiment and its trial plugin
"""

from fvlab.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "AnalysisResult": "fvlab.study.analysis_report",
        "AnalysisSettings": "fvlab.study.settings",
        "CONDITIONS": "fvlab.study.manifest",
        "ExclusionCriteria": "fvlab.study.settings",
        "ObserverModel": "fvlab.study.simulate",
        "PowerResult": "fvlab.study.power",
        "PowerSettings": "fvlab.study.settings",
        "ServerSettings": "fvlab.study.settings",
        "StudyBuild": "fvlab.study.stimuli",
        "StudySettings": "fvlab.study.settings",
        "TrialConfig": "fvlab.study.settings",
        "create_app": "fvlab.study.server",
        "export_study": "fvlab.study.export",
        "image_sets": "fvlab.study.manifest",
        "make_trials": "fvlab.study.trials",
        "observer_accuracy": "fvlab.study.observer",
        "parse_units": "fvlab.study.settings",
        "read_manifest": "fvlab.study.manifest",
        "recompute_ground_truth": "fvlab.study.manifest",
        "run_analysis": "fvlab.study.analysis_report",
        "run_build_study": "fvlab.study.stimuli",
        "run_power": "fvlab.study.power",
        "simulate_participants": "fvlab.study.simulate",
        "top_exemplars": "fvlab.study.exemplars",
    },
)
