"""Two small, self-contained manipulations used to validate audits (tests, benchmarks).

They imitate the two fooling methods of P1 with the simplest possible machinery, so an audit
can be checked without the full constructions of :mod:`fvlab.fool`:

* :func:`gate_units` — a hard gate on an image statistic: unit u is replaced by unit
  ``sources[u]`` of the same layer whenever the image's darkest pixel is brighter than the
  darkest pixel of every given natural image (every Fashion-MNIST image has a pure black
  pixel; a sigmoid-parameterised FV never has one). A stand-in for the classifier-gated
  circuit.
* :func:`silent_branch` — for unit u of a conv layer with filter w, a parallel conv on the same
  input with filter w_new ∝ w + mix·Δw (Δw random, orthogonal to w, ‖Δw‖ = ‖w‖; ‖w_new‖ =
  ``scale``·‖w‖, as in P1), averaged over positions, minus its maximum over the natural
  images, passed through a ReLU and added to every position of the unit's output after
  ``attach`` — never active on the natural images, dominant in an FV (which drives the
  averaged response past the natural maximum far more easily than a single position). A
  stand-in for silent units.

Both return a new LoadedModel (a deep copy with forward hooks); the original is untouched and
the layer names are unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fvlab.models.hooks import resolve_layers


def _copy(loaded, suffix: str):
    from fvlab.models.zoo import LoadedModel

    return LoadedModel(
        f"{loaded.name}+{suffix}",
        copy.deepcopy(loaded.module).eval(),
        loaded.spec,
        loaded.class_names,
        loaded.weights,
    )


def darkest_pixel(x: torch.Tensor) -> torch.Tensor:
    """Smallest value of each image over channels and positions (B,)."""
    return x.flatten(1).amin(1)


def gate_units(
    loaded, layer: str, units: Sequence[int], sources: Sequence[int], natural: torch.Tensor
):
    """Gate ``units`` of ``layer`` to show ``sources`` on non-natural inputs (module docstring).

    ``natural``: images in [0, 1] that set the gate threshold (it never opens on them)."""
    if len(units) != len(sources):
        raise ValueError("give one source unit per gated unit")
    fooled = _copy(loaded, "gate")
    with torch.no_grad():
        threshold = float(darkest_pixel(loaded.spec.preprocess(natural)).max())
    target = resolve_layers(fooled.module, [layer])[layer]
    unit_ids = torch.as_tensor(list(units))
    source_ids = torch.as_tensor(list(sources))
    state: dict[str, torch.Tensor] = {}

    def read_gate(module: nn.Module, args: tuple) -> None:
        state["open"] = darkest_pixel(args[0]) > threshold

    def swap(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        gate = state["open"].view(-1, *([1] * (output.ndim - 1)))
        swapped = output.clone()
        swapped[:, unit_ids] = torch.where(gate, output[:, source_ids], output[:, unit_ids])
        return swapped

    fooled.module.register_forward_pre_hook(read_gate)
    target.register_forward_hook(swap)
    return fooled


def silent_branch(
    loaded,
    conv: str,
    attach: str,
    units: Sequence[int],
    natural: torch.Tensor,
    *,
    scale: float = 100.0,
    mix: float = 3.0,
    seed: int = 0,
    batch_size: int = 500,
):
    """Add a silent branch to ``units`` of conv layer ``conv`` after module ``attach``."""
    fooled = _copy(loaded, "silent")
    modules = resolve_layers(fooled.module, [conv, attach])
    live: nn.Conv2d = modules[conv]
    unit_ids = torch.as_tensor(list(units))
    w = live.weight.detach()[unit_ids]  # (n, Cin, kh, kw)
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(w.shape, generator=generator, dtype=w.dtype)
    flat_w, flat_d = w.flatten(1), direction.flatten(1)
    w_norm = flat_w.norm(dim=1, keepdim=True)
    flat_d = flat_d - (flat_d * flat_w).sum(1, keepdim=True) / w_norm**2 * flat_w
    flat_d = flat_w + mix * flat_d / flat_d.norm(dim=1, keepdim=True) * w_norm
    flat_d = flat_d / flat_d.norm(dim=1, keepdim=True) * w_norm * scale
    w_new = flat_d.view_as(w)

    def branch_pre(x: torch.Tensor) -> torch.Tensor:
        response = F.conv2d(x, w_new, None, live.stride, live.padding, live.dilation)
        return response.mean(dim=(2, 3), keepdim=True)

    inputs: list[torch.Tensor] = []
    grab = live.register_forward_hook(lambda m, a, o: inputs.append(a[0].detach()))
    highest = torch.full((len(unit_ids),), -torch.inf)
    with torch.no_grad():
        for first in range(0, natural.shape[0], batch_size):
            inputs.clear()
            fooled(natural[first : first + batch_size])
            highest = torch.maximum(highest, branch_pre(inputs[0]).amax(dim=(0, 2, 3)))
    grab.remove()
    bias = -highest
    state: dict[str, torch.Tensor] = {}

    def compute(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        state["branch"] = torch.relu(branch_pre(args[0]) + bias.view(1, -1, 1, 1))

    def add(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        out[:, unit_ids] = out[:, unit_ids] + state["branch"]
        return out

    live.register_forward_hook(compute)
    modules[attach].register_forward_hook(add)
    return fooled
