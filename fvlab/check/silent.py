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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from fvlab.activations.sweep import sweep
from fvlab.errors import FvlabError
from fvlab.models.hooks import capture, resolve_layers
from fvlab.models.probe import forward_order


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


def relu_layers(loaded) -> list[str]:
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
    loaded,
    layers: Sequence[str],
    dataset,
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
    loaded,
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
