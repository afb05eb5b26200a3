"""``fvlab study serve | export | analyze | simulate | power``: running a study and its data."""

from __future__ import annotations

import html
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any

import typer

from fvlab.cli.common import QuietOpt, SeedOpt, settings_options
from fvlab.errors import FvlabError
from fvlab.jobs import from_options
from fvlab.study.manifest import CONDITIONS
from fvlab.study.settings import (
    AnalysisSettings,
    ExclusionCriteria,
    PowerSettings,
    ServerSettings,
    TrialConfig,
)

TRIAL_OPTIONS = {
    "n_main": ("--main", "Main trials per participant."),
    "n_catch": ("--catch", "Catch trials per participant."),
    "n_practice": ("--practice", "Practice trials (with feedback)."),
}
SERVER_OPTIONS = {
    "completion_url": "Where participants go at the end, e.g. Prolific's "
    "https://app.prolific.com/submissions/complete?cc=CODE. Default: the server's own "
    "thank-you page.",
    "completion_code": "Completion code shown on the server's own end page (default: one "
    "per participant, derived from their token).",
    "practice_failed_url": "Where participants go after failing the practice, e.g. "
    "Prolific's screened-out URL. Default: the server's own polite page.",
    "enrol_limit": "New enrolments allowed per client address within --enrol-window-minutes "
    "(0: no limit; loopback clients are exempt).",
    "max_practice_attempts": "Practice rounds allowed.",
    "feedback_ms": "Practice feedback duration (ms).",
    "redirect_delay_ms": "Pause before the redirect (ms).",
    "seed": "Random seed of conditions and trial lists.",
}
CRITERIA_OPTIONS = {
    "min_catch_fraction": "Exclude below this fraction of catch trials correct.",
    "min_instructions_s": "Min. time on instructions (s).",
    "min_total_s": "Min. total time (s; the server's, enrolment to submission).",
    "max_total_s": "Max. total time (s).",
    "none_min_instructions_s": "Min. time on instructions in condition none (s).",
    "none_min_total_s": "Min. total time in condition none (s).",
    "require_both_sides": "Exclude participants who only ever chose one side.",
    "max_practice_attempts": "Exclude who did not pass the practice within this many rounds.",
}
ANALYSIS_OPTIONS = {
    "baselines": "Score the center and variance baselines on the same trials.",
    "observer": "Score the machine observer (loads the study's model).",
    "n_resamples": "Bootstrap resamples.",
    "seed": "Random seed of the bootstrap.",
}
POWER_OPTIONS = {
    "p1": "Accuracy in one condition.",
    "p2": "Accuracy in the other condition.",
    "n_trials": ("--trials", "Main trials per participant."),
    "sd": ("--participant-sd", "SD of true accuracy between participants."),
    "alpha": "Significance level (two-sided).",
    "power": ("--power", "Wanted power."),
    "exclusion_rate": "Expected fraction of excluded participants.",
    "n_sims": ("--sims", "Simulated studies per sample size."),
    "seed": "Random seed of the simulated studies.",
}

StudyDirArg = Annotated[
    Path, typer.Argument(help="Study directory made by `fvlab study build` (has manifest.json).")
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database: a SQLAlchemy URL (sqlite:///FILE, postgresql+psycopg://...) or a file "
        "path (SQLite). Default: STUDY_DIR/study.sqlite.",
    ),
]
AdminTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--admin-token",
        help="Token for the export/answer-key endpoints (>= 16 chars). Default: "
        "$FVLAB_STUDY_ADMIN_TOKEN, else a random one printed at start.",
    ),
]


def _conditions(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


@settings_options(TrialConfig, TRIAL_OPTIONS)
@settings_options(ServerSettings, SERVER_OPTIONS)
def serve(
    study_dir: StudyDirArg,
    db: DbOpt = None,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (keep 127.0.0.1 behind a reverse proxy).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    admin_token: AdminTokenOpt = None,
    conditions: Annotated[
        str, typer.Option(help="Between-subject conditions to assign, comma-separated.")
    ] = ",".join(CONDITIONS),
    max_body_kb: Annotated[int, typer.Option(help="Largest accepted request body (KiB).")] = 1000,
    abandon_minutes: Annotated[
        float, typer.Option(help="Unsubmitted participants stop counting for balance after.")
    ] = 60.0,
    enrol_window_minutes: Annotated[
        float, typer.Option(help="Window of --enrol-limit (minutes).")
    ] = 60.0,
    consent_file: Annotated[
        Path | None,
        typer.Option(
            help="HTML (or plain text) file with your consent text, shown before the study "
            "with 'I agree' / 'I do not agree'. Default: a generic text (docs/study.md)."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    **options: Any,
) -> None:
    """Serve the browser experiment, hand out trials and store the answers.

    Example: fvlab study serve out/study --port 8000 --completion-url
    'https://app.prolific.com/submissions/complete?cc=C1234'

    Participants open http://HOST:PORT/ (Prolific appends PROLIFIC_PID, STUDY_ID and
    SESSION_ID). All state is in the database, so the server can be restarted at any time.
    Export the answers with `fvlab study export` or GET /api/export/responses.csv with
    'Authorization: Bearer <admin token>'.
    """
    from fvlab.study.server import serve as run_server
    from fvlab.study.storage import database_url, shown_url

    trials = from_options(TrialConfig, options, conditions=_conditions(conditions))
    consent = None
    if consent_file is not None:
        try:
            consent = consent_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FvlabError(f"consent_file: cannot read {consent_file}: {exc}") from exc
        if "<" not in consent:  # plain text: paragraphs
            consent = "".join(
                f"<p>{html.escape(part.strip())}</p>" for part in consent.split("\n\n") if part
            )
    settings = from_options(
        ServerSettings,
        options,
        trials=trials,
        abandon_after_s=abandon_minutes * 60,
        enrol_window_s=enrol_window_minutes * 60,
        max_body_bytes=max_body_kb * 1024,
        consent_html=consent,
    )
    token = admin_token or os.environ.get("FVLAB_STUDY_ADMIN_TOKEN")
    generated = token is None
    token = token or secrets.token_urlsafe(24)
    url = database_url(db, study_dir)
    # on stdout: stderr carries only errors (one line) and the server's log
    where = f"http://{host}:{port}/ (database {shown_url(url)})"
    print(f"fvlab study: serving {study_dir} on {where}", flush=True)
    if generated:
        print(f"fvlab study: admin token for this run: {token}", flush=True)
    run_server(study_dir, url, settings, token, host, port, log_level)


def export(
    study_dir: StudyDirArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (created).")],
    db: DbOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet (raw is always jsonl).")] = (
        "csv"
    ),
) -> None:
    """Export participants, responses (one row per trial) and raw submissions.

    Example: fvlab study export out/study --out out/study-export --format parquet
    """
    from fvlab.study.export import export_study
    from fvlab.study.storage import database_url, open_database

    if fmt not in ("csv", "parquet"):
        raise FvlabError(f"unknown format {fmt!r}; choose csv or parquet")
    engine = open_database(database_url(db, study_dir), create=False)
    for path in export_study(engine, out, fmt):
        print(path)


@settings_options(ExclusionCriteria, CRITERIA_OPTIONS)
@settings_options(AnalysisSettings, ANALYSIS_OPTIONS)
def analyze(
    study_dir: StudyDirArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (created).")],
    db: DbOpt = None,
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """Analyse the answers: exclusions, accuracy per condition, tests, κ, baselines, plots.

    Example: fvlab study analyze out/study --out out/study-analysis

    Writes summary.json, participants.csv and plots (accuracy.png, layers.png,
    confidence.png, kappa.png). See docs/study.md for how to read them.
    """
    from fvlab.study.analysis_report import run_analysis

    criteria = from_options(ExclusionCriteria, options)
    settings = from_options(
        AnalysisSettings, options, study_dir=study_dir, db=db, criteria=criteria
    )
    summary = run_analysis(settings, out, show_progress=not quiet).summary()
    included = summary["participants"]["included"]
    print(f"{included} of {summary['participants']['submitted']} participants included")
    for condition, entry in summary["conditions"].items():
        print(f"  {condition:<10} {_accuracy_line(entry)}")
    print(f"wrote {out / 'summary.json'}")


def _accuracy_line(entry: dict) -> str:
    """One condition's participants and mean accuracy ± 2 SEM and 95 % CI, in percent."""
    if entry["mean"] is None:
        return "no included participants"
    ci, sem = entry["bootstrap_ci95"], entry["sem"]
    text = f"n={entry['n']:<4} {100 * entry['mean']:.1f} %"
    if sem is not None:
        text += f" ± {200 * sem:.1f} (2 SEM)"
    if ci is not None:
        text += f", 95 % CI [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def simulate(
    url: Annotated[str, typer.Option(help="Base URL of a running `fvlab study serve`.")],
    participants: Annotated[int, typer.Option(min=1, help="Simulated participants.")] = 100,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent connections.")] = 20,
    accuracy: Annotated[
        str | None,
        typer.Option(
            help="Per-condition accuracy, e.g. synthetic=0.7,none=0.6 (others: the "
            "paper's 68/67/67/66/60 %)."
        ),
    ] = None,
    catch_accuracy: Annotated[float, typer.Option(help="Accuracy on catch trials.")] = 0.95,
    admin_token: AdminTokenOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write report.json here.")] = (
        None
    ),
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 900.0,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Drive a running server with simulated participants (oracle observers, set accuracy).

    Example: fvlab study simulate --url http://127.0.0.1:8000 --participants 200
    --concurrency 20 --accuracy synthetic=0.7,none=0.6 --admin-token "$TOKEN"

    Running the same command again resumes: stored participants are skipped, unsubmitted
    ones are completed, nothing is stored twice. For planning, see `fvlab study power`.
    """
    from fvlab.report.summary import write_summary
    from fvlab.study.simulate import (
        ObserverModel,
        parse_accuracy,
        simulate_participants,
        summarise,
    )

    token = admin_token or os.environ.get("FVLAB_STUDY_ADMIN_TOKEN")
    if not token:
        raise FvlabError(
            "simulated participants need the server's admin token (to learn the answer key): "
            "pass --admin-token or set FVLAB_STUDY_ADMIN_TOKEN"
        )
    model = ObserverModel(parse_accuracy(accuracy), catch_accuracy)
    outcomes = simulate_participants(
        url,
        participants,
        token,
        model,
        seed,
        concurrency,
        timeout_s=timeout,
        show_progress=not quiet,
    )
    report = summarise(outcomes, model)
    if out is not None:
        write_summary(out, report, "report.json")
    print(json.dumps(report["by_status"]))
    for condition, entry in sorted(report["conditions"].items()):
        print(
            f"  {condition:<10} participants={entry['participants']:<4} simulated "
            f"{100 * entry['simulated_accuracy']:.1f} %, realised "
            f"{100 * entry['realised_accuracy']:.1f} %"
        )
    if report["by_status"].get("failed"):
        raise FvlabError(
            f"{report['by_status']['failed']} simulated participants failed; run the same "
            "command again to complete them"
        )


@settings_options(PowerSettings, POWER_OPTIONS)
def power(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write summary.json here.")] = (
        None
    ),
    **options: Any,
) -> None:
    """Participants per condition needed to detect an accuracy difference.

    Example: fvlab study power --p1 0.68 --p2 0.60 --trials 18 --participant-sd 0.05

    Welch's t-test on per-participant accuracies, by normal approximation and by simulation.
    """
    from fvlab.study.power import run_power

    settings = PowerSettings(**options)
    result = run_power(settings, out).summary()
    print(
        f"{result['n_simulated']} participants per condition (simulated; normal approximation "
        f"{result['n_analytic']}) for {100 * settings.power:.0f} % power at α = {settings.alpha}; "
        f"recruit {result['n_to_recruit']} per condition with "
        f"{100 * settings.exclusion_rate:.0f} % exclusions"
    )
    for point in result["curve"]:
        print(f"  n={point['n']:<5} power={point['power']:.3f}")
