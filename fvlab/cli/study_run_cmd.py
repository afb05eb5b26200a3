"""``fvlab study serve | export | analyze | simulate | power``: running a study and its data."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from fvlab.cli.common import QuietOpt, SeedOpt, write_summary
from fvlab.errors import FvlabError

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


def serve(
    study_dir: StudyDirArg,
    db: DbOpt = None,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (keep 127.0.0.1 behind a reverse proxy).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    admin_token: AdminTokenOpt = None,
    completion_url: Annotated[
        str | None,
        typer.Option(
            help="Where participants go at the end, e.g. Prolific's "
            "https://app.prolific.com/submissions/complete?cc=CODE. Default: "
            "the server's own thank-you page."
        ),
    ] = None,
    main: Annotated[int, typer.Option(help="Main trials per participant.")] = 18,
    catch: Annotated[int, typer.Option(help="Catch trials per participant.")] = 3,
    practice: Annotated[int, typer.Option(help="Practice trials (with feedback).")] = 2,
    conditions: Annotated[
        str, typer.Option(help="Between-subject conditions to assign, comma-separated.")
    ] = "synthetic,natural,mixed,blur,none",
    max_practice_attempts: Annotated[int, typer.Option(help="Practice rounds allowed.")] = 5,
    feedback_ms: Annotated[int, typer.Option(help="Practice feedback duration (ms).")] = 1000,
    redirect_delay_ms: Annotated[int, typer.Option(help="Pause before the redirect.")] = 3000,
    max_body_kb: Annotated[int, typer.Option(help="Largest accepted request body (KiB).")] = 1000,
    abandon_minutes: Annotated[
        float, typer.Option(help="Unsubmitted participants stop counting for balance after.")
    ] = 60.0,
    seed: SeedOpt = 0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the browser experiment, hand out trials and store the answers.

    Example: fvlab study serve out/study --port 8000 --completion-url
    'https://app.prolific.com/submissions/complete?cc=C1234'

    Participants open http://HOST:PORT/ (Prolific appends PROLIFIC_PID, STUDY_ID and
    SESSION_ID). All state is in the database, so the server can be restarted at any time.
    Export the answers with `fvlab study export` or GET /api/export/responses.csv with
    'Authorization: Bearer <admin token>'.
    """
    from fvlab.study.protocol import StudySettings
    from fvlab.study.server import serve as run_server
    from fvlab.study.storage import database_url
    from fvlab.study.trials import TrialConfig

    settings = StudySettings(
        seed=seed,
        trials=TrialConfig(main, catch, practice, _conditions(conditions)),
        max_practice_attempts=max_practice_attempts,
        abandon_after_s=abandon_minutes * 60,
        feedback_ms=feedback_ms,
        completion_url=completion_url,
        redirect_delay_ms=redirect_delay_ms,
        max_body_bytes=max_body_kb * 1024,
    )
    token = admin_token or os.environ.get("FVLAB_STUDY_ADMIN_TOKEN")
    generated = token is None
    token = token or secrets.token_urlsafe(24)
    url = database_url(db, study_dir)
    print(
        f"fvlab study: serving {study_dir} on http://{host}:{port}/ (database {url})",
        file=sys.stderr,
    )
    if generated:
        print(f"fvlab study: admin token for this run: {token}", file=sys.stderr)
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


def analyze(
    study_dir: StudyDirArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (created).")],
    db: DbOpt = None,
    min_catch_fraction: Annotated[
        float, typer.Option(help="Exclude below this fraction of catch trials correct.")
    ] = 2 / 3,
    min_instructions_s: Annotated[float, typer.Option(help="Min. time on instructions.")] = 15.0,
    min_total_s: Annotated[float, typer.Option(help="Min. total time.")] = 90.0,
    max_total_s: Annotated[float, typer.Option(help="Max. total time.")] = 900.0,
    require_both_sides: Annotated[
        bool, typer.Option(help="Exclude participants who only ever chose one side.")
    ] = True,
    max_practice_attempts: Annotated[
        int, typer.Option(help="Exclude who did not pass the practice within this many rounds.")
    ] = 5,
    baselines: Annotated[
        bool, typer.Option(help="Score the center and variance baselines on the same trials.")
    ] = True,
    observer: Annotated[
        bool, typer.Option(help="Score the machine observer (loads the study's model).")
    ] = True,
    n_resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 9999,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Analyse the answers: exclusions, accuracy per condition, tests, κ, baselines, plots.

    Example: fvlab study analyze out/study --out out/study-analysis

    Writes summary.json, participants.csv and plots (accuracy.png, layers.png,
    confidence.png, kappa.png). See docs/study.md for how to read them.
    """
    from fvlab.study.analysis import ExclusionCriteria
    from fvlab.study.analysis_report import run_analysis
    from fvlab.study.storage import database_url

    criteria = ExclusionCriteria(
        min_catch_fraction=min_catch_fraction,
        min_instructions_s=min_instructions_s,
        min_total_s=min_total_s,
        max_total_s=max_total_s,
        require_both_sides=require_both_sides,
        max_practice_attempts=max_practice_attempts,
    )
    summary = run_analysis(
        study_dir,
        database_url(db, study_dir),
        out,
        criteria,
        seed=seed,
        n_resamples=n_resamples,
        with_baselines=baselines,
        with_observer=observer,
        show_progress=not quiet,
    )
    included = summary["participants"]["included"]
    print(f"{included} of {summary['participants']['submitted']} participants included")
    for condition, entry in summary["conditions"].items():
        if entry["mean"] is None:
            print(f"  {condition:<10} no included participants")
            continue
        ci = entry["bootstrap_ci95"]
        sem = entry["sem"]
        text = f"{100 * entry['mean']:.1f} %"
        if sem is not None:
            text += f" ± {200 * sem:.1f} (2 SEM)"
        if ci is not None:
            text += f", 95 % CI [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
        print(f"  {condition:<10} n={entry['n']:<4} {text}")
    print(f"wrote {out / 'summary.json'}")


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


def power(
    p1: Annotated[float, typer.Option(help="Accuracy in one condition.")] = 0.68,
    p2: Annotated[float, typer.Option(help="Accuracy in the other condition.")] = 0.60,
    trials: Annotated[int, typer.Option(help="Main trials per participant.")] = 18,
    participant_sd: Annotated[
        float, typer.Option(help="SD of true accuracy between participants.")
    ] = 0.05,
    alpha: Annotated[float, typer.Option(help="Significance level (two-sided).")] = 0.05,
    target_power: Annotated[float, typer.Option("--power", help="Wanted power.")] = 0.8,
    exclusion_rate: Annotated[
        float, typer.Option(help="Expected fraction of excluded participants.")
    ] = 0.0,
    sims: Annotated[int, typer.Option(help="Simulated studies per sample size.")] = 2000,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write summary.json here.")] = (
        None
    ),
    seed: SeedOpt = 0,
) -> None:
    """Participants per condition needed to detect an accuracy difference.

    Example: fvlab study power --p1 0.68 --p2 0.60 --trials 18 --participant-sd 0.05

    Welch's t-test on per-participant accuracies, by normal approximation and by simulation.
    """
    from fvlab.study.power import power_analysis

    result = power_analysis(
        p1, p2, trials, participant_sd, alpha, target_power, exclusion_rate, sims, seed
    )
    if out is not None:
        write_summary(out, result)
    print(
        f"{result['n_simulated']} participants per condition (simulated; normal approximation "
        f"{result['n_analytic']}) for {100 * target_power:.0f} % power at α = {alpha}; recruit "
        f"{result['n_to_recruit']} per condition with {100 * exclusion_rate:.0f} % exclusions"
    )
    for point in result["curve"]:
        print(f"  n={point['n']:<5} power={point['power']:.3f}")
