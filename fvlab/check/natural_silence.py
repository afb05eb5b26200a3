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
from typing import TYPE_CHECKING

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


def natural_silence(
    loaded: LoadedModel,
    layers: Sequence[str],
    dataset: Dataset,
    *,
    threshold: float = 0.0,
    max_fraction: float = 0.0,
    batch_size: int = 500,
    show_progress: bool = True,
) -> dict[str, LayerSilence]:
    """Stream ``dataset`` once; per layer, the natural maxima, active fractions and the
    silent units (see the module docstring)."""
    if not 0.0 <= max_fraction < 1.0:
        raise FvlabError(f"max_fraction must be in [0, 1), got {max_fraction}")
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise FvlabError("give at least one layer")
    resolve_layers(loaded.module, layers)
    counts: dict[str, torch.Tensor] = {}
    maxima: dict[str, torch.Tensor] = {}

    def count(indices: torch.Tensor, labels: torch.Tensor, reduced: dict) -> None:
        for layer, values in reduced.items():
            values = torch.as_tensor(values)
            hits, top = (values > threshold).sum(0), values.amax(0)
            if layer in counts:
                hits, top = counts[layer] + hits, torch.maximum(maxima[layer], top)
            counts[layer], maxima[layer] = hits, top

    result = sweep(
        loaded,
        dataset,
        layers,
        reduce="spatial_max",
        moments=False,
        batch_size=batch_size,
        consumer=count,
        show_progress=show_progress,
    )
    n = result.n_images
    if n == 0:
        raise FvlabError("the natural dataset is empty")
    report: dict[str, LayerSilence] = {}
    for layer in layers:
        fraction = counts[layer].double() / n
        silent = (fraction <= max_fraction).nonzero().flatten().tolist()
        report[layer] = LayerSilence(layer, maxima[layer].float(), fraction.float(), silent, n)
    return report


def render_silent(
    loaded: LoadedModel,
    report: dict[str, LayerSilence],
    *,
    steps: int = 256,
    max_units: int = 32,
    seed: int = 0,
    show_progress: bool = True,
) -> None:
    """Render the first ``max_units`` silent units of each layer (one batched optimisation per
    layer) and store their images and the activation the images reach (in place)."""
    import fvlab

    for layer, entry in report.items():
        units = entry.silent[:max_units]
        if not units:
            continue
        result = fvlab.render(
            loaded, layer, units, steps=steps, seed=seed, show_progress=show_progress
        )
        with torch.no_grad(), capture(loaded.module, [layer], detach=True) as cap:
            loaded(result.images)
            activation = cap[layer]
        index = torch.arange(len(units))
        chosen = activation[index, torch.as_tensor(units)]
        flat = chosen.reshape(len(units), -1)
        entry.fv_mean = flat.mean(1).cpu()
        entry.fv_max = flat.amax(1).cpu()
        entry.fv_images = result.images.detach().cpu()
        entry.rendered = units


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
) -> SilentCheckResult:
    """The silent-unit check (``fvlab check silent``): stream the natural images once
    (:func:`natural_silence`; layers default to :func:`relu_layers`), render the first
    ``max_render`` silent units of each layer (:func:`render_silent`); saved into ``out`` when
    given."""
    s = settings
    layers = list(s.layers) if s.layers else relu_layers(model)
    report = natural_silence(
        model, layers, s.dataset(model), threshold=s.threshold, max_fraction=s.max_fraction,
        batch_size=s.batch_size, show_progress=show_progress,
    )  # fmt: skip
    render_silent(
        model, report, steps=s.steps, max_units=s.max_render, seed=s.seed,
        show_progress=show_progress,
    )  # fmt: skip
    return finish(SilentCheckResult(model.name, report, s), out)
