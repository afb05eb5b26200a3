"""Where the silent branch is added: the attach point after a conv layer.

``choose_attach(model, layer, attach)`` runs in named steps:

1. :func:`conv_layer` — ``layer`` must be an ``nn.Conv2d``;
2. :func:`calls_after` — one probe pass (:func:`fvlab.models.probe.probe`): the conv must run
   exactly once; the leaf modules that run after it, with their output shapes and call counts;
3. ``attach == "auto"`` → :func:`auto_attach`: conv → BatchNorm → ReLU gives that ReLU (the
   paper's post-ReLU); conv → BatchNorm gives the BatchNorm (pre-ReLU, e.g. when the ReLU module
   is reused, as torchvision ResNet's ``relu``); conv → ReLU gives that ReLU; else the conv
   itself. A candidate *fits* when it runs once and has the conv's output shape.
   A named module → :func:`named_attach`: it must exist, run after the conv, and fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from fvlab.errors import FvlabError, UnknownLayerError
from fvlab.models.hooks import resolve_layers
from fvlab.models.probe import Call, probe

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel


def conv_layer(model: LoadedModel, layer: str) -> nn.Conv2d:
    """The ``nn.Conv2d`` named ``layer``, or a clear error (unknown name, not a conv)."""
    module = resolve_layers(model.module, [layer])[layer]
    if not isinstance(module, nn.Conv2d):
        convs = [n for n, m in model.module.named_modules() if isinstance(m, nn.Conv2d)]
        raise FvlabError(
            f"layer {layer!r} is a {type(module).__name__}, not a Conv2d; silent units are built "
            f"on conv layers. Conv layers of {model.name}: {', '.join(convs[:12])}"
            + (f" … ({len(convs)} in all)" if len(convs) > 12 else "")
        )
    return module


@dataclass(frozen=True)
class ConvCalls:
    """The conv's output shape and the leaf-module calls after it, with every call count."""

    layer: str
    shape: tuple[int, ...]
    after: tuple[Call, ...]
    counts: dict[str, int]

    def fits(self, index: int) -> bool:
        """Call ``index`` of ``after`` runs once and has the conv's output shape."""
        call = self.after[index]
        return self.counts[call.name] == 1 and call.shape == self.shape

    def is_a(self, index: int, kind: type[nn.Module]) -> bool:
        """Call ``index`` exists, is a ``kind`` module, and fits."""
        return (
            index < len(self.after)
            and isinstance(self.after[index].module, kind)
            and (self.fits(index))
        )


def calls_after(model: LoadedModel, layer: str) -> ConvCalls:
    """Step 2: one probe pass; the conv ``layer`` must run exactly once."""
    result = probe(model)
    leaves = result.leaves() | {layer}
    calls = [c for c in result.calls if c.name in leaves]
    counts = result.counts()
    if counts.get(layer, 0) != 1:
        raise FvlabError(
            f"conv {layer!r} ran {counts.get(layer, 0)} times in one forward pass; silent units "
            "need a conv that runs exactly once"
        )
    position = next(i for i, c in enumerate(calls) if c.name == layer)
    return ConvCalls(layer, calls[position].shape, tuple(calls[position + 1 :]), counts)


def auto_attach(calls: ConvCalls) -> str:
    """Step 3, ``"auto"``: the rule of the module docstring."""
    if calls.is_a(0, nn.modules.batchnorm._BatchNorm):
        return calls.after[1].name if calls.is_a(1, nn.ReLU) else calls.after[0].name
    if calls.is_a(0, nn.ReLU):
        return calls.after[0].name
    return calls.layer


def named_attach(model: LoadedModel, calls: ConvCalls, attach: str) -> str:
    """Step 3, a named module: it must exist, run after the conv, once, with its shape."""
    if attach == calls.layer:
        return attach
    if attach not in dict(model.module.named_modules()):
        raise UnknownLayerError(f"attach layer {attach!r} is not a module of {model.name}")
    index = next((i for i, c in enumerate(calls.after) if c.name == attach), None)
    if index is None or not calls.fits(index):
        raise FvlabError(
            f"attach layer {attach!r} must run once, after {calls.layer!r}, with the conv's "
            f"output shape {calls.shape}; use 'auto', {calls.layer!r}, or e.g. its "
            "BatchNorm/ReLU"
        )
    return attach


def choose_attach(model: LoadedModel, layer: str, attach: str = "auto") -> str:
    """Name of the module whose output receives the branch (module docstring)."""
    conv_layer(model, layer)
    calls = calls_after(model, layer)
    return auto_attach(calls) if attach == "auto" else named_attach(model, calls, attach)
