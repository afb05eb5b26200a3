"""The render job: feature visualizations of many units of one layer, saved as PNGs + summary.

:func:`run_render` renders ``units`` ``batch_size`` at a time, each chunk in ONE optimisation
(element b maximises unit b). Every chunk uses the job's seed: a unit's random start and
transforms are keyed by (seed, unit) (:mod:`fvlab.optvis.draws`), so its image does not depend
on the batch size or on which units share its chunk. Chunks are the job's shards
(:mod:`fvlab.engine`). :meth:`RenderJobResult.save` writes ``unit_NNNN.png`` per unit,
``unit_NNNN_stepTTTT.png`` per unit and threshold, ``grid.png`` (all units, labelled with the
class name when the layer is the model's last) and ``summary.json``: per unit the final
objective — the spatial mean of the channel, or the logit — on the final untransformed image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fvlab.engine.jobs import shard_store
from fvlab.jobs import OutDir, Settings, SettingsError, at_least, finish, unit_tuple
from fvlab.optvis.settings import RenderSettings

if TYPE_CHECKING:
    import torch

    from fvlab.engine.base import Engine
    from fvlab.models.zoo import LoadedModel

#: grid.png shows each image at least this many px wide (integer upscale of small images)
GRID_MIN_PX = 112


@dataclass(frozen=True)
class RenderJobSettings(Settings):
    """``layer``; ``units`` (None → every unit of the layer); ``batch_size`` units per
    optimisation; ``render`` how each chunk is rendered (its ``seed`` is the job's seed)."""

    layer: str
    units: tuple[int, ...] | None = (0,)
    batch_size: int = 64
    render: RenderSettings = field(default_factory=RenderSettings)

    def __post_init__(self) -> None:
        self.normalise("units", unit_tuple("units", self.units))
        super().__post_init__()

    def validate(self) -> None:
        if not isinstance(self.layer, str) or not self.layer:
            raise SettingsError("layer", "give a layer name (see `fvlab layers`)")
        at_least("batch_size", self.batch_size, 1)
        if not isinstance(self.render, RenderSettings):
            raise SettingsError("render", f"must be a RenderSettings, not {type(self.render)}")

    @property
    def seed(self) -> int:
        """The job's seed (``render.seed``)."""
        return self.render.seed


@dataclass
class RenderJobResult:
    """Images (N, C, H, W) in [0, 1] of the N units, their final objectives (N,), snapshots
    {threshold: (N, C, H, W)}, grid labels, and what was rendered (``render`` is the JSON form
    of the render, as :attr:`fvlab.optvis.loop.RenderResult.settings`)."""

    model: str
    layer: str
    units: list[int]
    images: torch.Tensor
    objective: torch.Tensor
    snapshots: dict[int, torch.Tensor]
    labels: list[str]
    settings: RenderJobSettings
    render: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """model, layer, per unit {unit, objective, file}, and the render settings."""
        units = [
            {"unit": u, "objective": float(self.objective[i]), "file": _png(u)}
            for i, u in enumerate(self.units)
        ]
        return {"model": self.model, "layer": self.layer, "units": units, "settings": self.render}

    def save(self, out: Path) -> Path:
        """Write the unit PNGs, step snapshots, grid.png and summary.json into ``out``."""
        from fvlab.report.images import save_grid, save_png
        from fvlab.report.summary import write_summary

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for i, unit in enumerate(self.units):
            save_png(self.images[i], out / _png(unit))
            for t, snap in self.snapshots.items():
                save_png(snap[i], out / _png(unit, t))
        upscale = max(1, GRID_MIN_PX // int(self.images.shape[-1]))
        save_grid(self.images, out / "grid.png", labels=self.labels, upscale=upscale)
        return write_summary(out, self.summary())


def _png(unit: int, step: int | None = None) -> str:
    return f"unit_{unit:04d}.png" if step is None else f"unit_{unit:04d}_step{step:04d}.png"


def _labels(model: LoadedModel, layer: str, units: list[int]) -> list[str]:
    """The unit index, and its class name when ``layer`` is the model's last (the logits)."""
    names = model.layer_names()
    if not model.class_names or not names or layer != names[-1]:
        return [str(u) for u in units]
    return [f"{u} {model.class_names[u]}" for u in units]


def render_chunk(model: LoadedModel, shard: tuple) -> dict[str, Any]:
    """One shard of the render job: ``(layer, units, render settings, show_progress)`` →
    {images, objective, snapshots {threshold: images}, render (JSON form)} (CPU tensors)."""
    from fvlab.optvis.api import render

    layer, units, how, show_progress = shard
    result = render(model, layer, list(units), settings=how, show_progress=show_progress)
    return {
        "images": result.images,
        "objective": result.objective,
        "snapshots": dict(result.snapshots),
        "render": result.settings,
    }


def run_render(
    model: LoadedModel,
    settings: RenderJobSettings,
    out: OutDir = None,
    *,
    show_progress: bool = True,
    engine: Engine | None = None,
    resume: bool = False,
) -> RenderJobResult:
    """Render every unit of ``settings`` (see the module docstring); save into ``out`` if given.

    Each chunk of ``batch_size`` units is a shard run by ``engine`` (default: this process,
    :mod:`fvlab.engine`); with ``out``, each finished shard is written to ``out/shards`` at once,
    and ``resume=True`` reuses the intact shards of an interrupted run of the same job.
    """
    import torch

    from fvlab.engine.run import run_shards
    from fvlab.models.probe import check_units
    from fvlab.optvis import objectives as obj

    units = check_units(model, settings.layer, settings.units, settings.render.size)
    chunks = [units[i : i + settings.batch_size] for i in range(0, len(units), settings.batch_size)]
    inner_progress = show_progress and getattr(engine, "name", "local") == "local"
    results = run_shards(
        render_chunk,
        model,
        [(settings.layer, tuple(c), settings.render, inner_progress) for c in chunks],
        [f"render-{k:05d}" for k in range(len(chunks))],
        engine=engine,
        store=shard_store(model, "render", settings, chunks, out, resume),
        show_progress=show_progress,
        description=f"rendering {len(units)} units of {settings.layer}",
    )
    record = {k: v for k, v in results[0]["render"].items() if k != "batch"}
    record.update(seed=settings.seed, objective=obj.units(settings.layer, units).name)
    result = RenderJobResult(
        model=model.name,
        layer=settings.layer,
        units=units,
        images=torch.cat([r["images"] for r in results]),
        objective=torch.cat([r["objective"] for r in results]),
        snapshots={
            t: torch.cat([r["snapshots"][t] for r in results]) for t in results[0]["snapshots"]
        },
        labels=_labels(model, settings.layer, units),
        settings=settings,
        render=record,
    )
    return finish(result, out)
