"""The render job: feature visualizations of many units of one layer, saved as PNGs + summary.

:func:`run_render` renders ``units`` ``batch_size`` at a time, each chunk in ONE optimisation
(element b maximises unit b; chunk k starting at position i of the unit list uses seed
``render.seed + i``). :meth:`RenderJobResult.save` writes ``unit_NNNN.png`` per unit,
``unit_NNNN_stepTTTT.png`` per unit and threshold, ``grid.png`` (all units, labelled with the
class name when the layer is the model's last) and ``summary.json``: per unit the final
objective — the spatial mean of the channel, or the logit — on the final untransformed image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fvlab.jobs import OutDir, Settings, SettingsError, at_least, finish, unit_tuple
from fvlab.optvis.settings import RenderSettings

if TYPE_CHECKING:
    import torch

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


def run_render(
    model: LoadedModel,
    settings: RenderJobSettings,
    out: OutDir = None,
    *,
    show_progress: bool = True,
) -> RenderJobResult:
    """Render every unit of ``settings`` (see the module docstring); save into ``out`` if given."""
    import torch

    from fvlab.models.probe import check_units
    from fvlab.optvis import objectives as obj
    from fvlab.optvis.api import render

    units = check_units(model, settings.layer, settings.units, settings.render.size)
    results = []
    for first in range(0, len(units), settings.batch_size):
        chunk = units[first : first + settings.batch_size]
        chunk_settings = settings.render.replace(seed=settings.seed + first)
        results.append(
            render(
                model, settings.layer, chunk, settings=chunk_settings, show_progress=show_progress
            )
        )
    record = {k: v for k, v in results[0].settings.items() if k != "batch"}
    record.update(seed=settings.seed, objective=obj.units(settings.layer, units).name)
    result = RenderJobResult(
        model=model.name,
        layer=settings.layer,
        units=units,
        images=torch.cat([r.images for r in results]),
        objective=torch.cat([r.objective for r in results]),
        snapshots={t: torch.cat([r.snapshots[t] for r in results]) for t in results[0].snapshots},
        labels=_labels(model, settings.layer, units),
        settings=settings,
        render=record,
    )
    return finish(result, out)
