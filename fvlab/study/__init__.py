"""The causal-understanding study (P2): stimuli, trials, server, analysis, observers.

Stimuli side (imports nothing heavy here; import the submodules you need):

* :mod:`fvlab.study.exemplars`   running top-k natural exemplars per unit (one streaming pass)
* :mod:`fvlab.study.occlusion`   mean-colour occluders on a stride grid, batched activations
* :mod:`fvlab.study.references`  diverse feature visualizations and blurred exemplars
* :mod:`fvlab.study.stimuli`     ``build_study``: everything above, written as PNG + manifest
* :mod:`fvlab.study.manifest`    reading, validating and re-checking ``manifest.json``
* :mod:`fvlab.study.baselines`   center and variance baselines
* :mod:`fvlab.study.observer`    a machine observer (similarity in a model's feature space)

Running side (no torch; see docs/study.md):

* :mod:`fvlab.study.trials`      per-participant trial lists (balanced sides, seeded)
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
