"""Before the fooled render: can the branch fire at all? The reach of a unit's own FV.

While a silent branch is off, its ReLU passes no gradient, so the fooled unit's optimisation
is exactly the original one (same seed, same steps; without ReLU redirection): the branch can
only ever fire if the *original* FV's trajectory crosses its threshold. For manipulated unit i
with fooling filter w_new,i, own filter w_i, original FV o_i (x_i: the input of the conv for
o_i) and the natural statistics of the build (max and mean over natural images and positions,
or over images of the spatial mean for ``pooling='mean'``):

    reach_i      = max_pos (w_new,i ∗ x_i) / max_nat (w_new,i ∗ x)      FV / natural max along
                                                                          the branch direction
    to_threshold = max_pos (w_new,i ∗ x_i) / (max_nat + margin · (max_nat − mean_nat))
    own_i        = max_pos (w_i ∗ x_i) / max_nat (w_i ∗ x)              the unit's own range
                                                                          ratio (FV / natural)

to_threshold ≥ 1 means the branch already fires on the unit's original FV, so its ×100 weight
takes over the objective from there on; < 1 everywhere along the way means the fooled FV *is*
the original one. The prediction (:attr:`Reach.likely`): a takeover is likely when the
median to_threshold over units is ≥ 1. It needs only the original FVs, which the comparison
renders anyway, so `fvlab fool silent` prints it before rendering the fooled model, and
:func:`suggest_layers` ranks layers by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from fvlab.fool.silent.responses import layer_input, parallel_conv

if TYPE_CHECKING:
    from fvlab.fool.silent.build import BuiltSilent
    from fvlab.models.zoo import LoadedModel

#: the prediction: likely when the median reach of the threshold is at least this
LIKELY_AT = 1.0


def _ratio(value: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """value / reference, with a non-positive reference giving +inf (any positive value is
    beyond it) or nan."""
    reference = reference.double()
    out = value.double() / reference.where(reference > 0, torch.ones_like(reference))
    return out.where(reference > 0, torch.full_like(out, float("inf"))).float()


@dataclass(frozen=True)
class Reach:
    """Per unit (n,): reach, to_threshold, own (module docstring) and the prediction."""

    units: list[int]
    reach: torch.Tensor
    to_threshold: torch.Tensor
    own: torch.Tensor | None

    @property
    def fires(self) -> torch.Tensor:
        """Units whose branch already fires on the original FV."""
        return self.to_threshold >= 1

    @property
    def likely(self) -> bool:
        return bool(self.to_threshold.median() >= LIKELY_AT)

    def summary(self) -> dict[str, Any]:
        out = {
            "fv_over_natural_max_median": float(self.reach.median()),
            "fv_over_threshold_median": float(self.to_threshold.median()),
            "fires_on_original_fv_share": float(self.fires.float().mean()),
            "own_fv_over_natural_max_median": (
                None if self.own is None else float(self.own.median())
            ),
            "takeover_likely": self.likely,
            "rule": (
                "likely when the median over units of max_pos(w_new * x_FV) / branch threshold "
                f">= {LIKELY_AT:g} (x_FV: the conv input of the unit's original FV)"
            ),
        }
        return out

    def line(self) -> str:
        """One human line for the CLI."""
        own = "" if self.own is None else f"; own filter FV/natural max {self.own.median():.2f}"
        verdict = "takeover likely" if self.likely else "takeover UNLIKELY"
        return (
            f"diagnostic: original FVs reach {self.reach.median():.2f}× the natural max along the "
            f"branch directions ({self.to_threshold.median():.2f}× the threshold, median; branch "
            f"fires on {self.fires.float().mean():.0%} of original FVs){own} → {verdict}"
        )


@torch.no_grad()
def branch_reach(original: LoadedModel, built: BuiltSilent, original_fv: torch.Tensor) -> Reach:
    """:class:`Reach` of ``built``'s units from their original FVs (n, C, S, S), in unit
    order (module docstring)."""
    from fvlab.fool.silent.attach import conv_layer
    from fvlab.fool.silent.responses import dense_filters

    conv = conv_layer(original, built.layer)
    device = original.device
    x = layer_input(original, conv, original_fv.to(device))
    pooled = built.params.get("pooling", "none") == "mean"
    index = torch.arange(len(built.units), device=device)

    def own_response(weight: torch.Tensor) -> torch.Tensor:
        response = parallel_conv(conv, weight.to(device), None)(x)
        if pooled:
            response = response.mean(dim=(2, 3), keepdim=True)
        return response[index, index].flatten(1).amax(1).cpu()

    fv = own_response(built.weight)
    natural = built.natural
    threshold = natural.max + built.params["margin"] * (natural.max - natural.mean)
    own = None
    if built.own_natural is not None:
        dense, _ = dense_filters(conv)
        weight = dense[torch.as_tensor(built.units, device=dense.device)]
        own = _ratio(own_response(weight), built.own_natural.max)
    return Reach(list(built.units), _ratio(fv, natural.max), _ratio(fv, threshold), own)


@dataclass(frozen=True)
class LayerReach:
    """One candidate layer of :func:`suggest_layers`: its reach, or why it cannot be used."""

    layer: str
    attach: str | None
    units: list[int]
    reach: Reach | None
    error: str | None = None

    @property
    def score(self) -> float:
        """The ranking key: median FV / threshold along the branch directions (−inf if unusable)."""
        return float("-inf") if self.reach is None else float(self.reach.to_threshold.median())

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "attach": self.attach, "units": self.units}
        if self.reach is None:
            out["error"] = self.error
        else:
            out.update(self.reach.summary())
        return out


def suggest_layers(
    model: LoadedModel,
    target,
    natural,
    settings,
    *,
    layers: list[str] | None = None,
    units_per_layer: int = 8,
    fv_steps: int = 128,
    relu_redirect_steps: int = 0,
    show_progress: bool = True,
) -> list[LayerReach]:
    """Rank conv layers by how far their units' original FVs reach along the branch directions
    of the construction ``settings`` (a :class:`~fvlab.fool.silent.build.SilentConstruction`;
    its ``layer`` and ``units`` are replaced per layer), best first. Per layer: the first
    ``units_per_layer`` units, the bias from ``natural``, FVs with ``fv_steps`` updates. The
    target is resolved (a unit's FV rendered) once. A layer that cannot carry silent units (not
    run exactly once, …) is listed last with the reason."""
    from torch import nn

    from fvlab.errors import FvlabError
    from fvlab.fool.silent.build import build_silent
    from fvlab.fool.silent.evaluate import render_original
    from fvlab.fool.targets import resolve_target

    if layers is None:
        layers = [n for n, m in model.module.named_modules() if isinstance(m, nn.Conv2d)]
    image, _ = resolve_target(
        model, target, render_steps=settings.target_steps, seed=settings.seed,
        show_progress=show_progress,
    )  # fmt: skip
    ranked = []
    for layer in layers:
        conv = model.module.get_submodule(layer)
        units = list(range(min(units_per_layer, conv.out_channels)))
        try:
            built = build_silent(
                model, image, natural, settings.replace(layer=layer, units=units), show_progress
            )
        except FvlabError as exc:
            ranked.append(LayerReach(layer, None, units, None, str(exc)))
            continue
        before = render_original(
            model, built, fv_steps, settings.seed, show_progress, relu_redirect_steps
        )
        ranked.append(
            LayerReach(layer, built.attach, units, branch_reach(model, built, before.images))
        )
    return sorted(ranked, key=lambda r: r.score, reverse=True)
