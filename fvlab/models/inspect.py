"""Listing a model's layers with their output shapes for one input (``fvlab layers``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fvlab.models.probe import probe

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel


@dataclass(frozen=True)
class LayerInfo:
    """A named module, its type, its output shape(s) for one input, and how often it ran."""

    name: str
    type: str
    shape: tuple[int, ...] | None
    calls: int


def describe_layers(model: LoadedModel, size: int | None = None) -> list[LayerInfo]:
    """Every named module in registration order with the output shape of its first call in
    one grey-image pass (:func:`fvlab.models.probe.probe`); ``calls`` > 1 marks a module reused
    within one forward pass (its output cannot be captured unambiguously), 0 one that did not run.
    """
    result = probe(model, size)
    counts = result.counts()
    first: dict[str, tuple[int, ...]] = {}
    for call in result.calls:
        first.setdefault(call.name, call.shape)
    return [
        LayerInfo(name, type(module).__name__, first.get(name), counts.get(name, 0))
        for name, module in result.modules.items()
    ]
