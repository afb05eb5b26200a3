"""Which modules count as the "layers" of a model, in forward order.

Rule (documented in docs/check.md): the *leaf* modules (modules without children) in the order
they run in one forward pass, found by running the model once on a grey image with a hook on
every leaf. Only calls made inside the root module's forward count (not modules run by the
root's own forward pre-hooks, such as a fooling circuit's detector of the input). Excluded:
modules that do not change their input at eval time (``Identity``, ``Dropout*``, ``Flatten``
— a reshape has exactly the similarities of its input), modules that ran more than once in the
pass (a reused module has no single output) and modules that did not run. For fmnist-cnn
this gives conv1, bn1, relu1, pool1, …, relu5, gap, fc.
"""

from __future__ import annotations

import torch
from torch import nn

from fvlab.errors import FvlabError
from fvlab.models.hooks import resolve_layers

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


def forward_order(loaded, size: int | None = None) -> list[str]:
    """Leaf modules of ``loaded`` (a LoadedModel) in forward order, per the module docstring."""
    module: nn.Module = loaded.module
    leaves = {
        name: m
        for name, m in module.named_modules()
        if name and not any(True for _ in m.children())
    }
    calls: list[str] = []
    started: list[bool] = []

    def record(name: str):
        def hook(_module: nn.Module, _args: tuple, _output: object) -> None:
            if started:
                calls.append(name)

        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in leaves.items()]
    # registered last, this pre-hook runs after any other pre-hook of the root: modules that
    # such hooks run (e.g. a fooling circuit's detector reading the input) are not layers
    handles.append(module.register_forward_pre_hook(lambda _m, _a: started.append(True)))
    size = size or loaded.spec.size
    try:
        with torch.no_grad():
            loaded(torch.full((1, loaded.spec.channels, size, size), 0.5, device=loaded.device))
    finally:
        for handle in handles:
            handle.remove()
    counts: dict[str, int] = {}
    for name in calls:
        counts[name] = counts.get(name, 0) + 1
    order = list(dict.fromkeys(calls))
    return [n for n in order if counts[n] == 1 and not isinstance(leaves[n], NO_OP_TYPES)]


def choose_layers(
    loaded, layers: str | list[str] | None = None, size: int | None = None
) -> list[str]:
    """``None``/"leaves" → :func:`forward_order`; a list or comma-separated names → those names
    (validated) in the order given, which should be the forward order."""
    if layers is None or layers == "leaves":
        return forward_order(loaded, size)
    names = [n.strip() for n in layers.split(",")] if isinstance(layers, str) else list(layers)
    names = [n for n in names if n]
    if not names:
        raise FvlabError("no layers given; pass 'leaves' or comma-separated layer names")
    resolve_layers(loaded.module, names)
    if len(set(names)) != len(names):
        raise FvlabError(f"layer names repeat in {names}; give each layer once")
    return names
