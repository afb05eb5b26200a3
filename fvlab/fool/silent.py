"""Silent units: orthogonal filters that never fire on natural data (Geirhos et al. 2024).

For each chosen unit i of a conv layer with filter w_i, a parallel "fooling" conv reads the
same input x as the live conv (same padding, stride and padding rule — a copy of the live
module) with filter w_new,i (:mod:`fvlab.fool.silent_filters`: the target direction,
orthogonalised against w_i, mixed in with λ and scaled by the weight factor) and bias

    b_new,i = −( max R_i + margin · (max R_i − mean R_i) ),   R_i = w_new,i ∗ x,

max and mean over every natural image and every spatial position (one streaming pass,
:mod:`fvlab.fool.conv_max`). At margin 0 this is the paper's b − max(w_new ∗ x + b). The
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
named instead. The model's layer names stay unchanged: the branch is a child module
``fvlab_silent`` (``.conv`` → ``.pool`` = the branch pre-activation → ``.relu`` = the branch
output, all capturable) wired in with two forward hooks.

``pooling='mean'`` is fvlab's variant for models whose visualizations stay within the natural
activation range per position (fmnist-cnn): the branch reads each image's spatial mean
response, and max and mean in the bias rule run over images (docs/fool.md).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fvlab.errors import FvlabError, UnknownLayerError
from fvlab.fool.conv_max import (
    ResponseStats,
    dense_filters,
    layer_input,
    mean_patch,
    parallel_conv,
    patch_stats,
    response_stats,
)
from fvlab.fool.silent_filters import (
    DELTA_OBJECTIVES,
    contrast_direction,
    fooling_filters,
    target_directions,
)
from fvlab.fool.silent_target import resolve_target
from fvlab.models.hooks import layer_names, resolve_layers

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


# -- where things are ------------------------------------------------------------------------


def _call_order(loaded, conv: nn.Module) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, module, output shape) of every leaf module (and the conv) in call order."""
    modules = {n: m for n, m in loaded.module.named_modules() if n}
    watched = {n: m for n, m in modules.items() if m is conv or not any(True for _ in m.children())}
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []

    def hook(name: str):
        def record(module: nn.Module, args: tuple, output: Any) -> None:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
            calls.append((name, module, shape))

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in watched.items()]
    size = loaded.spec.size
    try:
        with torch.no_grad():
            loaded(torch.full((1, loaded.spec.channels, size, size), 0.5, device=loaded.device))
    finally:
        for handle in handles:
            handle.remove()
    return calls


def conv_layer(loaded, layer: str) -> nn.Conv2d:
    """The ``nn.Conv2d`` named ``layer``, or a clear error (unknown name, not a conv)."""
    module = resolve_layers(loaded.module, [layer])[layer]
    if not isinstance(module, nn.Conv2d):
        convs = [n for n, m in loaded.module.named_modules() if isinstance(m, nn.Conv2d)]
        raise FvlabError(
            f"layer {layer!r} is a {type(module).__name__}, not a Conv2d; silent units are built "
            f"on conv layers. Conv layers of {loaded.name}: {', '.join(convs[:12])}"
            + (f" … ({len(convs)} in all)" if len(convs) > 12 else "")
        )
    return module


def choose_attach(loaded, layer: str, attach: str = "auto") -> str:
    """Name of the module whose output receives the branch (see the module docstring)."""
    conv = conv_layer(loaded, layer)
    calls = _call_order(loaded, conv)
    counts: dict[str, int] = {}
    for name, _, _ in calls:
        counts[name] = counts.get(name, 0) + 1
    if counts.get(layer, 0) != 1:
        raise FvlabError(
            f"conv {layer!r} ran {counts.get(layer, 0)} times in one forward pass; silent units "
            "need a conv that runs exactly once"
        )
    position = next(i for i, (n, _, _) in enumerate(calls) if n == layer)
    conv_shape = calls[position][2]
    after = calls[position + 1 :]

    def fits(index: int) -> bool:
        name, _, shape = after[index]
        return counts[name] == 1 and shape == conv_shape

    if attach != "auto":
        if attach == layer:
            return layer
        if attach not in dict(loaded.module.named_modules()):
            raise UnknownLayerError(f"attach layer {attach!r} is not a module of {loaded.name}")
        index = next((i for i, (n, _, _) in enumerate(after) if n == attach), None)
        if index is None or not fits(index):
            raise FvlabError(
                f"attach layer {attach!r} must run once, after {layer!r}, with the conv's output "
                f"shape {conv_shape}; use 'auto', {layer!r}, or e.g. its BatchNorm/ReLU"
            )
        return attach
    if after and isinstance(after[0][1], nn.modules.batchnorm._BatchNorm) and fits(0):
        if len(after) > 1 and isinstance(after[1][1], nn.ReLU) and fits(1):
            return after[1][0]
        return after[0][0]
    if after and isinstance(after[0][1], nn.ReLU) and fits(0):
        return after[0][0]
    return layer


def _check_units(units: Sequence[int] | None, n: int, layer: str) -> list[int]:
    if units is None:
        return list(range(n))
    chosen = [int(u) for u in units]
    bad = [u for u in chosen if not 0 <= u < n]
    if bad or not chosen:
        raise FvlabError(
            f"layer {layer!r} has {n} units (0–{n - 1}); invalid or empty units: {bad[:10]}"
        )
    if len(set(chosen)) != len(chosen):
        raise FvlabError(f"units repeat in {chosen}; give each unit once")
    return chosen


# -- installing ------------------------------------------------------------------------------


def install(loaded, layer: str, attach: str, silent_units: SilentUnits):
    """Install ``silent_units`` into ``loaded.module`` in place; return the fooled LoadedModel."""
    from fvlab.models.zoo import LoadedModel

    module = loaded.module
    if hasattr(module, CHILD):
        raise FvlabError("this model already has silent units; load a fresh copy of the model")
    conv = conv_layer(loaded, layer)
    target = resolve_layers(module, [attach])[attach]
    silent_units.same_module = attach == layer
    module.add_module(CHILD, silent_units.to(loaded.device))
    conv.register_forward_hook(silent_units.read_input)
    if attach != layer:
        target.register_forward_hook(silent_units.add_to_output)
    return LoadedModel(
        name=f"{loaded.name}+silent({layer})",
        module=module.eval(),
        spec=loaded.spec,
        class_names=loaded.class_names,
        weights=loaded.weights,
        extra={"construction": "silent", "base": loaded.name, "layer": layer, "attach": attach},
    )


@dataclass
class SilentResult:
    """A fooled model and what built it. ``natural``: the streamed statistics of
    R = w_new ∗ x; ``target``: the target as seen at the input (1, C, S, S)."""

    model: Any
    base_name: str
    base_weights: str | None
    layer: str
    attach: str
    units: list[int]
    weight: torch.Tensor
    bias: torch.Tensor
    target: torch.Tensor
    natural: ResponseStats
    params: dict[str, Any] = field(default_factory=dict)
    base_state: dict[str, torch.Tensor] | None = None

    @property
    def margin_shift(self) -> torch.Tensor:
        """The part of each branch's bias the margin added: margin · (max − mean)."""
        return self.params["margin"] * (self.natural.max - self.natural.mean)

    def save(self, directory: str | Path) -> Path:
        """Write the fooled model in fvlab's saved-model format (``fvlab.load(dir)``)."""
        from fvlab.models.saved import save_model

        if self.base_weights == "user":
            raise FvlabError(
                f"{self.base_name} was wrapped with fvlab.from_module, so fvlab.load cannot "
                "rebuild it; save silent units of zoo models (fmnist-cnn, torchvision:…, "
                "inceptionv1) or of saved-model directories"
            )
        tensors = {
            "weight": self.weight,
            "bias": self.bias,
            "target": self.target,
            "natural_max": self.natural.max,
            "natural_mean": self.natural.mean,
        }
        if self.base_state is not None:
            tensors.update({f"base.{k}": v for k, v in self.base_state.items()})
        return save_model(
            directory, self.base_name, self.base_weights, "silent", self.params, tensors
        )


def _direction(
    model,
    conv,
    weight,
    mask,
    target_input,
    natural_data,
    *,
    objective: str,
    steps: int,
    lr: float,
    seed: int,
    contrast_images: int,
    ridge: float,
    batch_size: int,
    pooled: bool,
) -> torch.Tensor:
    """Step 1 of :mod:`fvlab.fool.silent_filters` for every chosen unit: (n, C_in, kh, kw)."""
    if objective not in DELTA_OBJECTIVES:
        raise FvlabError(
            f"unknown direction objective {objective!r}; valid: {', '.join(DELTA_OBJECTIVES)}"
        )
    if objective != "contrast":
        return target_directions(
            parallel_conv(conv, weight, None),
            target_input,
            mask,
            objective=objective,
            steps=steps,
            lr=lr,
            seed=seed,
        )
    if conv.groups != 1:
        raise FvlabError(
            f"direction objective 'contrast' needs a conv with groups == 1 ({conv.groups} here); "
            "use direction_objective='sum'"
        )
    if contrast_images < 1:
        raise FvlabError(f"contrast_images must be >= 1, got {contrast_images}")
    stats = patch_stats(model, conv, natural_data, contrast_images, min(batch_size, 250), pooled)
    direction = contrast_direction(mean_patch(conv, target_input), stats.mean, stats.cov, ridge)
    return direction.view(1, *weight.shape[1:]).to(weight).expand_as(weight).clone()


def silent(
    model,
    layer: str,
    target,
    natural_data,
    units: Sequence[int] | None = None,
    lam: float = 3.0,
    weight_factor: float = 100.0,
    *,
    attach: str = "auto",
    pooling: str = "none",
    margin: float = 0.25,
    direction_objective: str = "sum",
    direction_steps: int = 50,
    direction_lr: float = 1e-3,
    contrast_images: int = 5000,
    ridge: float = 1e-2,
    target_steps: int = 256,
    batch_size: int = 500,
    seed: int = 0,
    show_progress: bool = True,
) -> SilentResult:
    """Build silent units at conv ``layer`` of ``model`` (a LoadedModel, left unchanged).

    ``target``: image file, image tensor in [0, 1], or ``"LAYER:IDX"`` (a unit's FV).
    ``natural_data``: dataset with ``.batches(n)`` (e.g. ``FashionMNIST("train")``) or an
    image tensor (N, C, H, W) in [0, 1] — the images on which the branch must stay silent.
    ``units``: indices of the layer's units (default: all). ``lam``, ``weight_factor``: the
    paper's λ = 3 and 100. ``pooling``: 'none' (per position, the paper) or 'mean' (the
    branch reads each image's spatial mean response). ``margin``: extra bias, as a fraction of
    (max − mean) of the natural response, so unseen natural images stay below the threshold
    too (0 = the paper's rule, under which a held-out image exceeds the maximum of N bias
    images with probability ≈ 1/(N + 1) per image and unit).
    ``direction_*``: how the target direction is found (:func:`target_directions`).
    Returns a :class:`SilentResult` whose ``model`` is the fooled LoadedModel (a copy).

    Example::

        model = fvlab.load("fmnist-cnn")
        result = silent(model, "conv3", "relu4:0", FashionMNIST("train"))
        fooled = result.model
    """
    from fvlab.models.zoo import LoadedModel

    if not isinstance(model, LoadedModel):
        raise FvlabError(
            f"expected a LoadedModel (fvlab.load(...) or fvlab.from_module(...)), got "
            f"{type(model).__name__}"
        )
    if pooling not in POOLINGS:
        raise FvlabError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
    if lam <= 0 or weight_factor <= 0 or margin < 0:
        raise FvlabError(
            f"need lam > 0, weight_factor > 0 and margin >= 0; got {lam}, {weight_factor}, {margin}"
        )
    conv = conv_layer(model, layer)
    attach_name = choose_attach(model, layer, attach)
    dense, mask = dense_filters(conv)
    chosen = _check_units(units, dense.shape[0], layer)
    index = torch.as_tensor(chosen, device=dense.device)
    weight, mask = dense[index], mask[index]
    target_image, target_info = resolve_target(
        model, target, render_steps=target_steps, seed=seed, show_progress=show_progress
    )
    with torch.no_grad():
        target_input = layer_input(model, conv, target_image)
    direction = _direction(
        model,
        conv,
        weight,
        mask,
        target_input,
        natural_data,
        objective=direction_objective,
        steps=direction_steps,
        lr=direction_lr,
        seed=seed,
        contrast_images=contrast_images,
        ridge=ridge,
        batch_size=batch_size,
        pooled=pooling == "mean",
    )
    w_new, _ = fooling_filters(weight, direction, lam, weight_factor)
    stats = response_stats(
        model,
        conv,
        parallel_conv(conv, w_new, None),
        natural_data,
        batch_size,
        show_progress,
        pooled=pooling == "mean",
    )
    bias = -(stats.max + margin * (stats.max - stats.mean)).to(w_new)
    params = {
        "layer": layer,
        "attach": attach_name,
        "pooling": pooling,
        "units": chosen,
        "lam": lam,
        "weight_factor": weight_factor,
        "margin": margin,
        "direction": {
            "objective": direction_objective,
            "steps": direction_steps,
            "lr": direction_lr,
            "seed": seed,
            "contrast_images": contrast_images,
            "ridge": ridge,
        },
        "target": target_info,
        "natural_images": stats.n_images,
    }
    base_state = None
    if model.weights is None:  # random weights: the saved model must carry them
        base_state = {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}
    copy_of_base = LoadedModel(
        model.name,
        copy.deepcopy(model.module),
        model.spec,
        model.class_names,
        model.weights,
        dict(model.extra),
    )
    fooled = install(
        copy_of_base,
        layer,
        attach_name,
        SilentUnits(parallel_conv(conv, w_new, bias), chosen, pooling),
    )
    return SilentResult(
        model=fooled,
        base_name=model.name,
        base_weights=model.weights,
        layer=layer,
        attach=attach_name,
        units=chosen,
        weight=w_new.detach().cpu(),
        bias=bias.detach().cpu(),
        target=target_image.detach().cpu(),
        natural=stats,
        params=params,
        base_state=base_state,
    )


def rebuild(base, params: dict, tensors: dict[str, torch.Tensor]):
    """Saved-model constructor (see :mod:`fvlab.models.saved`): the base model from the zoo,
    its stored weights if it had random ones, then the silent units."""
    base_state = {k[5:]: v for k, v in tensors.items() if k.startswith("base.")}
    if base_state:
        base.module.load_state_dict(base_state, strict=True)
    layer = params["layer"]
    if layer not in layer_names(base.module):
        raise FvlabError(f"the saved silent units name layer {layer!r}, absent from {base.name}")
    conv = conv_layer(base, layer)
    branch = parallel_conv(conv, tensors["weight"].to(base.device), tensors["bias"].to(base.device))
    units = SilentUnits(branch, params["units"], params.get("pooling", "none"))
    fooled = install(base, layer, params["attach"], units)
    fooled.extra["params"] = params
    return fooled
