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
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.fool.build_detector import build_detector
    from fvlab.models.evaluate import top1_accuracy
    from fvlab.models.train_reference import (
        TrainConfig,
        as_loaded,
        save_reference,
        train_reference,
    )

    folder = ctx.folder("full")
    model, record = train_reference(TrainConfig(seed=ctx.seed), show_progress=ctx.show_progress)
    accuracy = top1_accuracy(as_loaded(model), FashionMNIST("test"), show_progress=False)
    record["test_top1"] = accuracy.top1
    ctx.weights = save_reference(model, record, folder / "fmnist-cnn.pt")
    ctx.detector = folder / "fmnist-cnn-detector.pt"
    build_detector(
        fvlab.load("fmnist-cnn", ctx.weights),
        ctx.detector,
        seed=ctx.seed,
        show_progress=ctx.show_progress,
    )


def run_demo(
    out: Path,
    seed: int = 0,
    full: bool = False,
    show_progress: bool = True,
    only: list[str] | None = None,
) -> Path:
    """Run the demo into ``out``; returns the report's path."""
    from fvlab.errors import FvlabError
    from fvlab.report.summary import write_summary

    names = [name for name, _ in sections()]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise FvlabError(f"unknown demo section(s) {', '.join(unknown)}; valid: {', '.join(names)}")
    if only:
        missing = sorted({n for s in only for n in NEEDS.get(s, ()) if n not in only})
        if missing:
            raise FvlabError(
                f"sections {', '.join(s for s in only if s in NEEDS)} read the models that "
                f"{', '.join(missing)} build; add them to --only"
            )
    torch.manual_seed(seed)
    ctx = DemoContext(out=out, seed=seed, full=full, show_progress=show_progress)
    out.mkdir(parents=True, exist_ok=True)
    if full:
        start = time.perf_counter()
        retrain(ctx)
        ctx.timings["retrain (--full)"] = round(time.perf_counter() - start, 1)
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
        out,
        {
            "seed": seed,
            "full": full,
            "weights": str(ctx.weights) if ctx.weights else "committed",
            "detector": str(ctx.detector) if ctx.detector else "committed",
            "numbers": ctx.numbers,
            "timings_seconds": ctx.timings,
        },
    )
    return write_report(
        out / "report.html", "fvlab demo: can you trust a feature visualization?", INTRO, built
    )
