"""Build a study's stimuli: exemplars, image sets, occlusions, references, manifest.

Scaled-down version of P2's design (P2 numbers in brackets):

* top ``top_k`` = 200 natural exemplars per unit [200 ImageNet train images], split by rank into
  ``bins`` = 10 bins of 20; bin 0 (ranks 1–20) holds the queries, bins 1–9 (ranks 21–200) give
  one natural reference each → 9 references [9]; ``sets_per_unit`` = 10 image sets per unit [10],
  each with its own query and references (drawn without replacement, seeded);
* occluder: square of 40 % of the image side (11 px at 28 px) [90 px at 224], mean-colour fill,
  every position on a stride-2 grid [stride 2];
* synthetic references: 9 diverse feature visualizations per unit (shared by the unit's sets;
  256 updates [2560]; diversity λ = 1 on the activation divided by its std [λ = 100, raw]);
  ``mixed`` = 5 natural (bins 1, 3, 5, 7, 9) interleaved with 4 FVs (rotating with the set);
  ``blur`` = the set's natural references blurred outside their best window (window side =
  occluder side, 11 px [90 px]; kernel 3×3, σ 0.8 [21×21]; best window searched on a 4 px grid);
  ``none`` = [];
* catch and practice units: among the OTHER units of the same layers, the ones whose top
  exemplar shows the largest occlusion effect, (a_max − a_min) / σ_unit with σ_unit the unit's
  activation standard deviation over the dataset; their image sets use the top-bin queries with
  the largest effects (P2 hand-picked easy units; this picks them by the same criterion a
  person would find easy: a big, unambiguous difference).

Ground-truth activations are measured on the saved 8-bit PNGs.

The job :func:`run_build_study` runs five named steps: :func:`plan_layout` (units checked against
the model, occluder and blur geometry) → :func:`find_exemplars` (the top-k search and every
unit's image-set plan, catch and practice units included) → :func:`occlude_queries` (the
occlusion sweeps) → :func:`make_references` (natural, blurred and synthetic references) →
:func:`write_study` (PNGs, ground truth measured on them, the manifest).
"""

from __future__ import annotations

import re
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fvlab.activations.sweep import LayerStats, SweepResult
from fvlab.errors import FvlabError
from fvlab.jobs import finish
from fvlab.study.exemplars import top_exemplars
from fvlab.study.manifest import CONDITIONS, FORMAT, MANIFEST_NAME, VERSION, image_sets
from fvlab.study.occlusion import (
    Sweep,
    occluded_images,
    occluder_side,
    occlusion_sweep,
    quantise,
    unit_activations,
)
from fvlab.study.settings import LayerUnit, StudySettings

if TYPE_CHECKING:
    from fvlab.data.dataset import Dataset
    from fvlab.engine.base import Engine
    from fvlab.models.zoo import LoadedModel


@dataclass
class UnitPlan:
    """Which exemplar ranks (0-based, into the unit's top-k) each image set uses."""

    layer: str
    unit: int
    kind: str
    query_ranks: list[int]
    reference_ranks: list[list[int]]
    exemplar_index: list[int] = field(default_factory=list)  # dataset index per top-k rank
    std: float = 1.0

    @property
    def unit_id(self) -> str:
        return f"{self.layer}:{self.unit}"

    @property
    def folder(self) -> str:
        return f"images/{re.sub(r'[^A-Za-z0-9]+', '-', self.layer)}_{self.unit}"


def _rng(seed: int, layer: str, unit: int) -> np.random.Generator:
    """The generator of one unit's image sets: the same for a unit whatever else is built."""
    return np.random.default_rng([seed, zlib.crc32(layer.encode()), unit])


def random_sets(
    n_sets: int, top_k: int, bins: int, rng: np.random.Generator, queries: Sequence[int] = ()
) -> tuple[list[int], list[list[int]]]:
    """Query ranks (from bin 0, or ``queries`` if given) and one reference rank per bin 1…bins−1
    for each set; no rank is used by two sets."""
    size = top_k // bins
    query_ranks = list(queries) or [int(r) for r in rng.permutation(size)[:n_sets]]
    per_bin = [b * size + rng.permutation(size)[:n_sets] for b in range(1, bins)]
    refs = [[int(per_bin[b][i]) for b in range(bins - 1)] for i in range(n_sets)]
    return query_ranks, refs


class ExemplarImages:
    """Images of the dataset by global index, quantised to 8 bit, read on demand with
    :func:`fvlab.data.dataset.fetch_images` (data-only passes) and cached."""

    def __init__(self, dataset: Dataset, batch_size: int) -> None:
        self.dataset, self.batch_size = dataset, batch_size
        self.cache: dict[int, torch.Tensor] = {}

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        from fvlab.data.dataset import fetch_images

        missing = sorted({int(i) for i in indices} - self.cache.keys())
        if missing:
            found = fetch_images(self.dataset, missing, self.batch_size)
            self.cache.update(zip(missing, found, strict=True))
        return quantise(torch.stack([self.cache[int(i)] for i in indices]))


@dataclass(frozen=True)
class Layout:
    """The geometry of a build: layers, image size and channels, occluder side (px), blur."""

    layers: list[str]
    size: int
    channels: int
    side: int
    kernel: int
    sigma: float


#: units per layer when none are given (P2: 18 units over its layers)
DEFAULT_UNITS_PER_LAYER = 6


def default_units(model: LoadedModel, layers: int = 3) -> list[LayerUnit]:
    """The study's units when none are given: the first ``DEFAULT_UNITS_PER_LAYER`` channels
    of each of the model's last ``layers`` BatchNorm2d layers (pre-ReLU, as P2), or of its
    last Conv2d layers when it has no batch norm. fmnist-cnn: bn3:0-5, bn4:0-5, bn5:0-5."""
    modules = list(model.module.named_modules())
    chosen = [(n, m.num_features) for n, m in modules if isinstance(m, torch.nn.BatchNorm2d)]
    if not chosen:
        chosen = [(n, m.out_channels) for n, m in modules if isinstance(m, torch.nn.Conv2d)]
    if not chosen:
        raise FvlabError(
            f"model {model.name} has no BatchNorm2d or Conv2d layer to take default units from; "
            "give them with units (--units LAYER:UNITS)"
        )
    return [
        (name, u)
        for name, channels in chosen[-layers:]
        for u in range(min(channels, DEFAULT_UNITS_PER_LAYER))
    ]


def plan_layout(model: LoadedModel, settings: StudySettings) -> Layout:
    """Step 1, plan units: check every unit against its layer in ``model``
    (:func:`fvlab.models.probe.check_units`) and derive the geometry — occluder side
    round(occluder_fraction · size) px, blur kernel and σ (P2's 21 px at 224 px, scaled, unless
    the settings give them)."""
    from fvlab.models.probe import check_units
    from fvlab.study.references import blur_kernel

    layers = list(dict.fromkeys(layer for layer, _ in settings.units))
    for layer in layers:
        check_units(model, layer, [u for la, u in settings.units if la == layer])
    size, channels = model.spec.size, model.spec.channels
    kernel, sigma = blur_kernel(size)
    return Layout(
        layers,
        size,
        channels,
        occluder_side(size, settings.occluder_fraction),
        settings.blur_kernel or kernel,
        settings.blur_sigma or sigma,
    )


@dataclass(frozen=True)
class Build:
    """What every step of a build reads: the model, the settings, the geometry, the exemplar
    image reader, and whether to show progress bars."""

    model: LoadedModel
    settings: StudySettings
    layout: Layout
    images: ExemplarImages
    show_progress: bool = True
    engine: Engine | None = None  # runs the exemplar sweep's and the references' shards
    out: Path | None = None  # keeps the shards in out/shards/{exemplars,references}
    resume: bool = False  # reuse the intact shards of an earlier build

    def sweep(
        self, queries: torch.Tensor, units: Sequence[LayerUnit], stride: int, **progress: Any
    ) -> Sweep:
        """:func:`fvlab.study.occlusion.occlusion_sweep` of ``queries`` (one unit each) with the
        build's occluder side and batch size, occluders every ``stride`` px."""
        side, batch = self.layout.side, self.settings.batch_size
        return occlusion_sweep(
            self.model, queries, list(units), side=side, stride=stride, batch_size=batch, **progress
        )


def _gaps(sweep: Sweep) -> torch.Tensor:
    """Occlusion effect per query: a_max − a_min over the sweep's positions, (N,)."""
    return sweep.activations.amax(1) - sweep.activations.amin(1)


def pick_easy_units(
    build: Build, states: SweepResult, candidates: Sequence[LayerUnit], count: int
) -> list[LayerUnit]:
    """The ``count`` candidates with the largest occlusion effect on their top exemplar,
    (a_max − a_min) / σ_unit, in decreasing order (a screening pass: occluders on a grid of
    twice the stride)."""
    if count == 0:
        return []
    if len(candidates) < count:
        raise FvlabError(
            f"catch and practice trials need {count} units besides the main units in the same "
            f"layers, but only {len(candidates)} exist; lower catch_units/practice_units or use "
            "other units"
        )
    top = [int(states[layer].top.indices[unit, 0]) for layer, unit in candidates]
    sweep = build.sweep(
        build.images.get(top),
        candidates,
        2 * build.settings.stride,
        show_progress=build.show_progress,
        description="screening catch units",
    )
    std = torch.tensor([float(states[layer].moments.std[unit]) for layer, unit in candidates])
    order = torch.argsort(_gaps(sweep) / std.clamp_min(1e-12), descending=True)[:count]
    return [candidates[int(i)] for i in order]


def _easy_plans(build: Build, states: SweepResult) -> list[UnitPlan]:
    """Catch, then practice units among the other units of the main units' layers; each set's
    query is one of the top-bin exemplars with the largest occlusion effects."""
    s = build.settings
    chosen = set(s.units)
    candidates = [
        (layer, u)
        for layer in build.layout.layers
        for u in range(states[layer].top.indices.shape[0])
        if (layer, u) not in chosen
    ]
    easy = pick_easy_units(build, states, candidates, s.catch_units + s.practice_units)
    if not easy:
        return []
    bin_size = s.top_k // s.bins
    pools = [int(states[la].top.indices[u, r]) for la, u in easy for r in range(bin_size)]
    units = [pair for pair in easy for _ in range(bin_size)]
    gaps = _gaps(build.sweep(build.images.get(pools), units, s.stride)).view(-1, bin_size)
    plans = []
    for i, ((layer, unit), unit_gaps) in enumerate(zip(easy, gaps, strict=True)):
        kind = "catch" if i < s.catch_units else "practice"
        best = [int(r) for r in torch.argsort(unit_gaps, descending=True)[: s.sets_per_unit]]
        queries, refs = random_sets(
            s.sets_per_unit, s.top_k, s.bins, _rng(s.seed, layer, unit), queries=best
        )
        plans.append(UnitPlan(layer, unit, kind, queries, refs))
    return plans


def plan_units(build: Build, states: SweepResult) -> list[UnitPlan]:
    """Image-set plans for the main units and the automatically chosen catch/practice units,
    each with its unit's exemplar indices (by rank) and activation standard deviation."""
    s = build.settings
    plans = []
    for layer, unit in s.units:
        queries, refs = random_sets(s.sets_per_unit, s.top_k, s.bins, _rng(s.seed, layer, unit))
        plans.append(UnitPlan(layer, unit, "main", queries, refs))
    plans += _easy_plans(build, states)
    for plan in plans:
        stats: LayerStats = states[plan.layer]
        plan.exemplar_index = [int(i) for i in stats.top.indices[plan.unit]]
        plan.std = float(stats.moments.std[plan.unit])
    return plans


def find_exemplars(build: Build) -> tuple[list[UnitPlan], int]:
    """Step 2, exemplar search: one sweep keeps every unit's top-k natural exemplars
    (:func:`fvlab.study.exemplars.top_exemplars`); then every unit's image sets are planned
    (:func:`plan_units`). Returns the plans and the number of images streamed."""
    s = build.settings
    states = top_exemplars(
        build.model,
        build.images.dataset,
        build.layout.layers,
        s.top_k,
        batch_size=s.batch_size,
        max_images=s.max_images,
        shard_images=s.shard_images,
        engine=build.engine,
        out=build.out,
        resume=build.resume,
        show_progress=build.show_progress,
    )
    return plan_units(build, states), states.n_images


@dataclass
class Queries:
    """Every set's query (N, C, H, W), its dataset index, its occlusion sweep, and the correct
    (highest activation) and wrong (lowest) occluded images."""

    images: torch.Tensor
    index: list[int]
    sweep: Sweep
    occluded: list[tuple[torch.Tensor, torch.Tensor]]


def occlude_queries(build: Build, plans: list[UnitPlan]) -> Queries:
    """Step 3, occlusion sweeps: every query of every set occluded at every grid position (all
    units batched); the position leaving a_u highest gives ``occluded_max``, the one lowering
    it most ``occluded_min``. A query whose activation no occluder changes is an error."""
    s, side = build.settings, build.layout.side
    index = [p.exemplar_index[r] for p in plans for r in p.query_ranks]
    queries = build.images.get(index)
    set_units = [(p.layer, p.unit) for p in plans for _ in range(s.sets_per_unit)]
    sweep = build.sweep(queries, set_units, s.stride, show_progress=build.show_progress)
    occluded = []
    for i, (best, worst) in enumerate(zip(sweep.best, sweep.worst, strict=True)):
        if sweep.activations[i, best] <= sweep.activations[i, worst]:
            layer, unit = set_units[i]
            raise FvlabError(
                f"unit {layer}:{unit} does not respond to occlusion on exemplar "
                f"{index[i]} (all positions give the same activation); choose another unit"
            )
        variants = occluded_images(queries[i : i + 1], side, s.stride)[0]
        occluded.append((variants[best], variants[worst]))
    return Queries(queries, index, sweep, occluded)


@dataclass
class References:
    """Per unit g: natural references (G, sets·refs, C, H, W) with their dataset indices per
    set, the blurred ones and their sharp-window corners (G, sets·refs, 2), and the feature
    visualizations (G, refs, C, H, W)."""

    natural: torch.Tensor
    index: list[list[int]]
    blurred: torch.Tensor
    windows: torch.Tensor
    synthetic: torch.Tensor


def make_references(build: Build, plans: list[UnitPlan]) -> References:
    """Step 4, references: the natural exemplars of each set (one per rank bin 1…bins−1), the
    same blurred outside their best window, and ``bins − 1`` diverse feature visualizations per
    unit, all units in one optimisation (activation scaled by the unit's σ)."""
    from fvlab.engine.jobs import shard_store
    from fvlab.study.references import blurred_references, render_references

    s, layout = build.settings, build.layout
    pairs = [(p.layer, p.unit) for p in plans]
    index = [[p.exemplar_index[r] for r in refs] for p in plans for refs in p.reference_ranks]
    naturals = build.images.get([i for row in index for i in row])
    naturals = naturals.view(len(plans), -1, layout.channels, layout.size, layout.size)
    blurred, windows = blurred_references(
        build.model,
        naturals,
        pairs,
        window=layout.side,
        stride=s.blur_stride,
        kernel=layout.kernel,
        sigma=layout.sigma,
        batch_size=s.batch_size,
        show_progress=build.show_progress,
    )
    scales = [p.std if p.std > 0 else 1.0 for p in plans]
    per_shard = max(1, s.batch_size // (s.bins - 1))
    what = {"settings": s.to_dict(), "units": [list(pair) for pair in pairs], "scales": scales}
    plan = [[a, min(a + per_shard, len(pairs))] for a in range(0, len(pairs), per_shard)]
    store = shard_store(
        build.model, "study-references", what, plan, build.out, build.resume, part="references"
    )
    fvs = render_references(
        build.model,
        pairs,
        per_unit=s.bins - 1,
        steps=s.fv_steps,
        diversity=s.diversity,
        scales=scales,
        seed=s.seed,
        show_progress=build.show_progress,
        units_per_shard=per_shard,
        engine=build.engine,
        store=store,
    )
    return References(naturals, index, blurred, windows, fvs)


def _save(images: torch.Tensor, root: Path, paths: Sequence[str]) -> None:
    from fvlab.report.images import save_png

    for image, rel in zip(images, paths, strict=True):
        save_png(image, root / rel)


def _image_set(
    out: Path,
    plan: UnitPlan,
    i: int,
    k: int,
    queries: Queries,
    refs: References,
    g: int,
    fv_paths: list[str],
    side: int,
) -> dict[str, Any]:
    """Write image set ``i`` of unit ``g`` (set ``k`` overall) and return its manifest entry;
    ``mixed`` interleaves the naturals of bins 1, 3, 5, … with the unit's FVs (rotating)."""
    n_refs = len(fv_paths)
    n_fv, n_nat = n_refs // 2, n_refs - n_refs // 2
    base = f"{plan.folder}/set{i}"
    nat_paths = [f"{base}/natural_{j}.png" for j in range(n_refs)]
    blur_paths = [f"{base}/blur_{j}.png" for j in range(n_refs)]
    block = slice(i * n_refs, (i + 1) * n_refs)
    _save(refs.natural[g, block], out, nat_paths)
    _save(refs.blurred[g, block], out, blur_paths)
    query, occluded, sweep = queries.images[k], queries.occluded[k], queries.sweep
    files = [f"{base}/query.png", f"{base}/occluded_max.png", f"{base}/occluded_min.png"]
    _save(torch.stack([query, *occluded]), out, files)
    fv_pick = [fv_paths[(i * n_fv + j) % n_refs] for j in range(n_fv)]
    mixed = [nat_paths[j] for j in list(range(0, n_refs, 2))[:n_nat]]
    mixed = [m for pair in zip(mixed, fv_pick + [None], strict=False) for m in pair if m]
    return {
        "set_id": f"{plan.unit_id}:{i}",
        "query": files[0],
        "occluded_max": files[1],
        "occluded_min": files[2],
        "occluder": {
            "max": [int(v) for v in sweep.positions[sweep.best[k]]],
            "min": [int(v) for v in sweep.positions[sweep.worst[k]]],
            "size": side,
        },
        "references": {
            "synthetic": fv_paths,
            "natural": nat_paths,
            "mixed": mixed,
            "blur": blur_paths,
            "none": [],
        },
        "changed_pixels": {
            side_name: int((image != query).any(0).sum())
            for side_name, image in zip(("max", "min"), occluded, strict=True)
        },
        "query_index": queries.index[k],
        "query_rank": plan.query_ranks[i] + 1,
        "natural_ranks": [r + 1 for r in plan.reference_ranks[i]],
        "natural_index": refs.index[k],
        "blur_window": [[int(v) for v in w] for w in refs.windows[g, block]],
    }


def write_study(
    out: Path, build: Build, plans: list[UnitPlan], queries: Queries, refs: References, images: int
) -> dict[str, Any]:
    """Step 5, write: every PNG into ``out``, then the manifest with the ground truth and the
    references' activations measured on the saved 8-bit PNGs (checked against the sweep).
    Returns the manifest (:meth:`StudyBuild.save` writes it); ``images``: how many dataset
    images the exemplar search streamed."""
    s, layout, model = build.settings, build.layout, build.model
    out.mkdir(parents=True, exist_ok=True)
    units_json = []
    for g, plan in enumerate(plans):
        fv_paths = [f"{plan.folder}/fv_{j}.png" for j in range(s.bins - 1)]
        _save(refs.synthetic[g], out, fv_paths)
        sets_json = [
            _image_set(
                out, plan, i, g * s.sets_per_unit + i, queries, refs, g, fv_paths, layout.side
            )
            for i in range(s.sets_per_unit)
        ]
        units_json.append(
            {
                "unit_id": plan.unit_id,
                "layer": plan.layer,
                "unit": plan.unit,
                "kind": plan.kind,
                "activation_std": plan.std,
                "image_sets": sets_json,
            }
        )
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "model": s.model_source or model.name,
        "weights": model.weights,
        "image_size": layout.size,
        "channels": layout.channels,
        "occluder_px": layout.side,
        "stride": s.stride,
        "seed": s.seed,
        "conditions": list(CONDITIONS),
        "units": units_json,
        "dataset": {
            "name": str(s.data) if s.data is not None else "fashion-mnist",
            "split": s.split,
            "images": images,
        },
        "build": {**s.recorded(), "blur_kernel": layout.kernel, "blur_sigma": layout.sigma},
    }
    _measure(out, manifest, model, s.batch_size)
    _check_against_sweep(manifest, queries.sweep)
    return manifest


def _measure(out: Path, manifest: dict[str, Any], loaded: LoadedModel, batch_size: int) -> None:
    """Fill in activations (ground truth and references) from the saved PNGs."""
    from fvlab.study.manifest import load_images

    pairs = list(image_sets(manifest))
    keys = ("query", "occluded_max", "occluded_min")
    kinds = ("natural", "blur", "synthetic")
    paths = [s[k] for _, s in pairs for k in keys] + [
        p for _, s in pairs for c in kinds for p in s["references"][c]
    ]
    images = load_images(out, paths)
    n = len(pairs)
    shape = images.shape[1:]
    truth = images[: 3 * n].view(n, 3, *shape)
    refs = images[3 * n :].view(n, -1, *shape)
    layer_units = [(u["layer"], int(u["unit"])) for u, _ in pairs]
    acts = unit_activations(loaded, torch.cat([truth, refs], 1), layer_units, batch_size=batch_size)
    per = refs.shape[1] // len(kinds)
    for (_, s), a in zip(pairs, acts, strict=True):
        s["activation"] = {"query": float(a[0]), "max": float(a[1]), "min": float(a[2])}
        s["reference_activations"] = {
            c: [float(v) for v in a[3 + j * per : 3 + (j + 1) * per]] for j, c in enumerate(kinds)
        }


def _check_against_sweep(manifest: dict[str, Any], sweep: Sweep) -> None:
    """The saved occlusions must reproduce the sweep (they are the same 8-bit images)."""
    for k, (_, s) in enumerate(image_sets(manifest)):
        expected = (sweep.activations[k].max(), sweep.activations[k].min())
        got = (s["activation"]["max"], s["activation"]["min"])
        if any(
            abs(float(e) - g) > 1e-4 * max(1.0, abs(g)) for e, g in zip(expected, got, strict=True)
        ):
            raise RuntimeError(
                f"{s['set_id']}: saved occlusions give {got}, the sweep gave {expected}"
            )


@dataclass
class StudyBuild:
    """A built study: its directory (PNGs) and manifest (written by :meth:`save`)."""

    out: Path
    manifest: dict[str, Any]
    settings: StudySettings

    def unit_counts(self) -> dict[str, int]:
        """Units per kind (main, catch, practice), in manifest order."""
        kinds: dict[str, int] = {}
        for unit in self.manifest["units"]:
            kinds[unit["kind"]] = kinds.get(unit["kind"], 0) + 1
        return kinds

    def summary(self) -> dict[str, Any]:
        return {
            "manifest": MANIFEST_NAME,
            "model": self.manifest["model"],
            "units": self.unit_counts(),
            "image_sets": sum(1 for _ in image_sets(self.manifest)),
            "dataset": self.manifest["dataset"],
            "settings": self.settings.to_dict(),
        }

    def save(self, out: Path) -> Path:
        """Write ``manifest.json`` and ``summary.json`` into ``out`` (the images are copied
        there first when ``out`` is not the folder the study was built in)."""
        from fvlab.report.summary import write_summary

        out = Path(out)
        if out.resolve() != self.out.resolve():
            shutil.copytree(self.out / "images", out / "images", dirs_exist_ok=True)
        write_summary(out, self.manifest, MANIFEST_NAME)
        return write_summary(out, self.summary())


def run_build_study(
    model: LoadedModel,
    settings: StudySettings,
    out: Path,
    *,
    show_progress: bool = True,
    engine: Engine | None = None,
    resume: bool = False,
) -> StudyBuild:
    """The ``fvlab study build`` job: every stimulus of a study into ``out`` (required: the
    ground truth is measured on the saved PNGs), its ``manifest.json`` and ``summary.json``.
    Natural images come from ``settings.data`` / ``settings.split``
    (:func:`fvlab.data.natural.open_dataset`). The exemplar sweep (slices of ``shard_images``)
    and the FV references (``batch_size // (bins − 1)`` units per shard) run as shards on
    ``engine`` (default: this process), kept in ``out/shards``; ``resume`` reuses the intact
    shards of an earlier build with the same settings. The stimuli do not depend on either."""
    from fvlab.data.natural import open_dataset

    out = Path(out)
    layout = plan_layout(model, settings)
    dataset = open_dataset(model, settings.data, settings.split)
    images = ExemplarImages(dataset, max(settings.batch_size, 1000))
    build = Build(model, settings, layout, images, show_progress, engine, out, resume)
    plans, n_images = find_exemplars(build)
    queries = occlude_queries(build, plans)
    refs = make_references(build, plans)
    manifest = write_study(out, build, plans, queries, refs, n_images)
    return finish(StudyBuild(out, manifest, settings), out)
