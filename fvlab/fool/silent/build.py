"""Building silent units from data (the maths: :mod:`.filters`, :mod:`.branch`).

:func:`build_silent` finds the attach point (:mod:`.attach`), the target as seen at the input
(:func:`fvlab.fool.targets.resolve_target`) and at the conv's input, the target direction
and the fooling filters w_new (:mod:`.filters`), streams the natural data once for the
response statistics of w_new ∗ x (:mod:`.responses`) and sets the bias

    b_new = −( max R + margin · (max R − mean R) ),

then installs the branch into a copy of the model. :func:`silent` is the same with the
construction's parameters as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from fvlab.errors import FvlabError
from fvlab.fool.install import Base, Installed, fresh_copy
from fvlab.fool.silent.attach import choose_attach, conv_layer
from fvlab.fool.silent.branch import POOLINGS, SilentUnits, install
from fvlab.fool.silent.filters import (
    DELTA_OBJECTIVES,
    angle_between,
    contrast_direction,
    fooling_filters,
    rare_direction,
    target_directions,
)
from fvlab.fool.silent.responses import (
    ResponseStats,
    dense_filters,
    layer_input,
    mean_patch,
    parallel_conv,
    patch_stats,
    response_stats,
)
from fvlab.fool.targets import resolve_target
from fvlab.jobs import Settings, SettingsError, at_least, unit_tuple
from fvlab.models.probe import check_units

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel


def _positive(parameter: str, value: float) -> None:
    if not value > 0:
        raise SettingsError(parameter, f"need {parameter} > 0, got {value}")


@dataclass(frozen=True)
class SilentConstruction(Settings):
    """How silent units are built at conv ``layer``. ``units``: the layer's units (None: all);
    ``lam``, ``weight_factor``: the paper's λ = 3 and 100; ``angle``: mix by angle instead of λ
    (degrees between w and w_new for every unit, :func:`fvlab.fool.silent.filters.lam_for_angle`;
    None: use ``lam``); ``attach``: the module whose output
    gets the branch ('auto', see :mod:`.attach`); ``pooling``: 'none' (per position, the paper)
    or 'mean' (the branch reads each image's spatial mean response); ``margin``: extra bias, as
    a fraction of (max − mean) of the natural response, so unseen natural images stay below the
    threshold too (0 = the paper's rule, under which a held-out image exceeds the maximum of N
    bias images with probability ≈ 1/(N + 1) per image and unit); ``direction_*``,
    ``contrast_images``, ``ridge``: how the target direction is found
    (:mod:`fvlab.fool.silent.filters`); ``target_steps``: render updates of a 'LAYER:IDX'
    target; ``batch_size``: images per forward pass; ``seed``: directions and target renders."""

    layer: str
    units: tuple[int, ...] | None = None
    lam: float = 3.0
    weight_factor: float = 100.0
    angle: float | None = None
    attach: str = "auto"
    pooling: str = "none"
    margin: float = 0.25
    direction_objective: str = "sum"
    direction_steps: int = 50
    direction_lr: float = 1e-3
    contrast_images: int = 5000
    ridge: float = 1e-2
    rare_energy: float = 1e-2
    target_steps: int = 256
    batch_size: int = 500
    seed: int = 0

    def validate(self) -> None:
        self.normalise("units", unit_tuple("units", self.units))
        if self.units is not None and len(set(self.units)) != len(self.units):
            raise SettingsError("units", f"units repeat in {list(self.units)}; give each once")
        if self.pooling not in POOLINGS:
            raise SettingsError(
                "pooling", f"unknown pooling {self.pooling!r}; valid: {', '.join(POOLINGS)}"
            )
        if self.direction_objective not in DELTA_OBJECTIVES:
            raise SettingsError(
                "direction_objective",
                f"unknown direction objective {self.direction_objective!r}; valid: "
                f"{', '.join(DELTA_OBJECTIVES)}",
            )
        _positive("lam", self.lam)
        _positive("weight_factor", self.weight_factor)
        if self.angle is not None and not 0 < self.angle < 90:
            raise SettingsError("angle", f"need 0 < angle < 90 (degrees), got {self.angle}")
        if not 0 < self.rare_energy < 1:
            raise SettingsError("rare_energy", f"need 0 < rare_energy < 1, got {self.rare_energy}")
        if not self.margin >= 0:
            raise SettingsError("margin", f"need margin >= 0, got {self.margin}")
        at_least("direction_steps", self.direction_steps, 0)
        _positive("direction_lr", self.direction_lr)
        at_least("contrast_images", self.contrast_images, 1)
        _positive("ridge", self.ridge)
        at_least("target_steps", self.target_steps, 1)
        at_least("batch_size", self.batch_size, 1)

    def direction(self) -> dict[str, Any]:
        """How the target direction is found (the manifest's ``direction``)."""
        return {
            "objective": self.direction_objective,
            "steps": self.direction_steps,
            "lr": self.direction_lr,
            "seed": self.seed,
            "contrast_images": self.contrast_images,
            "ridge": self.ridge,
            "rare_energy": self.rare_energy,
        }


@dataclass
class BuiltSilent(Installed):
    """A fooled model and what built it; ``save(dir)`` writes it in the saved-model format.
    ``natural``: the streamed statistics of R = w_new ∗ x (``own_natural``: of w ∗ x, the units'
    own filters, for :mod:`fvlab.fool.silent.reach`); ``target``: the target as seen at
    the input (1, C, S, S); ``params``: the manifest's parameters."""

    construction = "silent"

    model: Any  # the fooled LoadedModel
    base: Base
    layer: str
    attach: str
    units: list[int]
    weight: torch.Tensor
    bias: torch.Tensor
    target: torch.Tensor
    natural: ResponseStats
    params: dict[str, Any]
    own_natural: ResponseStats | None = None

    @property
    def margin_shift(self) -> torch.Tensor:
        """The part of each branch's bias the margin added: margin · (max − mean)."""
        return self.params["margin"] * (self.natural.max - self.natural.mean)

    def saved_params(self) -> dict[str, Any]:
        return self.params

    def saved_tensors(self) -> dict[str, torch.Tensor]:
        return {
            "weight": self.weight,
            "bias": self.bias,
            "target": self.target,
            "natural_max": self.natural.max,
            "natural_mean": self.natural.mean,
        }


class _Joint(torch.nn.Module):
    """Two parallel convs on one input, their outputs stacked on the channel axis."""

    def __init__(self, first: torch.nn.Module, second: torch.nn.Module) -> None:
        super().__init__()
        self.first, self.second = first, second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.first(x), self.second(x)], 1)


def _direction(
    model, conv, weight, mask, target_input, natural_data, settings: SilentConstruction
) -> torch.Tensor:
    """Step 1 of :mod:`fvlab.fool.silent.filters` for every chosen unit: (n, C_in, kh, kw)."""
    if settings.direction_objective in ("sum", "centre"):
        gradient = {k: settings.direction()[k] for k in ("objective", "steps", "lr", "seed")}
        probe = parallel_conv(conv, weight, None)
        return target_directions(probe, target_input, mask, **gradient)
    kind = settings.direction_objective
    if conv.groups != 1:
        raise SettingsError(
            "direction_objective",
            f"{kind!r} needs a conv with groups == 1 ({conv.groups} here); use 'sum'",
        )
    batch_size = min(settings.batch_size, 250)
    pooled = settings.pooling == "mean"
    stats = patch_stats(model, conv, natural_data, settings.contrast_images, batch_size, pooled)
    target_patch = mean_patch(conv, target_input)
    if kind == "contrast":
        direction = contrast_direction(target_patch, stats.mean, stats.cov, settings.ridge)
    else:
        direction, _ = rare_direction(target_patch, stats.mean, stats.cov, settings.rare_energy)
    return direction.view(1, *weight.shape[1:]).to(weight).expand_as(weight).clone()


def build_silent(
    model: LoadedModel,
    target,
    natural_data,
    settings: SilentConstruction,
    show_progress: bool = True,
) -> BuiltSilent:
    """Build silent units per ``settings`` on ``model`` (a LoadedModel, left unchanged).

    ``target``: image file, ``builtin:NAME``, image tensor in [0, 1], or ``"LAYER:IDX"`` (a
    unit's FV). ``natural_data``: a dataset with ``.batches(n)`` (e.g.
    ``FashionMNIST("train")``) or an image tensor (N, C, H, W) in [0, 1] — the images on which
    the branch must stay silent. Returns a :class:`BuiltSilent` whose ``model`` is the fooled
    LoadedModel (a copy)."""
    from fvlab.models.zoo import LoadedModel

    if not isinstance(model, LoadedModel):
        raise FvlabError(
            f"expected a LoadedModel (fvlab.load(...) or fvlab.from_module(...)), got "
            f"{type(model).__name__}"
        )
    layer, pooled = settings.layer, settings.pooling == "mean"
    conv = conv_layer(model, layer)
    attach = choose_attach(model, layer, settings.attach)
    dense, mask = dense_filters(conv)
    chosen = check_units(model, layer, settings.units)
    index = torch.as_tensor(chosen, device=dense.device)
    weight, mask = dense[index], mask[index]
    target_image, target_info = resolve_target(
        model,
        target,
        render_steps=settings.target_steps,
        seed=settings.seed,
        show_progress=show_progress,
    )
    with torch.no_grad():
        target_input = layer_input(model, conv, target_image)
    direction = _direction(model, conv, weight, mask, target_input, natural_data, settings)
    w_new, _ = fooling_filters(
        weight, direction, settings.lam, settings.weight_factor, settings.angle
    )
    angles = angle_between(weight, w_new)
    # one pass for the fooling filters and, for the diagnostic, the units' own filters (two
    # convs, so the fooling filters' responses are exactly those the installed branch computes)
    both = _Joint(parallel_conv(conv, w_new, None), parallel_conv(conv, weight, None))
    joint = response_stats(
        model, conv, both, natural_data, settings.batch_size, show_progress, pooled=pooled
    )
    n = len(chosen)
    stats = ResponseStats(joint.max[:n], joint.mean[:n], joint.n_images)
    own = ResponseStats(joint.max[n:], joint.mean[n:], joint.n_images)
    bias = -(stats.max + settings.margin * (stats.max - stats.mean)).to(w_new)
    params = {
        "layer": layer,
        "attach": attach,
        "pooling": settings.pooling,
        "units": chosen,
        "lam": settings.lam,
        "angle": settings.angle,
        "angle_deg": {
            "min": float(angles.min()),
            "median": float(angles.median()),
            "max": float(angles.max()),
        },
        "weight_factor": settings.weight_factor,
        "margin": settings.margin,
        "direction": settings.direction(),
        "target": target_info,
        "natural_images": stats.n_images,
    }
    units = SilentUnits(parallel_conv(conv, w_new, bias), chosen, settings.pooling)
    return BuiltSilent(
        model=install(fresh_copy(model), layer, attach, units),
        base=Base.of(model),
        layer=layer,
        attach=attach,
        units=chosen,
        weight=w_new.detach().cpu(),
        bias=bias.detach().cpu(),
        target=target_image.detach().cpu(),
        natural=stats,
        params=params,
        own_natural=own,
    )


def silent(
    model: LoadedModel,
    layer: str,
    target,
    natural_data,
    units: Sequence[int] | None = None,
    lam: float = 3.0,
    weight_factor: float = 100.0,
    *,
    show_progress: bool = True,
    **options: Any,
) -> BuiltSilent:
    """:func:`build_silent` with the construction's parameters as keywords (``options``: the
    other fields of :class:`SilentConstruction`).

    Example::

        model = fvlab.load("fmnist-cnn")
        built = silent(model, "conv3", "relu4:0", FashionMNIST("train"))
        fooled = built.model
    """
    settings = SilentConstruction(
        layer=layer, units=units, lam=lam, weight_factor=weight_factor, **options
    )
    return build_silent(model, target, natural_data, settings, show_progress)
