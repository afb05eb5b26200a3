"""Audit the units of one layer: is each unit's feature visualization representative of it?

For every unit u (channel spatial mean, or a linear layer's output) the audit measures

* ``excess``  how far the FV's activation lies beyond the natural distribution:
              (a_FV − mean_nat) / (max_nat − mean_nat); 1 = as high as the most activating
              natural image. An FV usually exceeds the natural maximum a few times; a branch
              that never fires on natural data but dominates the FV (silent units) drives it
              far beyond that.
* ``jump``    the largest discontinuity of u's activation map (‖Δmap‖∞) along the pixel paths
              from u's top natural exemplar to its FV and to earlier states of the FV's
              optimisation (a gate may judge the final image natural but not the path there;
              :mod:`fvlab.check.interpolation`), divided by the natural range of one position
              of the map (max over images of the spatial max − min of the spatial min).
              Continuous networks give ≈ 0 (a ReLU network's response changes by slope ×
              interval width); a hard gate (a fooling circuit) keeps a finite jump however
              fine the bisection.
* ``active``  the fraction of natural images on which u is > 0 anywhere (spatial max > 0);
              ≈ 0 means the unit is (near) silent on natural data, so its FV shows something
              natural images never evoke.
* ``path``    path similarity of the FV with u's own top exemplars at the audited layer and
              averaged over the layers up to it, normalised as in :mod:`fvlab.check.paths`
              (1 = as similar as two exemplars, 0 = as similar as an exemplar and a random
              natural image). Reported, not scored: P1 found FVs of clean units near 0 in
              most layers, so a low value alone is not a sign of manipulation.

* ``gradient`` the gradient residual ρ ∈ [0, 1] of u's response along the paths from its top
              ``path_exemplars`` exemplars to its FV (:mod:`fvlab.check.gradient_path`): how much
              of the change of the function along the path its autograd gradient — the one the
              FV follows — does not account for. ≈ 0 for a network whose gradient is its true
              derivative; large behind any gate whose switch carries no gradient, hard or
              continuous (no discontinuity needed, no module inspected).
* ``valley``  the response landscape along the same paths: how far u's response r(t) dips
              below the lower of its two ends, (min(r(0), r(1)) − min_t r(t)) / (max_nat −
              mean_nat), the largest over the paths. A unit whose FV is the top of the landscape
              its natural exemplars climb gives ≈ 0; an FV planted in a bowl of its own far from
              the natural images (a gradient slingshot, push-up of a decoy) or reached through a
              gate that first switches the natural unit off sits behind a valley.
* ``procedure`` procedure consistency (:mod:`fvlab.check.consistency`; opt-in: with
              ``consistency_param="pixel"`` or ``"fft"``, NaN and unscored with the default
              ``"none"``): u is rendered a second time with that parameterization (seed + 1)
              and the two FVs compared, max(|ln(a_u(x_p)/a_u(x_d))|, angle between
              the layer's channel-mean vectors of the two); ≈ 0 when both procedures find the
              same thing, large when a manipulation tuned to one FV procedure does not hold for
              another (push-down / push-up). Needs no discontinuity and no extra module.
* ``hold``    exemplar hold (:mod:`fvlab.check.exemplar_hold`; ``hold_steps`` > 0, the
              default 64): the FV procedure is started from each of u's top ``path_exemplars``
              exemplars instead of grey, and hold = −ln(1 − max(0, mean_e r_e)) with r_e the
              pixel correlation of exemplar e with where its ascent is after ``hold_steps``
              updates. Clean units' ascents leave their exemplars; weight-only manipulations
              (slingshot, push-down / push-up) leave the exemplars on a plateau they hardly
              leave (an empirical finding on fmnist-cnn, docs/check.md).

Score = max over the parts excess / thresholds.excess, jump / thresholds.jump, ln(1 / active) /
ln(1 / thresholds.silent), gradient / thresholds.gradient, valley / thresholds.valley, procedure /
thresholds.procedure, hold / thresholds.hold; a unit is flagged when its score is >= 1, with the
reasons (``out_of_distribution``, ``gate``, ``silent``, ``gradient``, ``valley``, ``procedure``,
``hold``) that crossed their threshold. The silence part is 0 for a unit active on every
natural image and 1 at active = thresholds.silent (a ratio thresholds.silent / active would put
a floor under every unit's score that, once the threshold is calibrated near 1, hides the other
signals below it). Units are rendered in batches of ``batch_size`` units (one optimisation
each), so memory is bounded whatever the layer's width.

:func:`audit` runs the steps on a dataset; :func:`run_audit` is the job (``fvlab audit``):
natural images from the settings, :func:`audit`, and :meth:`AuditResult.save` (audit.csv,
audit.html, summary.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fvlab.check.consistency import Consistency, procedure_consistency
from fvlab.check.exemplar_hold import exemplar_hold
from fvlab.check.gradient_path import gradient_path
from fvlab.check.interpolation import PathResponse, response_path
from fvlab.check.paths import ExemplarPaths, exemplar_path_similarity
from fvlab.check.report import write_audit_html, write_csv
from fvlab.check.settings import AuditSettings, AuditThresholds
from fvlab.data.dataset import Dataset, fetch_images, head
from fvlab.errors import FvlabError
from fvlab.jobs import OutDir, SettingsError, finish
from fvlab.models.probe import check_units, forward_order
from fvlab.progress import progress_bar
from fvlab.report.summary import write_summary

if TYPE_CHECKING:
    from fvlab.engine.base import Engine
    from fvlab.models.zoo import LoadedModel

FLAGS = ("out_of_distribution", "gate", "silent", "gradient", "valley", "procedure", "hold")


@dataclass
class AuditResult:
    """One row per unit (dicts with the measures, score and flags) plus the settings."""

    model: str
    layer: str
    rows: list[dict]
    path_layers: list[str]
    settings: dict = field(default_factory=dict)
    fv_images: torch.Tensor | None = field(default=None, repr=False)
    exemplars: torch.Tensor | None = field(default=None, repr=False)

    @property
    def scores(self) -> np.ndarray:
        return np.array([row["score"] for row in self.rows])

    @property
    def flagged(self) -> list[int]:
        return [row["unit"] for row in self.rows if row["flags"]]

    def summary(self) -> dict:
        counts = {flag: sum(flag in row["flags"] for row in self.rows) for flag in FLAGS}
        return {
            "model": self.model,
            "layer": self.layer,
            "units": len(self.rows),
            "flagged": len(self.flagged),
            "flagged_fraction": len(self.flagged) / max(len(self.rows), 1),
            "flag_counts": counts,
            "flagged_units": self.flagged,
            "path_layers": self.path_layers,
            "settings": self.settings,
        }

    def save(self, out: Path) -> Path:
        """``audit.csv`` (one row per unit, the exemplar list last), ``audit.html`` (the table
        with each unit's FV and top exemplar) and ``summary.json`` into ``out``."""
        out = Path(out)
        columns = [k for k in self.rows[0] if k != "top_exemplars"] + ["top_exemplars"]
        write_csv(out / "audit.csv", [{k: row[k] for k in columns} for row in self.rows])
        write_audit_html(self, out / "audit.html")
        return write_summary(out, self.summary())


def _path_layers(model: LoadedModel, layer: str, path_layers: Sequence[str] | None) -> list[str]:
    if path_layers is not None:
        return list(path_layers)
    order = forward_order(model)
    return order[: order.index(layer) + 1] if layer in order else [*order, layer]


def silence(active: np.ndarray) -> np.ndarray:
    """ln(1 / active fraction): 0 for a unit > 0 on every natural image, → ∞ as it falls silent
    (active floored at 1e-12)."""
    return -np.log(np.clip(active, 1e-12, 1.0))


def score_parts(
    excess: np.ndarray,
    jump: np.ndarray,
    active: np.ndarray,
    thresholds: AuditThresholds,
    gradient: np.ndarray | None = None,
    valley: np.ndarray | None = None,
    procedure: np.ndarray | None = None,
    hold: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Each signal divided by its threshold (≥ 1 = flagged), per unit (module docstring)."""
    parts = {
        "out_of_distribution": excess / thresholds.excess,
        "gate": jump / thresholds.jump,
        "silent": silence(active) / silence(np.float64(thresholds.silent)),
    }
    if gradient is not None:
        parts["gradient"] = gradient / thresholds.gradient
    if valley is not None:
        parts["valley"] = valley / thresholds.valley
    if procedure is not None:
        parts["procedure"] = procedure / thresholds.procedure
    if hold is not None:
        parts["hold"] = hold / thresholds.hold
    return parts


def score_units(
    excess: np.ndarray,
    jump: np.ndarray,
    active: np.ndarray,
    thresholds: AuditThresholds,
    gradient: np.ndarray | None = None,
    valley: np.ndarray | None = None,
    procedure: np.ndarray | None = None,
    hold: np.ndarray | None = None,
) -> tuple[np.ndarray, list[list[str]]]:
    """Combined score and flag reasons per unit (see the module docstring)."""
    parts = score_parts(excess, jump, active, thresholds, gradient, valley, procedure, hold)
    score = np.max(np.stack(list(parts.values())), axis=0)
    flags = [[name for name, part in parts.items() if part[i] >= 1] for i in range(len(score))]
    return score, flags


@dataclass(frozen=True)
class _Run:
    """Where the audit's shards run (``engine``; None = this process) and are kept (``out``,
    ``out/shards/sweep`` and ``out/shards/render``; None = not kept), and whether intact
    shards of an earlier run are reused (``resume``)."""

    engine: Engine | None = None
    out: Path | None = None
    resume: bool = False


@dataclass
class _Natural:
    """Step 1: natural statistics of the audited units (U), from one sweep of the dataset."""

    n_images: int
    mean: np.ndarray  # (U,) mean over images of the spatial-mean activation
    std: np.ndarray  # (U,) its standard deviation
    min: np.ndarray  # (U,) its minimum
    max: np.ndarray  # (U,) its maximum
    active: np.ndarray  # (U,) fraction of images with spatial max > 0
    position_range: np.ndarray  # (U,) max of the spatial max − min of the spatial min
    exemplars: np.ndarray  # (U, k) global indices of the top-k images (spatial mean)
    sample: np.ndarray  # (n_reference,) global indices of a uniform sample of images


def _natural_statistics(
    model: LoadedModel,
    dataset: Dataset,
    settings: AuditSettings,
    unit_ids: list[int],
    show_progress: bool,
    run: _Run,
) -> _Natural:
    """Step 1: one streaming sweep (in dataset slices of ``shard_images`` images, shards of the
    engine): spatial mean (moments, top-k), spatial max and min."""
    from fvlab.activations.sharded import sharded_sweep

    layer = settings.layer
    natural = sharded_sweep(
        model,
        dataset,
        {layer: ["spatial_mean", "spatial_max", "spatial_min"]},
        shard_images=settings.shard_images,
        engine=run.engine,
        out=run.out,
        resume=run.resume,
        part="sweep",
        top_k=settings.top_k,
        sample=settings.n_reference,
        seed=settings.seed,
        batch_size=settings.batch_size,
        show_progress=show_progress,
    )
    mean_stats = natural[(layer, "spatial_mean")]
    max_stats = natural[(layer, "spatial_max")]
    min_stats = natural[(layer, "spatial_min")]
    ids = np.asarray(unit_ids)
    moments = mean_stats.moments
    return _Natural(
        n_images=natural.n_images,
        mean=moments.mean[ids],
        std=moments.std[ids],
        min=moments.min[ids],
        max=moments.max[ids],
        active=max_stats.moments.active_fraction[ids],
        # the natural range of one position of the unit's map: the scale of a jump of the map
        position_range=max_stats.moments.max[ids] - min_stats.moments.min[ids],
        exemplars=mean_stats.top.indices[ids],
        sample=mean_stats.sample.indices,
    )


@dataclass
class _Render:
    """Step 2: the FVs (U, C, H, W), the path endpoints (the final FVs, then earlier states of
    the same optimisation) with their update counts, and each FV's objective (U,)."""

    images: torch.Tensor
    endpoints: list[torch.Tensor]
    endpoint_steps: list[int]
    activation: np.ndarray


def _render(
    model: LoadedModel,
    settings: AuditSettings,
    unit_ids: list[int],
    show_progress: bool,
    run: _Run,
    other_procedure: bool = False,
) -> _Render:
    """Step 2: renders of ``batch_size`` units at a time (each chunk one optimisation and one
    shard of the engine), with snapshots and ReLU redirection. ``other_procedure``: the
    procedure-consistency render instead (parameterization ``settings.consistency_param``,
    seed + 1, no snapshots; :mod:`fvlab.check.consistency`)."""
    from fvlab.engine.jobs import shard_store
    from fvlab.optvis.job import render_shards, unit_chunks
    from fvlab.optvis.settings import RenderSettings

    steps = settings.steps
    snapshots = () if other_procedure else tuple(t for t in settings.snapshot_steps if t < steps)
    how = RenderSettings(
        steps=steps,
        seed=settings.seed + int(other_procedure),
        size=settings.size,
        param=settings.consistency_param if other_procedure else "fft",
        thresholds=snapshots + (steps,),
        relu_redirect_steps=settings.relu_redirect_steps,
    )
    chunks = unit_chunks(unit_ids, settings.batch_size)
    what = {"layer": settings.layer, "render": how.to_dict()}
    name, part = ("audit-render-other", "render-other") if other_procedure else (
        "audit-render", "render")  # fmt: skip
    store = shard_store(model, name, what, chunks, run.out, run.resume, part=part)
    label = f"{settings.consistency_param} " if other_procedure else ""
    parts = render_shards(
        model,
        [(settings.layer, c) for c in chunks],
        how,
        engine=run.engine,
        store=store,
        show_progress=show_progress,
        description=f"audit: rendering {len(unit_ids)} units {label}".rstrip(),
    )
    early = [t for t in parts[0]["snapshots"] if t < steps]
    images = torch.cat([p["images"] for p in parts])
    return _Render(
        images=images,
        endpoints=[images] + [torch.cat([p["snapshots"][t] for p in parts]) for t in early],
        endpoint_steps=[steps, *early],
        activation=torch.cat([p["objective"] for p in parts]).double().numpy(),
    )


def _fetch(
    dataset: Dataset, natural: _Natural, size: int, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The units' top exemplars (U, k, C, H, W) and the reference sample (R, C, H, W)."""
    index = natural.exemplars
    fetched = fetch_images(dataset, np.concatenate([index.ravel(), natural.sample]), batch_size)
    if fetched.shape[-1] != size:
        raise FvlabError(
            f"FVs are {size} px but natural images {fetched.shape[-1]} px; render at the "
            "natural images' size"
        )
    exemplars = fetched[: index.size].view(*index.shape, *fetched.shape[1:])
    return exemplars, fetched[index.size :]


def _jumps(
    model: LoadedModel,
    settings: AuditSettings,
    unit_ids: list[int],
    exemplars: torch.Tensor,
    endpoints: list[torch.Tensor],
) -> tuple[PathResponse, torch.Tensor]:
    """Step 3: response paths from each unit's top ``path_exemplars`` exemplars to every
    endpoint; returns the paths and their jumps (E·J, U), rows ordered exemplar rank e-major,
    then endpoint j."""
    # one path per (exemplar rank e, endpoint j, unit u), ordered e-major then j then u
    n_exemplars, n_ends = settings.path_exemplars, len(endpoints)
    starts = exemplars[:, :n_exemplars].transpose(0, 1)  # (E, U, C, H, W)
    response = response_path(
        model,
        settings.layer,
        unit_ids * (n_ends * n_exemplars),
        starts.repeat_interleave(n_ends, dim=0).flatten(0, 1),
        torch.cat(endpoints).repeat(n_exemplars, 1, 1, 1),
        batch_size=settings.batch_size,
    )
    return response, response.jump.view(n_exemplars * n_ends, len(unit_ids))


def _chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` of range(n)."""
    return [slice(first, min(first + size, n)) for first in range(0, n, size)]


def _chunked_jumps(
    model: LoadedModel,
    settings: AuditSettings,
    unit_ids: list[int],
    exemplars: torch.Tensor,
    endpoints: list[torch.Tensor],
) -> tuple[PathResponse, torch.Tensor]:
    """:func:`_jumps` over ``batch_size`` units at a time (the path images of one chunk only are
    alive at once), reassembled in the row order of :func:`_jumps` (e-major, endpoint, unit)."""
    parts = [
        _jumps(model, settings, unit_ids[c], exemplars[c], [end[c] for end in endpoints])
        for c in _chunks(len(unit_ids), settings.batch_size)
    ]
    if len(parts) == 1:
        return parts[0]
    rows = len(endpoints) * settings.path_exemplars

    def joined(values: list[torch.Tensor]) -> torch.Tensor:
        shaped = [v.reshape(rows, -1, *v.shape[1:]) for v in values]
        return torch.cat(shaped, dim=1).flatten(0, 1)

    first = parts[0][0]
    response = PathResponse(
        t=first.t,
        response=joined([p.response for p, _ in parts]),
        jump=joined([p.jump for p, _ in parts]),
        jump_at=joined([p.jump_at for p, _ in parts]),
        width=first.width,
    )
    return response, torch.cat([j for _, j in parts], dim=1)


def _gradient_residual(
    model: LoadedModel,
    settings: AuditSettings,
    unit_ids: list[int],
    exemplars: torch.Tensor,
    images: torch.Tensor,
) -> np.ndarray:
    """Step 3b: the gradient residual ρ (E, U) of the paths from each unit's top
    ``path_exemplars`` exemplars to its final FV (:mod:`fvlab.check.gradient_path`)."""
    n_exemplars = settings.path_exemplars
    starts = exemplars[:, :n_exemplars].transpose(0, 1).flatten(0, 1)  # e-major, then u
    result = gradient_path(
        model,
        settings.layer,
        torch.as_tensor(unit_ids * n_exemplars),
        starts,
        images.repeat(n_exemplars, 1, 1, 1),
        grid=settings.gradient_grid,
        batch_size=settings.batch_size,
    )
    return result.residual.view(n_exemplars, len(unit_ids)).numpy()


def audit(
    model: LoadedModel,
    dataset: Dataset | str,
    settings: AuditSettings | Dataset | None = None,
    *,
    show_progress: bool = True,
    engine: Engine | None = None,
    out: OutDir = None,
    resume: bool = False,
    **options,
) -> AuditResult:
    """Audit ``settings.units`` (default: all) of ``settings.layer`` against natural images
    from ``dataset`` (all of it: :func:`run_audit` applies ``settings.images``).

    Two call forms: ``audit(model, dataset, AuditSettings(...))`` or
    ``audit(model, layer, dataset, units=..., steps=..., **other AuditSettings fields)``.

    Steps: (1) one streaming sweep of ``dataset`` for per-unit statistics (spatial mean:
    moments and top-``top_k`` exemplars; spatial max: active fraction; a random sample of
    ``n_reference`` images); (2) one batched render of every unit (``steps`` updates at
    ``size`` px), keeping the images after ``snapshot_steps`` updates too, with lucid's
    ReLU-gradient redirection for the first ``relu_redirect_steps`` updates so that a unit
    dead on the start image still gets a visualization (and a hidden branch behind it a chance
    to show); (3) response paths from each of the unit's top ``path_exemplars`` exemplars to
    its final FV and to each snapshot, with bisected jumps (several exemplars: a gate may
    misroute the most extreme natural image, and a path whose two ends it routes alike has
    nothing to jump); (4) exemplar path similarity; (5) with ``hold_steps`` > 0, the
    exemplar hold (ascents from the top ``path_exemplars`` exemplars); (6) scores and flags.

    Steps 1 and 2 are sharded (dataset slices of ``shard_images`` images; chunks of
    ``batch_size`` units) and run on ``engine`` (default: this process); with ``out``, each
    finished shard is kept in ``out/shards/{sweep,render}`` and ``resume`` reuses the intact
    shards of an earlier run of the same audit (:mod:`fvlab.engine`). The result does not
    depend on the engine or on resuming."""
    if isinstance(dataset, str):  # audit(model, layer, dataset, units=..., steps=...)
        dataset, settings = settings, AuditSettings(layer=dataset, **options)
    elif options or not isinstance(settings, AuditSettings):
        raise FvlabError("call audit(model, dataset, AuditSettings(...)) or "
                         "audit(model, layer, dataset, units=..., steps=...)")  # fmt: skip
    layer = settings.layer
    unit_ids = check_units(model, layer, settings.units)
    if len(dataset) < max(settings.top_k, settings.n_reference):
        raise FvlabError(
            f"the dataset has {len(dataset)} images; the audit needs >= {settings.top_k}"
        )
    run = _Run(engine, None if out is None else Path(out), resume)
    if resume and out is None:
        raise SettingsError("resume", "needs the output folder of the earlier run (--out)")
    natural = _natural_statistics(model, dataset, settings, unit_ids, show_progress, run)
    fv = _render(model, settings, unit_ids, show_progress, run)
    other = None
    if settings.consistency_param != "none":
        other = _render(model, settings, unit_ids, show_progress, run, other_procedure=True)
    exemplars, reference = _fetch(dataset, natural, fv.images.shape[-1], settings.batch_size)
    hold = None
    with progress_bar("audit: paths", 3 + bool(settings.hold_steps), show_progress) as advance:
        response, jumps = _chunked_jumps(model, settings, unit_ids, exemplars, fv.endpoints)
        advance(1)
        gradient = np.concatenate(
            [
                _gradient_residual(model, settings, unit_ids[c], exemplars[c], fv.images[c])
                for c in _chunks(len(unit_ids), settings.batch_size)
            ],
            axis=1,
        )
        advance(1)
        layers = _path_layers(model, layer, settings.path_layers)
        paths = exemplar_path_similarity(
            model, fv.images, exemplars, reference, layers, metric=settings.metric,
            batch_size=settings.batch_size,
        )  # fmt: skip
        advance(1)
        if settings.hold_steps:
            hold = exemplar_hold(
                model, layer, unit_ids, exemplars[:, : settings.path_exemplars],
                steps=settings.hold_steps, seed=settings.seed, batch_size=settings.batch_size,
            ).hold  # fmt: skip
            advance(1)
    consistency = None
    if other is not None:
        consistency = procedure_consistency(
            model, layer, unit_ids, fv.images, other.images,
            np.maximum(natural.max - natural.mean, 1e-12), settings.batch_size,
        )  # fmt: skip
    rows = _rows(unit_ids, natural, fv, response, jumps, paths, gradient, settings.thresholds,
                 consistency, hold)  # fmt: skip
    used = {
        "steps": settings.steps,
        "top_k": settings.top_k,
        "n_reference": settings.n_reference,
        "metric": settings.metric,
        "seed": settings.seed,
        "natural_images": natural.n_images,
        "thresholds": settings.thresholds.to_dict(),
        "bisection_width": response.width,
        "path_exemplars": settings.path_exemplars,
        "relu_redirect_steps": settings.relu_redirect_steps,
        "path_endpoints": fv.endpoint_steps,
        "gradient_grid": settings.gradient_grid,
        "consistency_param": settings.consistency_param,
        "hold_steps": settings.hold_steps,
        "batch_size": settings.batch_size,
        "shard_images": settings.shard_images,
    }
    return AuditResult(model.name, layer, rows, layers, used, fv.images, exemplars[:, 0])


def _rows(
    unit_ids: list[int],
    natural: _Natural,
    fv: _Render,
    response: PathResponse,
    jumps: torch.Tensor,
    paths: ExemplarPaths,
    gradient: np.ndarray,
    thresholds: AuditThresholds,
    consistency: Consistency | None = None,
    hold: np.ndarray | None = None,
) -> list[dict]:
    """Step 6: the measures, score and flags of every unit (module docstring); without
    ``consistency`` (``consistency_param="none"``) the procedure columns, without ``hold``
    (``hold_steps=0``) the hold column are NaN and unscored."""
    n_units, n_ends = len(unit_ids), len(fv.endpoints)
    worst = jumps.argmax(0)
    pick = worst * n_units + torch.arange(n_units)
    spread = np.maximum(natural.max - natural.mean, 1e-12)
    excess = (fv.activation - natural.mean) / spread
    jump = jumps.amax(0).numpy() / np.maximum(natural.position_range, 1e-12)
    valley = _valley(response, n_units, n_ends) / spread
    residual = gradient.max(0)
    procedure = None if consistency is None else consistency.procedure
    score, flags = score_units(excess, jump, natural.active, thresholds, residual, valley,
                               procedure, hold)  # fmt: skip
    nan = np.full(n_units, np.nan)
    hold = nan if hold is None else hold
    ratio, angle = (nan, nan) if consistency is None else (consistency.ratio, consistency.angle)
    procedure = nan if procedure is None else procedure
    normalised = paths.normalised
    return [
        {
            "unit": unit,
            "score": float(score[i]),
            "flags": flags[i],
            "excess": float(excess[i]),
            "jump": float(jump[i]),
            "jump_at": float(response.jump_at[pick[i]]),
            "jump_endpoint_step": int(fv.endpoint_steps[int(worst[i]) % n_ends]),
            "jump_exemplar_rank": int(worst[i]) // n_ends + 1,
            "active_fraction": float(natural.active[i]),
            "gradient": float(residual[i]),
            "valley": float(valley[i]),
            "procedure": float(procedure[i]),
            "procedure_ratio": float(ratio[i]),
            "procedure_angle": float(angle[i]),
            "hold": float(hold[i]),
            "path_at_layer": float(normalised[-1, i]),
            "path_mean": float(np.nanmean(normalised[:, i])),
            "fv_activation": float(fv.activation[i]),
            "natural_mean": float(natural.mean[i]),
            "natural_std": float(natural.std[i]),
            "natural_min": float(natural.min[i]),
            "natural_max": float(natural.max[i]),
            "non_monotonicity": float(response.non_monotonicity[i]),  # to the final FV
            "top_exemplars": [int(j) for j in natural.exemplars[i]],
        }
        for i, unit in enumerate(unit_ids)
    ]


def _valley(response: PathResponse, n_units: int, n_ends: int) -> np.ndarray:
    """Per unit, the largest dip min(r(0), r(1)) − min_t r(t) of the paths from its exemplars to
    its final FV (endpoint 0; rows of ``response`` are e-major, then endpoint, then unit), in
    activation units (U,)."""
    r = response.response.view(-1, n_ends, n_units, response.response.shape[-1])[:, 0]
    ends = torch.minimum(r[..., 0], r[..., -1])
    dip = (ends - r.amin(-1)).clamp_min(0)
    return dip.amax(0).numpy()


def run_audit(
    model: LoadedModel,
    settings: AuditSettings,
    out: OutDir = None,
    *,
    show_progress: bool = True,
    engine: Engine | None = None,
    resume: bool = False,
) -> AuditResult:
    """The audit job (``fvlab audit``): the first ``settings.images`` natural images (all by
    default), :func:`audit` (its sweep and renders sharded on ``engine``, kept in
    ``out/shards``; ``resume`` reuses them), saved into ``out`` (:meth:`AuditResult.save`) when
    given."""
    dataset = head(settings.dataset(model), settings.images, "images")
    result = audit(
        model, dataset, settings, show_progress=show_progress, engine=engine, out=out,
        resume=resume,
    )  # fmt: skip
    return finish(result, out)


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """ROC AUC of scores: P(positive > negative) + ½ P(tie) (the Mann–Whitney U statistic
    divided by n_pos · n_neg)."""
    from scipy.stats import mannwhitneyu

    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if positive.size == 0 or negative.size == 0:
        raise FvlabError("ROC AUC needs at least one positive and one negative score")
    return float(mannwhitneyu(positive, negative).statistic / (positive.size * negative.size))
