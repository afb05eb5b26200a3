"""Silent units: orthogonal filters that never fire on natural data (Geirhos et al. 2024).

For each chosen unit i of a conv layer with filter w_i, a parallel "fooling" conv reads the
same input x as the live conv (same padding, stride and padding rule — a copy of the live
module) with filter w_new,i (:mod:`fvlab.fool.silent.filters`: the target direction,
orthogonalised against w_i, mixed in with λ and scaled by the weight factor) and bias

    b_new,i = −( max R_i + margin · (max R_i − mean R_i) ),   R_i = w_new,i ∗ x,

max and mean over every natural image and every spatial position (one streaming pass,
:mod:`fvlab.fool.silent.responses`). At margin 0 this is the paper's b − max(w_new ∗ x + b). The
branch output ReLU(w_new,i ∗ x + b_new,i) is added to channel i of the *attach* module's
output. On the natural data the branch is exactly 0 everywhere, so every output is bit-for-bit
the original; an activation-maximising input drives w_new ∗ x far above the natural maximum,
and the weight factor (100) lets the branch dominate the unit's visualization.

Where the branch is added (``attach``): ``"auto"`` follows the forward order after the conv —
conv → BatchNorm → ReLU adds after that ReLU (as the paper: post-ReLU); a ReLU right after the
conv (InceptionV1's ``mixed4a_3x3``) likewise; if the ReLU module is reused within the forward
(torchvision ResNet's ``relu``), the BatchNorm's output (pre-ReLU: the branch then also passes
the block's ReLU, which leaves a non-negative addition unchanged where it dominates); with
neither, the conv's own output. Any module running once with the conv's output shape can be
named instead (:mod:`fvlab.fool.silent.attach`). The model's layer names stay unchanged: the
branch is a child module ``fvlab_silent`` (``.conv`` → ``.pool`` = the branch pre-activation
→ ``.relu`` = the branch output, all capturable) wired in with two forward hooks
(:mod:`fvlab.fool.install`).

``pooling='mean'`` is fvlab's variant for models whose visualizations stay within the natural
activation range per position (fmnist-cnn): the branch reads each image's spatial mean
response, and max and mean in the bias rule run over images (docs/fool.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from fvlab.errors import FvlabError
from fvlab.fool.install import attach_child, restore_base
from fvlab.fool.silent.attach import conv_layer
from fvlab.fool.silent.responses import parallel_conv
from fvlab.models.hooks import layer_names, resolve_layers

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

#: name of the branch's child module in the fooled model
CHILD = "fvlab_silent"
POOLINGS: tuple[str, ...] = ("none", "mean")


class SilentUnits(nn.Module):
    """The parallel branch ``conv`` (n filters) → ``pool`` → ``relu``, added to channels
    ``units``. ``pooling='none'``: per position (the paper); ``'mean'``: the spatial mean of
    the response per image, broadcast over the positions."""

    def __init__(
        self,
        branch: nn.Conv2d,
        units: Sequence[int],
        pooling: str = "none",
        same_module: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise FvlabError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
        self.conv = branch
        self.pooling = pooling
        self.pool = nn.Identity() if pooling == "none" else nn.AdaptiveAvgPool2d(1)
        self.relu = nn.ReLU()
        self.register_buffer("units", torch.as_tensor(list(units), dtype=torch.long))
        self.same_module = same_module
        self._pending: torch.Tensor | None = None

    def read_input(self, module: nn.Module, args: tuple, output: torch.Tensor):
        """Forward hook on the live conv: compute the branch from the conv's input."""
        branch = self.relu(self.pool(self.conv(args[0])))
        if self.same_module:
            return self.add(output, branch)
        self._pending = branch
        return None

    def add_to_output(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        """Forward hook on the attach module: add the pending branch to the chosen channels."""
        branch, self._pending = self._pending, None
        if branch is None:
            raise RuntimeError("the silent-unit branch was not computed before its attach layer")
        return self.add(output, branch)

    def add(self, output: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """output with ``branch`` added to channels ``units`` (out of place; + 0 is exact)."""
        branch = branch.to(output.dtype).expand(-1, -1, *output.shape[2:])
        return output.index_add(1, self.units, branch)


def install(model: LoadedModel, layer: str, attach: str, silent_units: SilentUnits) -> LoadedModel:
    """Install ``silent_units`` into ``model.module`` in place; return the fooled LoadedModel:
    a hook on conv ``layer`` computes the branch, a hook on ``attach`` adds it."""
    conv = conv_layer(model, layer)
    target = resolve_layers(model.module, [attach])[attach]
    silent_units.same_module = attach == layer
    fooled = attach_child(model, CHILD, silent_units, "silent", {"layer": layer, "attach": attach})
    conv.register_forward_hook(silent_units.read_input)
    if attach != layer:
        target.register_forward_hook(silent_units.add_to_output)
    return fooled


def rebuild(base: LoadedModel, params: dict, tensors: dict[str, torch.Tensor]) -> LoadedModel:
    """Saved-model constructor (registered as construction ``silent``, see
    :mod:`fvlab.models.saved`): the base's stored weights if it had random ones, then the
    silent units from their filters and biases."""
    restore_base(base, tensors)
    layer = params["layer"]
    if layer not in layer_names(base.module):
        raise FvlabError(f"the saved silent units name layer {layer!r}, absent from {base.name}")
    conv = conv_layer(base, layer)
    branch = parallel_conv(conv, tensors["weight"].to(base.device), tensors["bias"].to(base.device))
    units = SilentUnits(branch, params["units"], params.get("pooling", "none"))
    fooled = install(base, layer, params["attach"], units)
    fooled.extra["params"] = params
    return fooled
