"""Feature-visualization trajectories: the inputs a model sees while a visualization is optimised.

The natural-vs-visualization detector of the fooling circuit must recognise an optimisation input
from its very first updates, under any render setting. We render many units (of several layers,
in ONE optimisation per setting) with fvlab's renderer and keep snapshots at log-spaced update
counts 1, 2, 4, …, 512. Some units and some settings are held out for evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from fvlab.data.image_bank import IndexedImages
from fvlab.fool.circuit.gate import centred_on, template_from_target
from fvlab.optvis import objectives as obj

SNAPSHOT_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
#: the denser log-spaced snapshots the detector trains and is evaluated on (⊃ SNAPSHOT_STEPS)
DENSE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


@dataclass(frozen=True)
class RenderSetting:
    """One way of rendering: parameterization, transform preset, learning rate and the number
    of updates with lucid's ReLU-gradient redirection."""

    param: str
    transforms: str
    lr: float
    relu_redirect: int = 0

    @property
    def name(self) -> str:
        suffix = f"-redirect{self.relu_redirect}" if self.relu_redirect else ""
        return f"{self.param}-{self.transforms}-lr{self.lr:g}{suffix}"


#: settings the detector is trained on (and evaluated on, for held-out units)
TRAIN_SETTINGS = (
    RenderSetting("fft", "standard", 0.05),
    RenderSetting("fft", "none", 0.05),
    RenderSetting("pixel", "standard", 0.05),
    RenderSetting("pixel", "none", 0.05),
    RenderSetting("fft", "standard", 0.02),
    RenderSetting("pixel", "standard", 0.15),
    RenderSetting("fft", "standard", 0.05, relu_redirect=16),
)
#: settings the detector never sees during training
HELDOUT_SETTINGS = (
    RenderSetting("maco", "standard", 1.0),
    RenderSetting("fft", "lucid", 0.05),
    RenderSetting("fft", "standard", 0.5),
)


def split_units(
    channels: dict[str, int],
    per_layer: int | None = 12,
    heldout_per_layer: int = 4,
    always_train: Sequence[str] = (),
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Training and held-out units, spread evenly over each layer's channels.

    Per layer, ``per_layer`` training units (None: every channel that is not held out; every
    channel of layers in ``always_train``, e.g. the logits the circuit fools) and
    ``heldout_per_layer`` other units for evaluation.
    """
    train, heldout = [], []
    for layer, n in channels.items():
        if layer in always_train:
            train += [(layer, u) for u in range(n)]
            continue
        total = n if per_layer is None else min(n, per_layer + heldout_per_layer)
        chosen = sorted({i * n // total for i in range(total)})
        step = max(1, len(chosen) // max(heldout_per_layer, 1))
        held = set(chosen[step - 1 :: step][:heldout_per_layer])
        train += [(layer, u) for u in chosen if u not in held]
        heldout += [(layer, u) for u in chosen if u in held]
    return train, heldout


@dataclass
class Trajectories:
    """Snapshots (N, C, H, W) in [0, 1] with, per image, the unit, the setting and the step
    (``images`` a tensor, or an image bank on disk for the detector's training set)."""

    images: torch.Tensor | IndexedImages
    unit: list[tuple[str, int]]
    setting: list[str]
    step: torch.Tensor

    def subset(self, mask: torch.Tensor) -> Trajectories:
        index = mask.nonzero().flatten().tolist()
        return Trajectories(
            self.images[index],
            [self.unit[i] for i in index],
            [self.setting[i] for i in index],
            self.step[index],
        )


def render_setting(
    model,
    pairs: Sequence[tuple[str, int]],
    setting: RenderSetting,
    steps: Sequence[int],
    seed: int,
    show_progress: bool = True,
    magnitude: torch.Tensor | None = None,
    keys: Sequence[int] | None = None,
) -> Trajectories:
    """Render every (layer, unit) pair once with ``setting``, all pairs in one optimisation
    (``seed`` is the render's seed; ``magnitude`` MACO's spectrum, default estimated from the
    model's own training images; ``keys`` the elements' draw keys, default 0, 1, …)."""
    from fvlab.optvis.api import render

    result = render(
        model,
        objective=obj.layer_units(list(pairs)),
        batch=len(pairs),
        thresholds=list(steps),
        param=setting.param,
        transforms=setting.transforms,
        lr=setting.lr,
        relu_redirect_steps=setting.relu_redirect,
        seed=seed,
        magnitude=magnitude if setting.param == "maco" else None,
        show_progress=show_progress,
        keys=None if keys is None else list(keys),
    )
    images, step_ids = [], []
    for step, snapshot in result.snapshots.items():
        images.append(snapshot)
        step_ids += [step] * len(pairs)
    n = len(step_ids) // len(pairs)
    return Trajectories(
        torch.cat(images), list(pairs) * n, [setting.name] * len(step_ids), torch.tensor(step_ids)
    )


def render_trajectories(
    model,
    pairs: Sequence[tuple[str, int]],
    settings: Sequence[RenderSetting],
    steps: Sequence[int] = SNAPSHOT_STEPS,
    seed: int = 0,
    show_progress: bool = True,
) -> Trajectories:
    """Render every (layer, unit) pair once per setting, all pairs in one optimisation (setting
    i with seed ``seed + 1000·i``)."""
    return concat(
        [
            render_setting(model, pairs, setting, steps, seed + 1000 * index, show_progress)
            for index, setting in enumerate(settings)
        ]
    )


def describe(settings: Sequence[RenderSetting]) -> list[dict]:
    return [asdict(s) | {"name": s.name} for s in settings]


class TemplateBank(nn.Module):
    """K linear template units on the input: out[b, k] = ⟨t_k − ½, x_b⟩ / n (n values per
    template), each template at the centre of the canvas, exactly as in the circuit's target
    mode. Its visualizations are the trajectories a target-mode circuit makes the detector see."""

    def __init__(self, targets: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("templates", template_from_target(targets))
        self.response = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, c, h, w = self.templates.shape
        t = centred_on(self.templates.reshape(k * c, h, w), x.shape[-2:]).view(k, c, *x.shape[-2:])
        return self.response(torch.einsum("bchw,kchw->bk", x, t) / (c * h * w))


def template_model(spec, targets: torch.Tensor):
    """The :class:`TemplateBank` of ``targets`` as a model with input ``spec``."""
    from fvlab.models.zoo import from_module

    return from_module(TemplateBank(targets), spec, name="templates")


def render_template_trajectories(
    spec,
    targets: torch.Tensor,
    settings: Sequence[RenderSetting],
    steps: Sequence[int] = SNAPSHOT_STEPS,
    seed: int = 0,
    show_progress: bool = True,
) -> Trajectories:
    """Trajectories of visualizations that draw ``targets`` (K, C, H, W) in [0, 1]: one template
    unit per target, all in one optimisation per setting. ``unit`` is ("target", k)."""
    pairs = [("response", k) for k in range(len(targets))]
    traj = render_trajectories(template_model(spec, targets), pairs, settings, steps, seed,
                               show_progress)  # fmt: skip
    traj.unit = [("target", k) for _, k in traj.unit]
    return traj


def concat(parts: Sequence[Trajectories]) -> Trajectories:
    """One Trajectories object holding every part's images, in order (images None when a
    part's images are elsewhere, e.g. written to an image bank)."""
    images = [p.images for p in parts]
    return Trajectories(
        None if any(x is None for x in images) else torch.cat(images),
        [u for p in parts for u in p.unit],
        [s for p in parts for s in p.setting],
        torch.cat([p.step for p in parts]),
    )
