"""The demo job: run each pillar's section in order, time it, write report.html and
summary.json. Sections are plain functions ``(DemoContext) -> Section``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from fvlab.demo.context import DemoContext
from fvlab.report.html import Section, write_report

INTRO = (
    "fvlab runs every pillar on the embedded Fashion-MNIST model: it renders feature "
    "visualizations, builds models whose visualizations lie while their behaviour on natural "
    "images is unchanged, checks visualizations against natural images, and prepares the human "
    "study that measures whether they help. Every number below is also in summary.json."
)


def sections() -> list[tuple[str, Callable[[DemoContext], Section]]]:
    from fvlab.demo.fool_section import circuit_section
    from fvlab.demo.models_section import model_section, render_section
    from fvlab.demo.theory_section import theory_section

    return [
        ("model", model_section),
        ("render", render_section),
        ("circuit", circuit_section),
        ("theory", theory_section),
    ]


def run_demo(
    out: Path,
    seed: int = 0,
    full: bool = False,
    show_progress: bool = True,
    only: list[str] | None = None,
) -> Path:
    """Run the demo into ``out``; returns the report's path."""
    from fvlab.report.summary import write_summary

    torch.manual_seed(seed)
    ctx = DemoContext(out=out, seed=seed, full=full, show_progress=show_progress)
    out.mkdir(parents=True, exist_ok=True)
    built = []
    for name, make in sections():
        if only and name not in only:
            continue
        start = time.perf_counter()
        built.append(make(ctx))
        ctx.timings[name] = round(time.perf_counter() - start, 1)
    timing = Section("timing", "How long each part took")
    timing.table(
        [[name, seconds] for name, seconds in ctx.timings.items()],
        ["section", "seconds (2 CPU cores)"],
    )
    built.append(timing)
    write_summary(
        out, {"seed": seed, "full": full, "numbers": ctx.numbers, "timings_seconds": ctx.timings}
    )
    return write_report(
        out / "report.html", "fvlab demo: can you trust a feature visualization?", INTRO, built
    )
