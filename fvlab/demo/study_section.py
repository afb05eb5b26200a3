"""Demo section: a small causal-understanding study built on fmnist-cnn, one trial per
condition, and the commands to run it with people."""

from __future__ import annotations

import torch

from fvlab.demo.context import DemoContext
from fvlab.report.html import Section

UNITS = "bn2:0-1,bn3:0-1,bn4:0-1"


def _trial_preview(study, manifest: dict, path) -> dict:
    """One image set shown as it is in every condition: a row of 9 references (blank for
    'none'), then the query, the correct and the wrong occlusion. The set is the first one of
    the main unit whose visualizations have the most contrast (some units' are faint)."""
    from fvlab.report.images import save_grid
    from fvlab.study.manifest import CONDITIONS, image_sets, load_images

    def contrast(pair) -> float:
        references = load_images(study, pair[1]["references"]["synthetic"])
        return float(references.flatten(1).std(1).mean())

    firsts = [(u, s) for u, s in image_sets(manifest, kinds=("main",)) if s is u["image_sets"][0]]
    unit, image_set = max(firsts, key=contrast)
    trio = load_images(study, [image_set[k] for k in ("query", "occluded_max", "occluded_min")])
    blank = torch.ones_like(trio[0])
    tiles, labels = [], []
    for condition in CONDITIONS:
        paths = image_set["references"][condition]
        references = load_images(study, paths) if paths else blank.expand(9, *blank.shape)
        tiles += [references, trio]
        labels += [condition] + [""] * 8 + ["query", "correct", "wrong"]
    save_grid(torch.cat(tiles), path, ncol=12, labels=labels, upscale=3)
    return {"unit": unit["unit_id"], "set": image_set["set_id"], **image_set["activation"]}


def study_section(ctx: DemoContext) -> Section:
    from fvlab.study.settings import StudySettings, parse_units
    from fvlab.study.stimuli import run_build_study

    study = ctx.folder("study")
    settings = StudySettings(
        units=parse_units(UNITS),
        top_k=40,
        sets_per_unit=2,
        catch_units=2,
        practice_units=1,
        split="test",
        max_images=4000,
        seed=ctx.seed,
    )
    built = run_build_study(ctx.load(), settings, study, show_progress=ctx.show_progress)
    manifest = built.manifest
    preview = _trial_preview(study, manifest, ctx.out / "study-preview.png")
    kinds = built.unit_counts()
    ctx.numbers["study"] = {
        "units": kinds,
        "preview": preview,
        "conditions": manifest["conditions"],
    }
    section = Section("study", "Study: do visualizations help people predict a unit?")
    section.text(
        "The causal-understanding task of Zimmermann et al. (2021): a participant sees reference "
        "images for a unit, an image and two copies of it with a different square covered, and "
        "answers which covered copy the unit responds to more (buttons 3 2 1 | 1 2 3, side × "
        "confidence). The conditions differ only in the references: synthetic (9 feature "
        "visualizations), natural (9 exemplars), mixed (5 + 4), blur (exemplars blurred outside "
        "their most activating window) or none."
    )
    section.table(
        [[kind, count] for kind, count in kinds.items()],
        ["units in this small study", "count"],
    )
    section.image(
        ctx.out / "study-preview.png",
        f"one trial of unit {preview['unit']} in each condition (rows): references | query | "
        "correct occlusion | wrong occlusion",
    )
    section.text(
        f"Ground truth of this trial (spatial mean of the unit on the saved PNGs): query "
        f"{preview['query']:.3f}, correct occlusion {preview['max']:.3f}, wrong occlusion "
        f"{preview['min']:.3f}. In the experiment the sides are randomised and balanced."
    )
    section.text("Run it with people (docs/study.md): serve, rehearse with simulated observers, "
                 "analyse.")  # fmt: skip
    section.code(
        f'fvlab study serve {study} --port 8000 --admin-token "$TOKEN"\n'
        'fvlab study simulate --url http://127.0.0.1:8000 --participants 50 --admin-token "$TOKEN"'
        "\n"
        f"fvlab study analyze {study} --out {ctx.out / 'study-analysis'}"
        "  # rehearsal data: add --min-total-s 0 --none-min-total-s 0 (server time)"
    )
    return section
