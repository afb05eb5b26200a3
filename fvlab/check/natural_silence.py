"""Naturally silent units: units of an unmodified model that (almost) never fire on natural data.

A unit (channel) of a layer *fires* on an image when its largest activation over the spatial
positions exceeds ``threshold`` (a linear layer's output is its own maximum). Over a natural
dataset, the unit's *active fraction* is the share of images on which it fires; it is
**silent** when that fraction is at most ``max_fraction`` (0 = never fires). Such a unit still
has a feature visualization — often a normal-looking one — although no natural image ever
drives it: the visualization then describes behaviour the unit never shows on real data
(Geirhos et al. 2024 observed silent units in unmodified networks). :func:`render_silent`
renders them and reports the activation their visualization reaches (spatial mean — the
rendered objective — and spatial maximum), next to the natural maximum.

One streaming pass (:func:`fvlab.activations.sweep.sweep`, spatial maxima) covers every layer.
:func:`run_silent_check` is the job (``fvlab check silent``): :func:`natural_silence`, then
:func:`render_silent`; its :class:`SilentCheckResult` saves ``fv_<layer>.png`` per layer with
rendered units and ``summary.json``. (Not to be confused with :mod:`fvlab.fool.silent`, which
*builds* silent units into a model.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fvlab.activations.sweep import sweep
from fvlab.check.settings import SilentCheckSettings
from fvlab.data.dataset import Dataset
from fvlab.errors import FvlabError
from fvlab.jobs import OutDir, finish
from fvlab.models.hooks import capture, resolve_layers
from fvlab.models.probe import forward_order
from fvlab.report.images import save_grid
from fvlab.report.summary import write_summary

if TYPE_CHECKING:
    from fvlab.engine.base import Engine
    from fvlab.engine.store import ShardStore
    from fvlab.models.zoo import LoadedModel


@dataclass
class LayerSilence:
    """Per unit of one layer: natural maximum, active fraction; the silent units."""

    layer: str
    natural_max: torch.Tensor
    active_fraction: torch.Tensor
    silent: list[int]
    n_images: int
    fv_mean: torch.Tensor | None = None
    fv_max: torch.Tensor | None = None
    fv_images: torch.Tensor | None = None
    rendered: list[int] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        return int(self.natural_max.numel())

    @property
    def png(self) -> str | None:
        """File name of the rendered units' grid (None when none was rendered)."""
        return None if self.fv_images is None else f"fv_{self.layer.replace('/', '_')}.png"

    def summary(self) -> dict:
        """Counts and, per silent unit, its natural maximum and active fraction (and, if it
        was rendered, the spatial mean and max its visualization reaches)."""
        units = []
        for position, unit in enumerate(self.silent):
            row = {
                "unit": unit,
                "natural_max": float(self.natural_max[unit]),
                "active_fraction": float(self.active_fraction[unit]),
            }
            if position < len(self.rendered):
                row["fv_mean"] = float(self.fv_mean[position])
                row["fv_max"] = float(self.fv_max[position])
            units.append(row)
        return {
            "n_units": self.n_units,
            "n_silent": len(self.silent),
            "silent_units": units,
            "fv_png": self.png,
        }


def relu_layers(loaded: LoadedModel) -> list[str]:
    """The model's ``nn.ReLU`` modules that run once per forward pass, in forward order."""
    modules = dict(loaded.module.named_modules())
    names = [n for n in forward_order(loaded) if isinstance(modules[n], nn.ReLU)]
    if not names:
        raise FvlabError(
            f"{loaded.name} has no ReLU module that runs once per forward pass (a reused ReLU, "
            "as in torchvision ResNets, has no single output); name the layers, e.g. "
            "layer4.1.bn2"
        )
    return names


def silence_shard(loaded: LoadedModel, shard: tuple) -> dict[str, Any]:
    """One sweep shard: ``(dataset slice, layers, threshold, batch_size)`` → {"images": n,
    "hits": {layer: (U,) count of images with spatial max > threshold}, "max": {layer: (U,)
    largest spatial max}} (counts are integers and maxima exact, so shards merge exactly)."""
    dataset, layers, threshold, batch_size = shard
    hits: dict[str, torch.Tensor] = {}
    maxima: dict[str, torch.Tensor] = {}

    def count(indices: torch.Tensor, labels: torch.Tensor, reduced: dict) -> None:
        for layer, values in reduced.items():
            values = torch.as_tensor(values)
            more, top = (values > threshold).sum(0), values.amax(0)
            if layer in hits:
                more, top = hits[layer] + more, torch.maximum(maxima[layer], top)
            hits[layer], maxima[layer] = more, top

    result = sweep(
        loaded, dataset, layers, reduce="spatial_max", moments=False, batch_size=batch_size,
        consumer=count, show_progress=False,
    )  # fmt: skip
    return {"images": result.n_images, "hits": hits, "max": maxima}


def natural_silence(
    loaded: LoadedModel,
    layers: Sequence[str],
    dataset: Dataset,
    *,
    threshold: float = 0.0,
    max_fraction: float = 0.0,
    batch_size: int = 500,
    shard_images: int = 5000,
    engine: Engine | None = None,
    store: ShardStore | None = None,
    show_progress: bool = True,
) -> dict[str, LayerSilence]:
    """Stream ``dataset`` once — in slices of ``shard_images`` images (rounded up to whole
    batches), each a shard run by ``engine`` (default: this process) and kept in ``store`` —
    and, per layer, give the natural maxima, active fractions and the silent units (see the
    module docstring). Counts and maxima merge exactly: the result does not depend on the
    shard plan or the engine."""
    from fvlab.activations.sharded import slice_plan
    from fvlab.engine.run import run_shards

    if not 0.0 <= max_fraction < 1.0:
        raise FvlabError(f"max_fraction must be in [0, 1), got {max_fraction}")
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise FvlabError("give at least one layer")
    resolve_layers(loaded.module, layers)
    plan = slice_plan(len(dataset), shard_images, batch_size)
    shards = [(dataset.slice(a, b), layers, threshold, batch_size) for a, b in plan]
    parts = run_shards(
        silence_shard, loaded, shards, [f"sweep-{k:05d}" for k in range(len(shards))],
        engine=engine, store=store, show_progress=show_progress,
        description=f"sweeping {len(dataset)} images",
    )  # fmt: skip
    n = sum(p["images"] for p in parts)
    if n == 0:
        raise FvlabError("the natural dataset is empty")
    report: dict[str, LayerSilence] = {}
    for layer in layers:
        counts = torch.stack([p["hits"][layer] for p in parts]).sum(0)
        maxima = torch.stack([p["max"][layer] for p in parts]).amax(0)
        fraction = counts.double() / n
        silent = (fraction <= max_fraction).nonzero().flatten().tolist()
        report[layer] = LayerSilence(layer, maxima.float(), fraction.float(), silent, n)
    return report


def render_silent(
    loaded: LoadedModel,
    report: dict[str, LayerSilence],
    *,
    steps: int = 256,
    max_units: int = 32,
    seed: int = 0,
    batch_size: int = 500,
    engine: Engine | None = None,
    store: ShardStore | None = None,
    show_progress: bool = True,
) -> None:
    """Render the first ``max_units`` silent units of each layer — ``batch_size`` units per
    optimisation, each chunk a shard run by ``engine`` and kept in ``store`` — and store their
    images and the activation the images reach (in place). A unit's image depends only on
    (seed, unit, settings), not on its chunk."""
    from fvlab.optvis.job import render_shards, unit_chunks
    from fvlab.optvis.settings import RenderSettings

    shards = [
        (layer, chunk)
        for layer, entry in report.items()
        for chunk in unit_chunks(entry.silent[:max_units], batch_size)
    ]
    if not shards:
        return
    measured: dict[str, list[dict[str, torch.Tensor]]] = {}

    def measure(k: int, payload: dict[str, Any]) -> dict[str, torch.Tensor]:
        layer, units = shards[k]
        with torch.no_grad(), capture(loaded.module, [layer], detach=True) as cap:
            loaded(payload["images"].to(loaded.device))
            activation = cap[layer]
        chosen = activation[torch.arange(len(units)), torch.as_tensor(units)]
        flat = chosen.reshape(len(units), -1).cpu()
        return {"images": payload["images"], "mean": flat.mean(1), "max": flat.amax(1)}

    parts = render_shards(
        loaded, shards, RenderSettings(steps=steps, seed=seed), engine=engine, store=store,
        show_progress=show_progress, description="rendering silent units", on_result=measure,
    )  # fmt: skip
    for (layer, units), part in zip(shards, parts, strict=True):
        measured.setdefault(layer, []).append(part)
        report[layer].rendered = [*report[layer].rendered, *units]
    for layer, chunks in measured.items():
        entry = report[layer]
        entry.fv_mean = torch.cat([c["mean"] for c in chunks])
        entry.fv_max = torch.cat([c["max"] for c in chunks])
        entry.fv_images = torch.cat([c["images"] for c in chunks]).detach().cpu()


@dataclass
class SilentCheckResult:
    """The silent units of every checked layer (in order) and the settings of the check."""

    model: str
    layers: dict[str, LayerSilence]
    settings: SilentCheckSettings

    @property
    def n_images(self) -> int:
        return next(iter(self.layers.values())).n_images

    def summary(self) -> dict:
        """Settings, per-layer counts and, per layer, :meth:`LayerSilence.summary`."""
        s = self.settings
        layers = {name: entry.summary() for name, entry in self.layers.items()}
        return {
            "model": self.model,
            "split": s.split,
            "n_images": self.n_images,
            "threshold": s.threshold,
            "max_fraction": s.max_fraction,
            "render": {"steps": s.steps, "seed": s.seed, "max_units_per_layer": s.max_render},
            "counts": {name: layer["n_silent"] for name, layer in layers.items()},
            "layers": layers,
        }

    def save(self, out: Path) -> Path:
        """``fv_<layer>.png`` (the rendered silent units, labelled) for every layer with rendered
        units, and ``summary.json``, into ``out``."""
        out = Path(out)
        for entry in self.layers.values():
            if entry.fv_images is not None:
                save_grid(
                    entry.fv_images,
                    out / entry.png,
                    labels=[str(u) for u in entry.rendered],
                    upscale=max(1, 112 // entry.fv_images.shape[-1]),
                )
        return write_summary(out, self.summary())


def run_silent_check(
    model: LoadedModel,
    settings: SilentCheckSettings,
    out: OutDir = None,
    *,
    show_progress: bool = True,
    engine: Engine | None = None,
    resume: bool = False,
) -> SilentCheckResult:
    """The silent-unit check (``fvlab check silent``): stream the natural images once
    (:func:`natural_silence`; layers default to :func:`relu_layers`), render the first
    ``max_render`` silent units of each layer (:func:`render_silent`); saved into ``out`` when
    given. The sweep's slices and the render chunks are shards run by ``engine`` (default: this
    process); with ``out`` each is kept in ``out/shards/{sweep,render}`` as it finishes and
    ``resume`` reuses the intact shards of an earlier run of the same check."""
    from fvlab.engine.jobs import shard_store

    s = settings
    layers = list(s.layers) if s.layers else relu_layers(model)
    dataset = s.dataset(model)
    what = {"check": s.to_dict(), "layers": layers, "dataset": repr(dataset)}
    plan = [len(dataset), s.shard_images, s.batch_size]
    sweep_store = shard_store(model, "silent-sweep", what, plan, out, resume, part="sweep")
    report = natural_silence(
        model, layers, dataset, threshold=s.threshold, max_fraction=s.max_fraction,
        batch_size=s.batch_size, shard_images=s.shard_images, engine=engine, store=sweep_store,
        show_progress=show_progress,
    )  # fmt: skip
    rendered = {layer: entry.silent[: s.max_render] for layer, entry in report.items()}
    render_store = shard_store(
        model, "silent-render", what, list(rendered.items()), out, resume, part="render"
    )
    render_silent(
        model, report, steps=s.steps, max_units=s.max_render, seed=s.seed,
        batch_size=s.batch_size, engine=engine, store=render_store, show_progress=show_progress,
    )  # fmt: skip
    return finish(SilentCheckResult(model.name, report, s), out)
