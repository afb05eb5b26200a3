"""The demo job: run each pillar's section in order, time it, write report.html and
summary.json. Sections are plain functions ``(DemoContext) -> Section``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fvlab.demo.context import DemoContext
from fvlab.jobs import Settings, SettingsError, finish
from fvlab.report.html import Section, write_report

INTRO = (
    "fvlab runs every pillar on the embedded Fashion-MNIST model: it renders feature "
    "visualizations, builds models whose visualizations lie while their behaviour on natural "
    "images is unchanged, checks visualizations against natural images, and prepares the human "
    "study that measures whether they help. Every number below is also in summary.json."
)


def sections() -> list[tuple[str, Callable[[DemoContext], Section]]]:
    """In order; paths and audit read the models the circuit and silent sections saved."""
    from fvlab.demo.check_section import audit_section, paths_section
    from fvlab.demo.fool_section import circuit_section
    from fvlab.demo.models_section import model_section, render_section
    from fvlab.demo.silent_section import silent_section
    from fvlab.demo.study_section import study_section
    from fvlab.demo.theory_section import theory_section

    return [
        ("model", model_section),
        ("render", render_section),
        ("circuit", circuit_section),
        ("silent", silent_section),
        ("paths", paths_section),
        ("audit", audit_section),
        ("theory", theory_section),
        ("study", study_section),
    ]


NEEDS = {"paths": ("circuit", "silent"), "audit": ("circuit", "silent")}


def retrain(ctx: DemoContext) -> None:
    """``--full``: train the reference model and then the circuit's detector from scratch
    (about 5 + 35 min on 2 cores) instead of using the committed files."""
    import fvlab
    from fvlab.fool.circuit import DetectorSettings, run_train_detector
    from fvlab.models.train_reference import TrainConfig, run_train_reference

    folder = ctx.folder("full")
    ctx.weights = folder / "fmnist-cnn.pt"
    run_train_reference(TrainConfig(seed=ctx.seed), ctx.weights, show_progress=ctx.show_progress)
    ctx.detector = folder / "fmnist-cnn-detector.pt"
    run_train_detector(
        fvlab.load("fmnist-cnn", ctx.weights),
        DetectorSettings(seed=ctx.seed),
        ctx.detector,
        show_progress=ctx.show_progress,
    )


@dataclass(frozen=True)
class DemoSettings(Settings):
    """``only``: the sections to run (default: all, in order); ``full``: retrain the reference
    model and the circuit's detector first instead of using the committed files."""

    seed: int = 0
    full: bool = False
    only: tuple[str, ...] | None = None

    def validate(self) -> None:
        if self.only is None:
            return
        names = [name for name, _ in sections()]
        unknown = sorted(set(self.only) - set(names))
        if unknown:
            raise SettingsError(
                "only", f"unknown demo section(s) {', '.join(unknown)}; valid: {', '.join(names)}"
            )
        missing = sorted({n for s in self.only for n in NEEDS.get(s, ()) if n not in self.only})
        if missing:
            raise SettingsError(
                "only",
                f"sections {', '.join(s for s in self.only if s in NEEDS)} read the models that "
                f"{', '.join(missing)} build; add them",
            )


@dataclass
class DemoResult:
    """The report's sections, the numbers every section collected and the seconds each took."""

    settings: DemoSettings
    context: DemoContext
    sections: list[Section] = field(default_factory=list)

    def summary(self) -> dict:
        ctx = self.context
        return {
            "seed": self.settings.seed,
            "full": self.settings.full,
            "weights": str(ctx.weights) if ctx.weights else "committed",
            "detector": str(ctx.detector) if ctx.detector else "committed",
            "numbers": ctx.numbers,
            "timings_seconds": ctx.timings,
        }

    def save(self, out: Path) -> Path:
        """``report.html`` (the sections plus a timing table) and ``summary.json``."""
        from fvlab.report.summary import write_summary

        timing = Section("timing", "How long each part took")
        timing.table(
            [[name, seconds] for name, seconds in self.context.timings.items()],
            ["section", "seconds (2 CPU cores)"],
        )
        write_report(
            Path(out) / "report.html",
            "fvlab demo: can you trust a feature visualization?",
            INTRO,
            [*self.sections, timing],
        )
        return write_summary(out, self.summary())


def run_demo(settings: DemoSettings, out: Path, *, show_progress: bool = True) -> DemoResult:
    """Run the demo's sections into ``out`` (each writes its own sub-folder), then the report
    and summary.json; returns the result (``out / "report.html"`` is the report)."""
    out = Path(out)
    ctx = DemoContext(out=out, seed=settings.seed, full=settings.full, show_progress=show_progress)
    out.mkdir(parents=True, exist_ok=True)
    if settings.full:
        start = time.perf_counter()
        retrain(ctx)
        ctx.timings["retrain (--full)"] = round(time.perf_counter() - start, 1)
    result = DemoResult(settings, ctx)
    for name, make in sections():
        if settings.only and name not in settings.only:
            continue
        start = time.perf_counter()
        result.sections.append(make(ctx))
        ctx.timings[name] = round(time.perf_counter() - start, 1)
    return finish(result, out)
