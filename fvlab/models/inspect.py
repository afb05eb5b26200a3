"""Listing a model's layers with their output shapes for one input."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerInfo:
    """A named module, its type, its output shape(s) for one input, and how often it ran."""

    name: str
    type: str
    shape: tuple[int, ...] | None
    calls: int


@torch.no_grad()
def describe_layers(model, size: int | None = None) -> list[LayerInfo]:
    """Run one input of the spec's size (or ``size``) and record every module's output shape.

    Modules are listed in registration order; ``calls`` > 1 marks a module reused within one
    forward pass (its output cannot be captured unambiguously), 0 one that did not run.
    """
    module: nn.Module = model.module
    size = size or model.spec.size
    shapes: dict[str, list[tuple[int, ...]]] = {}
    handles = []

    def make_hook(name: str):
        def hook(mod: nn.Module, args, output) -> None:
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else ()
            shapes.setdefault(name, []).append(shape)

        return hook

    named = [(n, m) for n, m in module.named_modules() if n]
    try:
        for name, mod in named:
            handles.append(mod.register_forward_hook(make_hook(name)))
        image = torch.full((1, model.spec.channels, size, size), 0.5, device=model.device)
        model(image)
    finally:
        for handle in handles:
            handle.remove()
    return [
        LayerInfo(
            n, type(m).__name__, shapes[n][0] if n in shapes else None, len(shapes.get(n, []))
        )
        for n, m in named
    ]
