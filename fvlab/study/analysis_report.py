"""``fvlab study analyze``: load answers and manifest, analyse, score baselines and observer.

The job :func:`run_analysis` (no model argument: the machine observer loads the study's own
model) returns an :class:`AnalysisResult`; its ``save(out)`` writes ``summary.json``
(everything :func:`fvlab.study.analysis.analyse` returns, plus baselines and the machine
observer), ``participants.csv`` (one row per submitted participant with accuracy and exclusion
reasons) and the plots of :data:`fvlab.study.analysis_plots.PLOTS`: ``accuracy.png`` (mean ± 2
SEM per condition, participants as dots, chance as a line, baselines and observer as markers),
``layers.png``, ``confidence.png`` and ``kappa.png``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fvlab.errors import FvlabError
from fvlab.jobs import OutDir, finish
from fvlab.progress import progress_bar
from fvlab.study.analysis import analyse
from fvlab.study.manifest import read_manifest
from fvlab.study.settings import AnalysisSettings
from fvlab.study.storage import database_url, fetch_participants, fetch_responses, open_database


def _image_sets(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["set_id"]: s for u in manifest["units"] for s in u["image_sets"]}


def baseline_decisions(
    study_dir: Path, manifest: dict[str, Any], set_ids: set[str]
) -> dict[str, dict[str, bool]]:
    """{"center": {set_id: correct?}, "variance": {...}} for the given image sets."""
    from fvlab.study.baselines import center_choice, variance_choice

    sets = _image_sets(manifest)
    unknown = sorted(set_ids - set(sets))
    if unknown:
        raise FvlabError(
            f"answers refer to image set {unknown[0]!r}, which is not in {study_dir}/manifest.json"
            ": analyse with the study directory the server used"
        )
    return {
        "center": {s: center_choice(sets[s], manifest) == "max" for s in sorted(set_ids)},
        "variance": {s: variance_choice(sets[s], study_dir) == "max" for s in sorted(set_ids)},
    }


#: the columns of participants.csv (one row per submitted participant)
PARTICIPANT_COLUMNS = (
    "participant_id",
    "condition",
    "main_trials",
    "main_correct",
    "accuracy",
    "catch_fraction",
    "instructions_s",
    "total_s",
    "reported_total_s",
    "practice_attempts",
    "included",
    "exclusion_reasons",
)


def _write_participants(path: Path, people: list[dict[str, Any]]) -> None:
    """``participants.csv``: every submitted participant, their figures and the reasons they
    were excluded (``;``-separated); the header alone when nobody has submitted."""
    columns = list(PARTICIPANT_COLUMNS) + [
        k for k in (people[0] if people else {}) if k not in PARTICIPANT_COLUMNS
    ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for p in people:
            writer.writerow({**p, "exclusion_reasons": ";".join(p["exclusion_reasons"])})


def _answers(db_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(submitted participants, every stored response) of the database at ``db_url``."""
    engine = open_database(db_url, create=False)
    try:
        participants = fetch_participants(engine, submitted_only=True)
        responses = fetch_responses(engine)
    except Exception as exc:  # missing tables, unreachable server
        raise FvlabError(f"cannot read answers from {db_url}: {exc}") from exc
    finally:
        engine.dispose()
    return participants, responses


@dataclass
class AnalysisResult:
    """The analysis of a study's answers (``figures`` is what ``summary.json`` holds)."""

    figures: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return self.figures

    def save(self, out: Path) -> Path:
        """Write ``participants.csv``, the plots and ``summary.json`` into ``out``."""
        from fvlab.report.summary import write_summary
        from fvlab.study.analysis_plots import plot_all

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        _write_participants(out / "participants.csv", self.figures["participant_table"])
        if self.figures["plots"]:  # nothing to plot without included participants
            plot_all(self.figures, out)
        return write_summary(out, self.figures)


def run_analysis(
    settings: AnalysisSettings, out: OutDir = None, *, show_progress: bool = True
) -> AnalysisResult:
    """The ``fvlab study analyze`` job: exclusions, statistics per condition, baselines and the
    machine observer for the answers stored in ``settings.db``."""
    from fvlab.study.analysis_plots import PLOTS

    s = settings
    study_dir = s.study_dir
    manifest = read_manifest(study_dir)
    db_url = database_url(s.db, study_dir)
    participants, responses = _answers(db_url)
    conditions = [c for c in manifest.get("conditions", []) if c]
    seen = {p["condition"] for p in participants}
    conditions = [c for c in conditions if c in seen] + sorted(seen - set(conditions))
    set_ids = {r["set_id"] for r in responses if r["kind"] == "main"}
    with progress_bar("analysis", 3, show_progress) as advance:
        baselines = baseline_decisions(study_dir, manifest, set_ids) if s.baselines else {}
        advance(1, info="baselines")
        summary = analyse(
            participants, responses, conditions, s.criteria, baselines, s.seed, s.n_resamples
        )
        advance(1, info="statistics")
        if s.observer and summary["participants"]["included"]:
            summary["observer"] = observer_scores(study_dir, conditions, summary, responses)
        advance(1, info="machine observer")
    if not summary["participants"]["included"]:
        summary["warning"] = (
            f"no included participants ({summary['participants']['submitted']} submitted): "
            "see participants.csv for the exclusion reasons"
        )
    summary["study_dir"] = str(study_dir)
    summary["model"] = manifest.get("model")
    summary["plots"] = list(PLOTS) if summary["participants"]["included"] else []
    return finish(AnalysisResult(summary), out)


def observer_scores(
    study_dir: Path,
    conditions: list[str],
    summary: dict[str, Any],
    responses: list[dict[str, Any]],
) -> dict[str, Any]:
    """The machine observer (:mod:`fvlab.study.observer`) on the trials people saw.

    One α for all conditions, fitted by maximum likelihood to the included participants' main
    answers (as MIS fits α once on human data). Per condition: the observer's expected accuracy
    σ(α · dv) averaged per participant over exactly that participant's main trials, then
    mean ± 2 SEM across participants, and the deterministic observer (dv > 0) on the same trials.
    """
    from fvlab.study.analysis import mean_and_intervals
    from fvlab.study.manifest import load_study_model
    from fvlab.study.observer import DEFAULT_FEATURE_LAYER, decision_variables, fit_alpha, p_correct

    included = {p["participant_id"] for p in summary["participant_table"] if p["included"]}
    rows = [r for r in responses if r["kind"] == "main" and r["participant_id"] in included]
    loaded = load_study_model(read_manifest(study_dir))
    dv: dict[str, dict[str, float]] = {}
    for condition in conditions:
        trials = decision_variables(study_dir, condition, loaded=loaded)
        dv[condition] = dict(zip(trials.set_ids, trials.dv.tolist(), strict=True))
    rows = [r for r in rows if r["set_id"] in dv.get(r["condition"], {})]
    if not rows:
        raise FvlabError("no included main trials to score the machine observer on")
    alpha = fit_alpha([dv[r["condition"]][r["set_id"]] for r in rows], [r["correct"] for r in rows])
    out: dict[str, Any] = {"feature_layer": DEFAULT_FEATURE_LAYER, "alpha": alpha, "conditions": {}}
    for condition in conditions:
        per_person: dict[str, list[float]] = {}
        deterministic = []
        for r in rows:
            if r["condition"] == condition:
                value = dv[condition][r["set_id"]]
                per_person.setdefault(r["participant_id"], []).append(
                    float(p_correct([value], alpha)[0])
                )
                deterministic.append(float(p_correct([value], None)[0]))
        if not per_person:
            continue
        accs = [float(np.mean(v)) for v in per_person.values()]
        out["conditions"][condition] = {
            **mean_and_intervals(np.array(accs), bootstrap=False),
            "deterministic_accuracy": float(np.mean(deterministic)),
            "trials": len(deterministic),
            "reference_fallback": "query" if condition == "none" else None,
        }
    return out
