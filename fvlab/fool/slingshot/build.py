"""Fine-tuning a model's weights so that chosen units' FVs show a target (no module added).

The loss of one update, on a batch of natural training images X and a batch of tunnel points
(or FVs and the target, for push-down/up; :mod:`fvlab.fool.slingshot.field`):

    L = α · L_P + (1 − α) · L_M

    L_P = mean_{x∈X, c, positions} w_c ((A_θ(x)_c − A_orig(x)_c) / σ_c)²
          + λ_logits · mean_{x∈X} ‖z_θ(x) − z_orig(x)‖² / σ_z²

with A the manipulated layer's output (every channel, every position), σ_c the original
channel's standard deviation over natural images, w_c = ``unit_weight`` for a manipulated unit
and 1 otherwise, z the logits and σ_z² their variance (all measured on the first batch). The
batch-norm statistics stay frozen (eval mode); every weight of the model is trained with Adam.

:func:`build_slingshot` returns a :class:`BuiltSlingshot`: the fooled model (a plain copy of
the model with other weights — same architecture, same layer names) and ``save(dir)`` in the
saved-model format, construction ``slingshot`` (the full fine-tuned state dict travels in the
tensor file; :func:`rebuild` loads it into the base).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from fvlab.fool.install import Base, Installed, fresh_copy
from fvlab.fool.slingshot import field
from fvlab.jobs import Settings, SettingsError, at_least, choice, in_range, positive, unit_tuple
from fvlab.models.hooks import Capture, capture
from fvlab.models.probe import check_units
from fvlab.optvis.param import fft_preimage
from fvlab.progress import progress_bar

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

METHODS = ("slingshot", "push")
FIELDS = ("value", "gradient")
STATE_PREFIX = "state."


@dataclass(frozen=True)
class SlingshotConstruction(Settings):
    """How the weights are fine-tuned. ``layer``, ``units``: the manipulated units;
    ``method``: ``slingshot`` (gradient field) or ``push`` (push-down / push-up); ``field``:
    how the slingshot imposes its bowl, ``value`` or ``gradient`` (:mod:`.field`); ``peak``:
    the bowl's height × the larger of the unit's natural maximum and its clean FV's activation
    (value field); ``radius``: the bowl's radius × the typical start-to-target distance (> 1:
    the bowl is still positive, and steep, at the start); ``gain``: the imposed field's
    magnitude γ × the original gradients' (gradient field);
    ``alpha``: weight of the preservation loss; ``steps``, ``lr``: Adam updates and rate;
    ``natural_batch``: natural images per update; ``points``: tunnel points per unit per update
    (slingshot); ``tunnel_noise``: their relative noise; ``unit_weight``: preservation
    weight of the manipulated units (the others': 1; higher keeps their natural responses
    closer and fools fewer FVs: docs/fool.md); ``logit_weight``: λ_logits; ``init_sd``: the
    FV start's standard deviation; ``push_down``, ``push_up``: ρ_down, ρ_up (push);
    ``refresh``: re-render the current model's FVs every N updates (push: the images pushed
    down; slingshot: half of the field's points then come from these trajectories); ``seed``."""

    layer: str
    units: tuple[int, ...] | None = None
    method: str = "slingshot"
    field: str = "gradient"
    peak: float = 1.5
    radius: float = 1.5
    gain: float = 1.0
    alpha: float = 0.4
    steps: int = 600
    lr: float = 1e-3
    natural_batch: int = 128
    points: int = 6
    tunnel_noise: float = 0.05
    unit_weight: float = 1.0
    logit_weight: float = 1.0
    init_sd: float = 0.01
    push_down: float = 0.5
    push_up: float = 1.5
    refresh: int = 25
    seed: int = 0

    def validate(self) -> None:
        if not self.layer:
            raise SettingsError("layer", "no layer given (see `fvlab layers`)")
        choice("method", self.method, METHODS)
        choice("field", self.field, FIELDS)
        positive("peak", self.peak)
        positive("radius", self.radius)
        positive("gain", self.gain)
        self.normalise("units", unit_tuple("units", self.units))
        in_range("alpha", self.alpha, 0.0, 1.0)
        at_least("steps", self.steps, 1)
        at_least("lr", self.lr, 1e-12)
        at_least("natural_batch", self.natural_batch, 2)
        at_least("points", self.points, 1)
        at_least("tunnel_noise", self.tunnel_noise, 0.0)
        at_least("unit_weight", self.unit_weight, 0.0)
        at_least("logit_weight", self.logit_weight, 0.0)
        at_least("init_sd", self.init_sd, 0.0)
        at_least("refresh", self.refresh, 1)


@dataclass
class BuiltSlingshot(Installed):
    """The fine-tuned model, its base, and the training record (losses, γ)."""

    construction = "slingshot"

    model: Any  # the fooled LoadedModel
    base: Base
    layer: str
    units: list[int]
    method: str
    record: dict

    def saved_params(self) -> dict[str, Any]:
        return {"layer": self.layer, "units": self.units, "method": self.method}

    def saved_tensors(self) -> dict[str, torch.Tensor]:
        state = self.model.module.state_dict()
        return {STATE_PREFIX + k: v.detach().cpu().clone() for k, v in state.items()}


def rebuild(base: LoadedModel, params: dict, tensors: dict[str, torch.Tensor]) -> LoadedModel:
    """Saved-model constructor (construction ``slingshot``): the fine-tuned weights loaded into
    the base architecture."""
    from fvlab.models.zoo import LoadedModel

    n = len(STATE_PREFIX)
    state = {k[n:]: v for k, v in tensors.items() if k.startswith(STATE_PREFIX)}
    base.module.load_state_dict(state, strict=True)
    return LoadedModel(
        f"{base.name}+slingshot({params['layer']})",
        base.module.eval(),
        base.spec,
        base.class_names,
        base.weights,
        {"construction": "slingshot", "base": base.name, **params},
    )


_CAPTURES: dict[tuple[int, str], Capture] = {}


def unit_activation(
    model: LoadedModel, layer: str, images: torch.Tensor, units: torch.Tensor
) -> torch.Tensor:
    """a_{units[i]}(images[i]): the channel's spatial mean (a linear layer's output), with
    gradients (N,). The forward pass stops after ``layer`` (from the second call on)."""
    key = (id(model.module), layer)
    if key not in _CAPTURES:
        if len(_CAPTURES) >= 4:  # a few models at a time: no stale modules kept alive
            _CAPTURES.clear()
        _CAPTURES[key] = Capture(model.module, [layer], stop_early=True)
    cap = _CAPTURES[key]
    with cap:
        cap.run(model, images)
        out = cap[layer]
    out = out.flatten(2).mean(2) if out.ndim > 2 else out
    return out[torch.arange(len(units), device=out.device), units]


class _Preservation:
    """L_P of the module docstring against the frozen original model."""

    def __init__(self, original: LoadedModel, layer: str, units: list[int], first: torch.Tensor,
                 settings: SlingshotConstruction) -> None:  # fmt: skip
        self.original, self.layer, self.settings = original, layer, settings
        acts, logits = self._original(first)
        dims = [0, *range(2, acts.ndim)]
        self.sigma = acts.std(dim=dims).clamp_min(1e-6)
        self.weight = torch.ones_like(self.sigma)
        self.weight[units] = settings.unit_weight
        self.logit_var = logits.var().clamp_min(1e-6)

    @torch.no_grad()
    def _original(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with capture(self.original.module, [self.layer], detach=True) as cap:
            logits = self.original(x)
            return cap[self.layer], logits

    def __call__(self, fooled: LoadedModel, x: torch.Tensor) -> torch.Tensor:
        acts_o, logits_o = self._original(x)
        with capture(fooled.module, [self.layer]) as cap:
            logits = fooled(x)
            acts = cap[self.layer]
        shape = (1, -1) + (1,) * (acts.ndim - 2)
        scaled = (acts - acts_o) / self.sigma.view(shape)
        layer_term = (scaled.pow(2) * self.weight.view(shape)).mean() / self.weight.mean()
        logit_term = (logits - logits_o).pow(2).mean() / self.logit_var
        return layer_term + self.settings.logit_weight * logit_term


def _transforms(size: int):
    from fvlab.optvis.transforms import make_transforms

    return make_transforms("standard", size)


class _Field:
    """L_M of the slingshot (:mod:`.field`): tunnel points, γ per unit, the field loss."""

    def __init__(self, original: LoadedModel, layer: str, units: list[int], target: torch.Tensor,
                 settings: SlingshotConstruction, generator: torch.Generator) -> None:  # fmt: skip
        self.layer, self.settings, self.generator = layer, settings, generator
        size = target.shape[-1]
        self.scale = field.fft_scale(size).to(target.device)
        self.q_target = fft_preimage(target)
        self.transform = _transforms(size)
        self.units = torch.as_tensor(units)
        probe_points, probe_units = self.points(8)
        starts = field.tunnel_points(self.q_target.cpu(), 64, settings.init_sd, 0.0, generator)
        distance = (self.q_target.cpu() - starts).flatten(1).norm(dim=1).median()
        self.radius = settings.radius * distance
        self.peak = None
        self.pool: list[torch.Tensor] = []
        norms = self.gradients(original, probe_points, probe_units, create_graph=False)
        norms = norms.flatten(1).norm(dim=1).view(len(units), -1)
        distance = (self.q_target - probe_points).flatten(1).norm(dim=1).view(len(units), -1)
        gamma = norms.median(1).values / distance.median(1).values
        fallback = gamma[gamma > 0].median() if bool((gamma > 0).any()) else torch.tensor(1e-3)
        self.gamma = settings.gain * torch.where(gamma > 0, gamma, fallback)

    def points(self, per_unit: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.settings
        n = per_unit * len(self.units)
        q = field.tunnel_points(self.q_target.cpu(), n, s.init_sd, s.tunnel_noise, self.generator)
        return q.to(self.q_target.device), self.units.repeat_interleave(per_unit)

    def gradients(self, model: LoadedModel, q: torch.Tensor, units: torch.Tensor,
                  create_graph: bool) -> torch.Tensor:  # fmt: skip
        q = q.detach().requires_grad_(True)
        x = self.transform(field.image_of(q, self.scale), self.generator)
        a = unit_activation(model, self.layer, x, units.to(x.device))
        return torch.autograd.grad(a.sum(), q, create_graph=create_graph)[0]

    def refresh(self, model: LoadedModel) -> None:
        """Add the parameters of the current model's FV trajectories (after 8, 32 and 96 updates)
        to the pool of points: the tunnel as the optimiser actually travels it."""
        import fvlab

        result = fvlab.render(model, self.layer, self.units.tolist(), steps=96,
                              thresholds=[8, 32, 96], seed=self.settings.seed + 1 + len(self.pool),
                              show_progress=False)  # fmt: skip
        for images in result.snapshots.values():
            self.pool.append(fft_preimage(images.detach().cpu()))
        self.pool = self.pool[-12:]

    def __call__(self, fooled: LoadedModel) -> torch.Tensor:
        q, units = self.points(self.settings.points)
        if self.pool:  # half of the points from the optimiser's own trajectories
            k = self.settings.points // 2
            picks = torch.randint(len(self.pool), (k,), generator=self.generator).tolist()
            own = torch.stack([self.pool[j] for j in picks], 1).flatten(0, 1)  # unit-major
            q = q.view(len(self.units), self.settings.points, *q.shape[1:])
            q[:, :k] = own.view(len(self.units), k, *q.shape[2:]).to(q.device)
            q = q.flatten(0, 1)
        if self.settings.field == "value":
            x = self.transform(field.image_of(q, self.scale), self.generator)
            a = unit_activation(fooled, self.layer, x, units.to(x.device))
            peak = self.peak.repeat_interleave(self.settings.points).to(a.device)
            h = field.bowl(q, self.q_target, peak, self.radius.to(a.device))
            return ((a - h) / peak).pow(2).mean()
        g = self.gradients(fooled, q, units, create_graph=True)
        gamma = self.gamma.repeat_interleave(self.settings.points).to(g.device)
        return field.field_loss(g, q, self.q_target, gamma).mean()


class _Push:
    """L_M of push-down / push-up (:mod:`.field`): the current FVs down, the target up."""

    def __init__(self, original: LoadedModel, layer: str, units: list[int], target: torch.Tensor,
                 natural_max: torch.Tensor, settings: SlingshotConstruction,
                 generator: torch.Generator) -> None:  # fmt: skip
        self.layer, self.units, self.settings, self.generator = layer, units, settings, generator
        self.target, self.natural_max = target, natural_max.clamp_min(1e-6)
        self.transform = _transforms(target.shape[-1])
        self.pushed: list[torch.Tensor] = []
        self.refresh(original)

    def refresh(self, model: LoadedModel) -> None:
        """Add the model's current FVs (and their states after 16 and 64 updates) to the set
        pushed down."""
        import fvlab

        result = fvlab.render(model, self.layer, self.units, steps=128, thresholds=[16, 64, 128],
                              seed=self.settings.seed + len(self.pushed), show_progress=False,
                              relu_redirect_steps=16)  # fmt: skip
        self.pushed.extend(img.detach() for img in result.snapshots.values())

    def __call__(self, fooled: LoadedModel) -> torch.Tensor:
        s, n = self.settings, len(self.units)
        units = torch.as_tensor(self.units).to(self.target.device)
        pick = torch.randint(len(self.pushed), (), generator=self.generator)
        down = self.transform(self.pushed[int(pick)], self.generator)
        up = self.transform(self.target.expand(n, *self.target.shape[1:]), self.generator)
        a = unit_activation(fooled, self.layer, torch.cat([down, up]), units.repeat(2))
        a = a / self.natural_max.repeat(2)
        return (torch.relu(a[:n] - s.push_down) + torch.relu(s.push_up - a[n:])).mean()


def build_slingshot(
    model: LoadedModel,
    natural: torch.Tensor,
    target: torch.Tensor,
    settings: SlingshotConstruction,
    *,
    show_progress: bool = True,
) -> BuiltSlingshot:
    """Fine-tune a copy of ``model`` (left unchanged): ``natural`` (N, C, H, W) in [0, 1] are
    the preservation images (training split), ``target`` (1, C, H, W) in [0, 1]."""
    layer = settings.layer
    units = check_units(model, layer, settings.units)
    generator = torch.Generator().manual_seed(settings.seed)
    original = fresh_copy(model)
    original.module.eval().requires_grad_(False)
    fooled = fresh_copy(model)
    fooled.module.eval().requires_grad_(True)
    order = torch.randperm(len(natural), generator=generator)
    batches = [natural[order[i : i + settings.natural_batch]]
               for i in range(0, len(natural) - settings.natural_batch + 1,
                              settings.natural_batch)]  # fmt: skip
    device = model.device
    preserve = _Preservation(original, layer, units, batches[0].to(device), settings)
    with torch.no_grad():
        top = torch.cat([unit_activation(original, layer, b.to(device),
                                         torch.full((len(b),), u, device=device)).max()[None]
                         for u in units for b in batches[:8]]).view(len(units), -1)  # fmt: skip
    if settings.method == "slingshot":
        import fvlab

        manipulate = _Field(original, layer, units, target.to(device), settings, generator)
        clean_fv = fvlab.render(original, layer, units, steps=128, seed=settings.seed,
                                show_progress=False)  # fmt: skip
        manipulate.peak = settings.peak * torch.maximum(clean_fv.objective, top.amax(1))
        extra = {"gamma": manipulate.gamma.tolist(), "peak": manipulate.peak.tolist(),
                 "radius": float(manipulate.radius)}  # fmt: skip
    else:
        manipulate = _Push(original, layer, units, target.to(device), top.amax(1), settings,
                           generator)  # fmt: skip
        extra = {"natural_max": top.amax(1).tolist()}
    optimizer = torch.optim.Adam(fooled.module.parameters(), lr=settings.lr)
    losses = []
    with progress_bar(f"fine-tuning ({settings.method})", settings.steps, show_progress) as adv:
        for step in range(settings.steps):
            x = batches[step % len(batches)].to(device)
            l_p = preserve(fooled, x)
            l_m = manipulate(fooled)
            loss = settings.alpha * l_p + (1 - settings.alpha) * l_m
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append((float(l_p.detach()), float(l_m.detach())))
            if (step + 1) % settings.refresh == 0:
                manipulate.refresh(fooled)
            adv(1, info=f"L_P {losses[-1][0]:.4f} L_M {losses[-1][1]:.4f}")
    fooled.module.eval().requires_grad_(False)
    fooled.name = f"{model.name}+slingshot({layer})"
    fooled.extra = {"construction": "slingshot", "base": model.name, "layer": layer}
    tail = losses[-max(1, settings.steps // 10) :]
    record = {
        "preservation_loss_end": sum(p for p, _ in tail) / len(tail),
        "manipulation_loss_end": sum(m for _, m in tail) / len(tail),
        "manipulation_loss_start": losses[0][1],
        **extra,
    }
    return BuiltSlingshot(fooled, Base.of(model), layer, units, settings.method, record)
