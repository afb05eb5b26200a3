"""Probing a model: one forward pass of a grey image that records every module call.

:func:`probe` runs ``model`` once on a (1, C, S, S) image of value 0.5 with a forward hook on
every named module and returns, in call order, which module ran, the shape of its (first)
output, and whether the call happened inside the root module's forward (calls made by the
root's own forward pre-hooks — a fooling circuit's detector reading the input — are not).
Everything that asks "which layers run, in what order, with how many units?" reads a probe:

* :func:`layer_units` / :func:`check_units` — the number of units of a layer (its output's
  dimension 1: channels of a conv layer, features of a linear one) and unit-list validation;
* :func:`forward_order` — the model's *layers* in forward order (rule below);
* :func:`choose_layers` — "leaves" or a user's comma-separated names, validated.

Forward-order rule (documented in docs/check.md): the *leaf* modules (modules without
children) in the order they run inside the root's forward, excluding modules that do not
change their input at eval time (``Identity``, ``Dropout*``, ``Flatten`` — a reshape has
exactly the similarities of its input), modules that ran more than once in the pass (a reused
module has no single output) and modules that did not run. For fmnist-cnn this gives conv1,
bn1, relu1, pool1, …, relu5, gap, fc.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fvlab.errors import FvlabError, RepeatedModuleError
from fvlab.models.hooks import resolve_layers

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

NO_OP_TYPES: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
)


@dataclass(frozen=True)
class Call:
    """One module call of the probe pass: name, module, output shape, inside the root forward?"""

    name: str
    module: nn.Module
    shape: tuple[int, ...]
    in_forward: bool


@dataclass(frozen=True)
class Probe:
    """Every module call of one grey-image forward pass, in call order (see module docstring)."""

    calls: tuple[Call, ...]
    modules: dict[str, nn.Module]
    size: int

    def counts(self, in_forward_only: bool = False) -> dict[str, int]:
        """Calls per module name (names that never ran are absent)."""
        counts: dict[str, int] = {}
        for call in self.calls:
            if call.in_forward or not in_forward_only:
                counts[call.name] = counts.get(call.name, 0) + 1
        return counts

    def shape(self, name: str) -> tuple[int, ...]:
        """Output shape of module ``name`` (its first call); an error if it ran more than once
        or never (a reused module has no single output)."""
        shapes = [c.shape for c in self.calls if c.name == name]
        if not shapes:
            raise FvlabError(f"layer {name!r} did not run in a forward pass of the model")
        if len(shapes) > 1:
            raise RepeatedModuleError(
                f"module {name!r} ({type(self.modules[name]).__name__}) ran {len(shapes)} times "
                "in one forward pass, so it has no single output (the model reuses this module "
                "object); choose a module that runs once (e.g. the preceding BatchNorm)"
            )
        return shapes[0]

    def leaves(self) -> set[str]:
        """Names of the modules without children."""
        return {n for n, m in self.modules.items() if not any(True for _ in m.children())}


def _first_shape(output: Any) -> tuple[int, ...]:
    tensor = output[0] if isinstance(output, (tuple, list)) and output else output
    return tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else ()


@torch.no_grad()
def probe(model: LoadedModel, size: int | None = None) -> Probe:
    """Run ``model`` (a LoadedModel) once on a grey image and record every module call."""
    root: nn.Module = model.module
    modules = {name: m for name, m in root.named_modules() if name}
    size = size or model.spec.size
    calls: list[Call] = []
    started: list[bool] = []

    def record(name: str):
        def hook(module: nn.Module, _args: tuple, output: Any) -> None:
            calls.append(Call(name, module, _first_shape(output), bool(started)))

        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in modules.items()]
    # registered last, this pre-hook runs after any other pre-hook of the root: modules that
    # such hooks run (e.g. a fooling circuit's detector reading the input) are not layers
    handles.append(root.register_forward_pre_hook(lambda _m, _a: started.append(True)))
    try:
        model(torch.full((1, model.spec.channels, size, size), 0.5, device=model.device))
    finally:
        for handle in handles:
            handle.remove()
    return Probe(tuple(calls), modules, size)


def layer_units(model: LoadedModel, layer: str, size: int | None = None) -> int:
    """Number of units of ``layer``: dimension 1 of its output (channels or features)."""
    resolve_layers(model.module, [layer])
    shape = probe(model, size).shape(layer)
    if len(shape) < 2:
        raise FvlabError(f"layer {layer!r} has output shape {shape}; it has no unit dimension")
    return int(shape[1])


def check_units(
    model: LoadedModel,
    layer: str,
    units: Sequence[int] | None,
    size: int | None = None,
    *,
    parameter: str = "units",
) -> list[int]:
    """``units`` as a list of ints after checking each is a unit of ``layer``; None → all.

    The error names ``parameter``, the valid range and the offending values."""
    n = layer_units(model, layer, size)
    if units is None:
        return list(range(n))
    chosen = [int(u) for u in units]
    if not chosen:
        raise FvlabError(f"{parameter} is empty; give at least one unit of {layer!r} (0–{n - 1})")
    bad = [u for u in chosen if not 0 <= u < n]
    if bad:
        raise FvlabError(
            f"{parameter}: layer {layer!r} has {n} units (0–{n - 1}); out of range: {bad[:10]}"
        )
    return chosen


def forward_order(model: LoadedModel, size: int | None = None) -> list[str]:
    """Leaf modules of ``model`` (a LoadedModel) in forward order, per the module docstring."""
    result = probe(model, size)
    leaves = result.leaves()
    calls = [c.name for c in result.calls if c.in_forward and c.name in leaves]
    counts = result.counts(in_forward_only=True)
    order = list(dict.fromkeys(calls))
    return [n for n in order if counts[n] == 1 and not isinstance(result.modules[n], NO_OP_TYPES)]


def choose_layers(
    model: LoadedModel, layers: str | Sequence[str] | None = None, size: int | None = None
) -> list[str]:
    """``None``/"leaves" → :func:`forward_order`; a list or comma-separated names → those names
    (validated) in the order given, which should be the forward order."""
    if layers is None or layers == "leaves":
        return forward_order(model, size)
    names = [n.strip() for n in layers.split(",")] if isinstance(layers, str) else list(layers)
    names = [n for n in names if n]
    if not names:
        raise FvlabError("layers: none given; pass 'leaves' or comma-separated layer names")
    resolve_layers(model.module, names)
    if len(set(names)) != len(names):
        raise FvlabError(f"layers: names repeat in {names}; give each layer once")
    return names
