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
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fvlab.errors import FvlabError
from fvlab.study.exemplars import RunningTopK, gather_images, top_exemplars
from fvlab.study.manifest import CONDITIONS, FORMAT, MANIFEST_NAME, VERSION
from fvlab.study.occlusion import occluded_images, occluder_side, occlusion_sweep, quantise

LayerUnit = tuple[str, int]


@dataclass(frozen=True)
class BuildSettings:
    """Every number that shapes the stimuli (recorded in the manifest under ``build``)."""

    top_k: int = 200
    bins: int = 10
    sets_per_unit: int = 10
    occluder_fraction: float = 0.4
    stride: int = 2
    blur_stride: int = 4
    fv_steps: int = 256
    diversity: float = 1.0
    catch_units: int = 3
    practice_units: int = 2
    blur_kernel: int | None = None
    blur_sigma: float | None = None
    split: str = "train"
    max_images: int | None = None
    batch_size: int = 500
    seed: int = 0

    def check(self) -> None:
        if self.bins < 2 or self.top_k % self.bins:
            raise FvlabError(
                f"top-k ({self.top_k}) must split into --bins ({self.bins}) equal rank bins "
                "with bins >= 2 (e.g. top-k 200, bins 10)"
            )
        bin_size = self.top_k // self.bins
        if not 1 <= self.sets_per_unit <= bin_size:
            raise FvlabError(
                f"--sets-per-unit {self.sets_per_unit} must be between 1 and the rank-bin size "
                f"{bin_size} (= top-k / bins), so that every set gets its own images"
            )
        if min(self.fv_steps, self.batch_size, self.stride, self.blur_stride) < 1:
            raise FvlabError("--fv-steps, --batch-size, --stride and --blur-stride must be >= 1")
        if self.catch_units < 0 or self.practice_units < 0:
            raise FvlabError("--catch and --practice must be >= 0")
        if self.max_images is not None and self.max_images < self.top_k:
            raise FvlabError(f"--max-images {self.max_images} is below --top-k {self.top_k}")


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


def parse_units(text: str, layers: Sequence[str] = ()) -> list[LayerUnit]:
    """Parse ``bn2:0-3,bn3:5,bn4:1-2`` (a number without ``layer:`` continues the previous
    layer), or plain ``0-3`` applied to every layer in ``layers``."""
    from fvlab.int_lists import parse_int_list

    pairs: list[LayerUnit] = []
    current: str | None = None
    plain: list[str] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if ":" in token:
            current, spec = token.rsplit(":", 1)
            if not current:
                raise FvlabError(f"missing layer name before ':' in {token!r}")
            pairs += [(current, u) for u in parse_int_list(spec)]
        elif current is not None:
            pairs += [(current, u) for u in parse_int_list(token)]
        else:
            plain.append(token)
    if plain:
        if not layers:
            raise FvlabError(
                f"units {','.join(plain)!r} have no layer: write them as LAYER:UNITS "
                "(e.g. bn3:0-5) or give --layer"
            )
        ids = parse_int_list(",".join(plain))
        pairs = [(layer, u) for layer in layers for u in ids] + pairs
    if not pairs:
        raise FvlabError(f"no units in {text!r}; e.g. --units bn2:0-3,bn3:5,bn4:1-2")
    seen: set[LayerUnit] = set()
    unique = [p for p in pairs if not (p in seen or seen.add(p))]
    return unique


def _rng(seed: int, layer: str, unit: int) -> np.random.Generator:
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
    """Images of the dataset by index, read on demand in data-only passes (cached)."""

    def __init__(self, dataset, batch_size: int) -> None:
        self.dataset, self.batch_size, self.cache = dataset, batch_size, {}

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        missing = {int(i) for i in indices} - self.cache.keys()
        if missing:
            self.cache.update(gather_images(self.dataset, missing, self.batch_size))
        return quantise(torch.stack([self.cache[int(i)] for i in indices]))


def pick_easy_units(
    loaded,
    states: dict[str, RunningTopK],
    images: ExemplarImages,
    candidates: Sequence[LayerUnit],
    *,
    count: int,
    side: int,
    stride: int,
    batch_size: int,
    show_progress: bool = False,
) -> list[LayerUnit]:
    """The ``count`` candidates with the largest occlusion effect on their top exemplar,
    (a_max − a_min) / σ_unit, in decreasing order (a screening pass: occluders on a grid of
    twice the stride)."""
    if count == 0:
        return []
    if len(candidates) < count:
        raise FvlabError(
            f"catch and practice trials need {count} units besides --units in the same layers, "
            f"but only {len(candidates)} exist; lower --catch/--practice or use other units"
        )
    top = [int(states[layer].indices[unit, 0]) for layer, unit in candidates]
    sweep = occlusion_sweep(
        loaded,
        images.get(top),
        list(candidates),
        side=side,
        stride=2 * stride,
        batch_size=batch_size,
        show_progress=show_progress,
        description="screening catch units",
    )
    std = torch.tensor([float(states[layer].std[unit]) for layer, unit in candidates])
    gaps = (sweep.activations.amax(1) - sweep.activations.amin(1)) / std.clamp_min(1e-12)
    order = torch.argsort(gaps, descending=True)[:count]
    return [candidates[int(i)] for i in order]


def plan_units(
    loaded,
    states: dict[str, RunningTopK],
    images: ExemplarImages,
    main: Sequence[LayerUnit],
    settings: BuildSettings,
    side: int,
    show_progress: bool = False,
) -> list[UnitPlan]:
    """Image-set plans for the main units and the automatically chosen catch/practice units."""
    s = settings
    plans = []
    for layer, unit in main:
        queries, refs = random_sets(s.sets_per_unit, s.top_k, s.bins, _rng(s.seed, layer, unit))
        plans.append(UnitPlan(layer, unit, "main", queries, refs))
    chosen = set(main)
    candidates = [
        (layer, u)
        for layer in dict.fromkeys(layer for layer, _ in main)
        for u in range(states[layer].values.shape[0])
        if (layer, u) not in chosen
    ]
    easy = pick_easy_units(
        loaded,
        states,
        images,
        candidates,
        count=s.catch_units + s.practice_units,
        side=side,
        stride=s.stride,
        batch_size=s.batch_size,
        show_progress=show_progress,
    )
    if not easy:
        return _with_exemplars(plans, states)
    bin_size = s.top_k // s.bins
    pools = [int(states[la].indices[u, r]) for la, u in easy for r in range(bin_size)]
    sweep = occlusion_sweep(
        loaded,
        images.get(pools),
        [pair for pair in easy for _ in range(bin_size)],
        side=side,
        stride=s.stride,
        batch_size=s.batch_size,
    )
    all_gaps = (sweep.activations.amax(1) - sweep.activations.amin(1)).view(-1, bin_size)
    for i, ((layer, unit), gaps) in enumerate(zip(easy, all_gaps, strict=True)):
        kind = "catch" if i < s.catch_units else "practice"
        best = [int(r) for r in torch.argsort(gaps, descending=True)[: s.sets_per_unit]]
        queries, refs = random_sets(
            s.sets_per_unit, s.top_k, s.bins, _rng(s.seed, layer, unit), queries=best
        )
        plans.append(UnitPlan(layer, unit, kind, queries, refs))
    return _with_exemplars(plans, states)


def _with_exemplars(plans: list[UnitPlan], states: dict[str, RunningTopK]) -> list[UnitPlan]:
    for plan in plans:
        state = states[plan.layer]
        plan.exemplar_index = [int(i) for i in state.indices[plan.unit]]
        plan.std = float(state.std[plan.unit])
    return plans


def _save(images: torch.Tensor, root: Path, paths: Sequence[str]) -> None:
    from fvlab.report.images import save_png

    for image, rel in zip(images, paths, strict=True):
        save_png(image, root / rel)


def build_study(
    loaded,
    dataset,
    units: Sequence[LayerUnit],
    out: str | Path,
    settings: BuildSettings = BuildSettings(),
    *,
    dataset_name: str = "fashion-mnist",
    model_name: str | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Build every stimulus of a study into ``out`` and return the manifest (also written).

    ``model_name``: how to load the model again (``fvlab.load(model_name, weights)``); default
    ``loaded.name``."""
    from fvlab.models.hooks import resolve_layers
    from fvlab.report.summary import write_summary
    from fvlab.study.references import blur_kernel, blurred_references, render_references

    s = settings
    s.check()
    out = Path(out)
    if not units:
        raise FvlabError("no units given; e.g. --units bn2:0-3,bn3:5,bn4:1-2")
    layers = list(dict.fromkeys(layer for layer, _ in units))
    resolve_layers(loaded.module, layers)
    size, channels = loaded.spec.size, loaded.spec.channels
    side = occluder_side(size, s.occluder_fraction)
    kernel, sigma = blur_kernel(size)
    kernel = s.blur_kernel or kernel
    sigma = s.blur_sigma or sigma

    states = top_exemplars(
        loaded,
        dataset,
        layers,
        s.top_k,
        batch_size=s.batch_size,
        max_images=s.max_images,
        show_progress=show_progress,
    )
    bad = [f"{la}:{u}" for la, u in units if not 0 <= u < states[la].values.shape[0]]
    if bad:
        widths = ", ".join(f"{la} has {states[la].values.shape[0]}" for la in layers)
        raise FvlabError(f"units out of range: {', '.join(bad)} ({widths} units, from 0)")
    images = ExemplarImages(dataset, max(s.batch_size, 1000))
    plans = plan_units(loaded, states, images, units, s, side, show_progress)
    n_sets, n_refs = s.sets_per_unit, s.bins - 1
    pairs = [(p.layer, p.unit) for p in plans]

    # queries and their occlusion sweeps (all sets of all units, batched)
    query_index = [p.exemplar_index[r] for p in plans for r in p.query_ranks]
    queries = images.get(query_index)
    set_units = [pair for pair in pairs for _ in range(n_sets)]
    sweep = occlusion_sweep(
        loaded,
        queries,
        set_units,
        side=side,
        stride=s.stride,
        batch_size=s.batch_size,
        show_progress=show_progress,
    )
    occluded = [None] * len(query_index)
    for i, (best, worst) in enumerate(zip(sweep.best, sweep.worst, strict=True)):
        if sweep.activations[i, best] <= sweep.activations[i, worst]:
            layer, unit = set_units[i]
            raise FvlabError(
                f"unit {layer}:{unit} does not respond to occlusion on exemplar "
                f"{query_index[i]} (all positions give the same activation); choose another unit"
            )
        variants = occluded_images(queries[i : i + 1], side, s.stride)[0]
        occluded[i] = (variants[best], variants[worst])

    # natural and blurred references
    ref_index = [[p.exemplar_index[r] for r in refs] for p in plans for refs in p.reference_ranks]
    naturals = images.get([i for row in ref_index for i in row])
    naturals = naturals.view(len(plans), n_sets * n_refs, channels, size, size)
    blurred, windows = blurred_references(
        loaded,
        naturals,
        pairs,
        window=side,
        stride=s.blur_stride,
        kernel=kernel,
        sigma=sigma,
        batch_size=s.batch_size,
        show_progress=show_progress,
    )

    # synthetic references: all units in one optimisation
    fvs = render_references(
        loaded,
        pairs,
        per_unit=n_refs,
        steps=s.fv_steps,
        diversity=s.diversity,
        scales=[p.std if p.std > 0 else 1.0 for p in plans],
        seed=s.seed,
        show_progress=show_progress,
    )

    # write PNGs
    out.mkdir(parents=True, exist_ok=True)
    n_fv, n_nat = n_refs // 2, n_refs - n_refs // 2
    mixed_natural = list(range(0, n_refs, 2))[:n_nat]
    units_json = []
    for g, plan in enumerate(plans):
        fv_paths = [f"{plan.folder}/fv_{j}.png" for j in range(n_refs)]
        _save(fvs[g], out, fv_paths)
        sets_json = []
        for i in range(n_sets):
            k = g * n_sets + i
            base = f"{plan.folder}/set{i}"
            nat_paths = [f"{base}/natural_{j}.png" for j in range(n_refs)]
            blur_paths = [f"{base}/blur_{j}.png" for j in range(n_refs)]
            block = slice(i * n_refs, (i + 1) * n_refs)
            _save(naturals[g, block], out, nat_paths)
            _save(blurred[g, block], out, blur_paths)
            files = [f"{base}/query.png", f"{base}/occluded_max.png", f"{base}/occluded_min.png"]
            _save(torch.stack([queries[k], *occluded[k]]), out, files)
            fv_pick = [fv_paths[(i * n_fv + j) % n_refs] for j in range(n_fv)]
            mixed = [nat_paths[j] for j in mixed_natural]
            mixed = [m for pair in zip(mixed, fv_pick + [None], strict=False) for m in pair if m]
            sets_json.append(
                {
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
                        side_name: int((image != queries[k]).any(0).sum())
                        for side_name, image in zip(("max", "min"), occluded[k], strict=True)
                    },
                    "query_index": query_index[k],
                    "query_rank": plan.query_ranks[i] + 1,
                    "natural_ranks": [r + 1 for r in plan.reference_ranks[i]],
                    "natural_index": ref_index[k],
                    "blur_window": [[int(v) for v in w] for w in windows[g, block]],
                }
            )
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

    # ground truth and reference activations, measured on the saved PNGs
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_name or loaded.name,
        "weights": loaded.weights,
        "image_size": size,
        "channels": channels,
        "occluder_px": side,
        "stride": s.stride,
        "seed": s.seed,
        "conditions": list(CONDITIONS),
        "units": units_json,
        "dataset": {"name": dataset_name, "split": s.split, "images": states[layers[0]].count},
        "build": {**asdict(s), "blur_kernel": kernel, "blur_sigma": sigma},
    }
    _measure(out, manifest, loaded, s.batch_size)
    _check_against_sweep(manifest, sweep)
    write_summary(out, manifest, MANIFEST_NAME)
    return manifest


def _measure(out: Path, manifest: dict[str, Any], loaded, batch_size: int) -> None:
    """Fill in activations (ground truth and references) from the saved PNGs."""
    from fvlab.study.manifest import image_sets, load_images
    from fvlab.study.occlusion import unit_activations

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


def _check_against_sweep(manifest: dict[str, Any], sweep) -> None:
    """The saved occlusions must reproduce the sweep (they are the same 8-bit images)."""
    from fvlab.study.manifest import image_sets

    for k, (_, s) in enumerate(image_sets(manifest)):
        expected = (sweep.activations[k].max(), sweep.activations[k].min())
        got = (s["activation"]["max"], s["activation"]["min"])
        if any(
            abs(float(e) - g) > 1e-4 * max(1.0, abs(g)) for e, g in zip(expected, got, strict=True)
        ):
            raise RuntimeError(
                f"{s['set_id']}: saved occlusions give {got}, the sweep gave {expected}"
            )
