"""The render job: feature visualizations of many units of one layer, saved as PNGs + summary.

:func:`run_render` renders ``units`` ``batch_size`` at a time, each chunk in ONE optimisation
(element b maximises unit b). Every chunk uses the job's seed: a unit's random start and
transforms are keyed by (seed, unit) (:mod:`fvlab.optvis.draws`), so its image does not depend
on the batch size or on which units share its chunk. Chunks are the job's shards
(:mod:`fvlab.engine`). With an output folder, each shard's PNGs are written as soon as the
shard finishes and its images are then read back from the shard file when needed, so memory
is bounded by one shard of ``batch_size`` units (:class:`RenderFrames`).
:meth:`RenderJobResult.save` writes ``unit_NNNN.png`` per unit,
``unit_NNNN_stepTTTT.png`` per unit and threshold, ``grid.png`` (all units, labelled with the
class name when the layer is the model's last) and ``summary.json``: per unit the final
objective — the spatial mean of the channel, or the logit — on the final untransformed image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fvlab.engine.jobs import shard_store
from fvlab.jobs import OutDir, Settings, SettingsError, at_least, finish, unit_tuple
from fvlab.optvis.settings import RenderSettings

if TYPE_CHECKING:
    import torch

    from fvlab.engine.base import Engine
    from fvlab.engine.store import ShardStore
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


class RenderFrames:
    """The images (N, C, H, W) and snapshots of a render job, held shard by shard: in memory
    (a job without ``out``) or in the shard files of ``out/shards``, read back one shard at a
    time (the last one read is kept), so a job's memory stays bounded by one shard whatever
    the number of units. ``stack`` loads every shard (memory: N images)."""

    def __init__(
        self,
        parts: list[dict[str, Any] | Callable[[], dict[str, Any]]],
        sizes: list[int],
        thresholds: list[int],
        shape: tuple[int, ...],
    ) -> None:
        self.parts, self.sizes, self.thresholds = parts, sizes, thresholds
        self.shape = (sum(sizes), *shape)  # (N, C, H, W)
        self._cached: tuple[int, dict[str, Any]] | None = None

    def _part(self, k: int) -> dict[str, Any]:
        part = self.parts[k]
        if isinstance(part, dict):
            return part
        if self._cached is None or self._cached[0] != k:
            self._cached = (k, part())
        return self._cached[1]

    @staticmethod
    def _pick(payload: dict[str, Any], step: int | None):
        return payload["images"] if step is None else payload["snapshots"][step]

    def image(self, i: int, step: int | None = None) -> torch.Tensor:
        """Image i (C, H, W) after ``step`` updates (None: the final image)."""
        for k, size in enumerate(self.sizes):
            if i < size:
                return self._pick(self._part(k), step)[i]
            i -= size
        raise IndexError("image index out of range")

    def stack(self, step: int | None = None) -> torch.Tensor:
        """All N images (N, C, H, W) after ``step`` updates (None: final)."""
        import torch

        return torch.cat([self._pick(self._part(k), step) for k in range(len(self.sizes))])

    def view(self, step: int | None = None) -> _FrameView:
        """A read-only (N, C, H, W) sequence of the images, read shard by shard."""
        return _FrameView(self, step)


@dataclass
class _FrameView:
    """``frames.image(i, step)`` as a sequence with a ``shape`` (what grid_image reads)."""

    frames: RenderFrames
    step: int | None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.frames.shape

    def __len__(self) -> int:
        return self.frames.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.frames.image(i, self.step)


@dataclass
class RenderJobResult:
    """The units' final objectives (N,), grid labels, what was rendered (``render`` is the JSON
    form of the render, as :attr:`fvlab.optvis.loop.RenderResult.settings`), and their images
    (:class:`RenderFrames`): ``images`` (N, C, H, W) in [0, 1] and ``snapshots``
    {threshold: (N, C, H, W)} are loaded when asked for (from the shard files when the job had
    an ``out``). ``written``: the folder that already holds the unit PNGs."""

    model: str
    layer: str
    units: list[int]
    objective: torch.Tensor
    labels: list[str]
    settings: RenderJobSettings
    render: dict[str, Any]
    frames: RenderFrames = field(repr=False)
    written: Path | None = None

    @property
    def images(self) -> torch.Tensor:
        return self.frames.stack()

    @property
    def snapshots(self) -> dict[int, torch.Tensor]:
        return {t: self.frames.stack(t) for t in self.frames.thresholds}

    def summary(self) -> dict[str, Any]:
        """model, layer, per unit {unit, objective, file}, and the render settings."""
        units = [
            {"unit": u, "objective": float(self.objective[i]), "file": _png(u)}
            for i, u in enumerate(self.units)
        ]
        return {"model": self.model, "layer": self.layer, "units": units, "settings": self.render}

    def save(self, out: Path) -> Path:
        """Write the unit PNGs, step snapshots (unless ``written`` to ``out`` already),
        grid.png and summary.json into ``out``."""
        from fvlab.report.images import save_grid
        from fvlab.report.summary import write_summary

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if self.written is None or self.written.resolve() != out.resolve():
            frames = self.frames
            for i, unit in enumerate(self.units):
                _save_unit(
                    out, unit, frames.image(i), {t: frames.image(i, t) for t in frames.thresholds}
                )
        upscale = max(1, GRID_MIN_PX // int(self.frames.shape[-1]))
        save_grid(self.frames.view(), out / "grid.png", labels=self.labels, upscale=upscale)
        return write_summary(out, self.summary())


def _save_unit(
    out: Path, unit: int, image: torch.Tensor, snapshots: dict[int, torch.Tensor]
) -> None:
    from fvlab.report.images import save_png

    save_png(image, out / _png(unit))
    for t, snap in snapshots.items():
        save_png(snap, out / _png(unit, t))


def _png(unit: int, step: int | None = None) -> str:
    return f"unit_{unit:04d}.png" if step is None else f"unit_{unit:04d}_step{step:04d}.png"


def _labels(model: LoadedModel, layer: str, units: list[int]) -> list[str]:
    """The unit index, and its class name when ``layer`` is the model's last (the logits)."""
    names = model.layer_names()
    if not model.class_names or not names or layer != names[-1]:
        return [str(u) for u in units]
    return [f"{u} {model.class_names[u]}" for u in units]


def render_chunk(model: LoadedModel, shard: tuple) -> dict[str, Any]:
    """One render shard: ``(layer, units, render settings, show_progress)`` →
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


def unit_chunks(units: Sequence[int], batch_size: int) -> list[tuple[int, ...]]:
    """Consecutive chunks of at most ``batch_size`` units: a render job's shards."""
    return [tuple(units[i : i + batch_size]) for i in range(0, len(units), batch_size)]


def render_shards(
    model: LoadedModel,
    shards: Sequence[tuple[str, Sequence[int]]],
    how: RenderSettings,
    *,
    engine: Engine | None = None,
    store: ShardStore | None = None,
    show_progress: bool = True,
    description: str = "rendering",
    on_result: Callable[[int, dict[str, Any]], Any] | None = None,
) -> list[Any]:
    """Render each shard ``(layer, units)`` in one optimisation with ``how`` (:func:`render_chunk`)
    through :func:`fvlab.engine.run.run_shards` (shard k is ``render-<k>`` in ``store``); returns
    the payloads (or what ``on_result`` makes of each), in shard order. A unit's image depends
    only on (seed, unit, settings), so any shard plan gives the same images."""
    from fvlab.engine.run import run_shards

    inner_progress = show_progress and getattr(engine, "name", "local") == "local"
    return run_shards(
        render_chunk,
        model,
        [(layer, tuple(units), how, inner_progress) for layer, units in shards],
        [f"render-{k:05d}" for k in range(len(shards))],
        engine=engine,
        store=store,
        show_progress=show_progress,
        description=description,
        on_result=on_result,
    )


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
    :mod:`fvlab.engine`); with ``out``, each finished shard is written to ``out/shards`` and
    its units' PNGs into ``out`` at once, and only its objectives stay in memory (the images
    are read back from the shard files when needed: memory is bounded by one shard);
    ``resume=True`` reuses the intact shards of an interrupted run of the same job.
    """
    import torch

    from fvlab.models.probe import check_units
    from fvlab.optvis import objectives as obj

    units = check_units(model, settings.layer, settings.units, settings.render.size)
    chunks = unit_chunks(units, settings.batch_size)
    store = shard_store(model, "render", settings, chunks, out, resume)
    names = [f"render-{k:05d}" for k in range(len(chunks))]
    shapes: list[tuple[int, ...]] = []

    def keep(k: int, payload: dict[str, Any]) -> dict[str, Any]:
        shapes.append(tuple(payload["images"].shape[1:]))
        if store is None:
            return payload
        snaps = payload["snapshots"]
        for i, unit in enumerate(chunks[k]):
            _save_unit(Path(out), unit, payload["images"][i], {t: s[i] for t, s in snaps.items()})
        kept = {key: payload[key] for key in ("objective", "render")}
        return {**kept, "thresholds": list(snaps)}

    results = render_shards(
        model,
        [(settings.layer, c) for c in chunks],
        settings.render,
        engine=engine,
        store=store,
        show_progress=show_progress,
        description=f"rendering {len(units)} units of {settings.layer}",
        on_result=keep,
    )
    record = {k: v for k, v in results[0]["render"].items() if k != "batch"}
    record.update(seed=settings.seed, objective=obj.units(settings.layer, units).name)
    if store is None:
        parts: list = results
        thresholds = list(results[0]["snapshots"])
    else:
        parts = [partial(_read_shard, store, name) for name in names]
        thresholds = results[0]["thresholds"]
    result = RenderJobResult(
        model=model.name,
        layer=settings.layer,
        units=units,
        objective=torch.cat([r["objective"] for r in results]),
        labels=_labels(model, settings.layer, units),
        settings=settings,
        render=record,
        frames=RenderFrames(parts, [len(c) for c in chunks], thresholds, shapes[0]),
        written=None if out is None else Path(out),
    )
    return finish(result, out)


def _read_shard(store: ShardStore, name: str) -> dict[str, Any]:
    from fvlab.errors import FvlabError

    payload = store.load(name)
    if payload is None:
        raise FvlabError(f"{store.folder / name}.pt is missing or altered; run the job again")
    return payload
