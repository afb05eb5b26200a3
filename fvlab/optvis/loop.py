"""The render loop: optimise a parameterized image batch to maximise an objective.

Per update (:func:`_update`): image = param() → transforms (drawn per element from keyed
:class:`~fvlab.optvis.draws.Draws`: a unit's draws do not depend on its batch) → the model
(forward stops as soon as the objective's layers have run; channels-last layout) → activations,
plus the transformed image as ``"input"`` → loss = −Σ_b objective_b → gradients for the image
parameters only (never for the model's weights) → optimiser step. Then the step's bookkeeping:
the trace, snapshots at thresholds, the progress bar, callbacks. ReLU redirection is one scope
around the whole loop whose flag is switched off after ``relu_redirect_steps`` updates. No value
is copied to the host inside the loop unless a progress bar or a callback asks for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from fvlab.models.hooks import Capture
from fvlab.optvis.draws import Draws
from fvlab.optvis.objectives import INPUT, Objective
from fvlab.optvis.relu_redirect import ReluRedirection
from fvlab.optvis.transforms import Transform
from fvlab.progress import progress_bar

CHANNELS_LAST = torch.channels_last
#: the progress bar reads the objective back every this many updates
PROGRESS_EVERY = 32

#: A callback gets (step, current images (no grad), objective values (B,) on the device) after
#: each update and may return True to stop.
Callback = Callable[[int, torch.Tensor, torch.Tensor], bool | None]
OptimizerFactory = Callable[[Sequence[torch.Tensor]], torch.optim.Optimizer]


@dataclass
class RenderResult:
    """Images (B, C, H, W) in [0, 1] after the last update, snapshots per threshold, and the
    objective per element evaluated on the final, untransformed images. ``trace`` holds the
    (transformed) objective per update, shape (steps, B). ``settings`` is the JSON form of what
    was rendered (see :func:`fvlab.optvis.api.render`)."""

    images: torch.Tensor
    objective: torch.Tensor
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    trace: torch.Tensor | None = None
    units: list[int] | None = None
    steps_run: int = 0
    settings: dict = field(default_factory=dict)


def _values(
    cap: Capture,
    model,
    objective: Objective,
    images: torch.Tensor,
    layout: torch.memory_format = CHANNELS_LAST,
) -> torch.Tensor:
    """The objective of ``images`` (what the model sees): run the model only if the objective
    reads a module layer, and pass the image itself as ``"input"``."""
    layers = objective.model_layers
    if layers:
        # channels-last activations take the faster convolution kernels on CPU (about 1.4×
        # per step for GoogLeNet at 140 px, neutral for small models); weights untouched
        cap.run(model, images.contiguous(memory_format=layout))
    activations = {name: cap[name] for name in layers}
    if objective.reads_input:
        activations[INPUT] = images
    return objective(activations)


def _evaluate(model, objective: Objective, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), Capture(model.module, objective.model_layers) as cap:
        return _values(cap, model, objective, images, torch.contiguous_format)


@dataclass
class _Step:
    """What one update needs: the parts of the optimisation and the capture in use."""

    model: object
    param: nn.Module
    objective: Objective
    transform: Transform
    draws: Draws
    params: list[torch.Tensor]
    opt: torch.optim.Optimizer
    cap: Capture


def _update(s: _Step) -> torch.Tensor:
    """One optimiser update; returns the objective values (B,) before it, detached."""
    values = _values(s.cap, s.model, s.objective, s.transform(s.param(), s.draws))
    s.opt.zero_grad(set_to_none=True)
    (-values.sum()).backward(inputs=s.params)
    s.opt.step()
    return values.detach()


def _current(param: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return param().detach()


def _stop(callbacks: Sequence[Callback], step: int, param: nn.Module, values: torch.Tensor) -> bool:
    """Whether a callback asks to stop (each gets the current images; the first True wins)."""
    if not callbacks:
        return False
    current = _current(param)
    return any(bool(cb(step, current, values)) for cb in callbacks)


def optimise(
    model,
    param: nn.Module,
    objective: Objective,
    transform: Transform,
    *,
    steps: int,
    optimizer: OptimizerFactory,
    draws: Draws,
    thresholds: Sequence[int] = (),
    lucid_counting: bool = False,
    relu_redirect_steps: int = 0,
    callbacks: Sequence[Callback] = (),
    show_progress: bool = True,
    description: str = "rendering",
) -> RenderResult:
    """Run the optimisation; see the module docstring.

    ``steps`` is the number of updates. A snapshot for threshold t is taken after update t, or
    after update t + 1 with ``lucid_counting`` (lucid runs max(thresholds) + 1 updates and labels
    the snapshot after update t + 1 as t). ReLU redirection is on for updates
    1 … ``relu_redirect_steps``.
    """
    params = [p for p in param.parameters() if p.requires_grad]
    offset = 1 if lucid_counting else 0
    label_of = {t + offset: t for t in thresholds}
    snapshots: dict[int, torch.Tensor] = {}
    trace: list[torch.Tensor] = []
    steps_run = reported = 0
    redirect = ReluRedirection(model.module, enabled=relu_redirect_steps > 0)
    cap = Capture(model.module, objective.model_layers, stop_early=True)
    with cap, redirect, progress_bar(description, steps, show_progress) as advance:
        state = _Step(model, param, objective, transform, draws, params, optimizer(params), cap)
        for step in range(1, steps + 1):
            redirect.active = step <= relu_redirect_steps
            draws.at_step(step)
            values = _update(state)
            steps_run = step
            trace.append(values)
            if step in label_of:
                snapshots[label_of[step]] = _current(param).clone()
            if show_progress and (step % PROGRESS_EVERY == 0 or step == steps):
                advance(step - reported, info=f"objective {float(values.mean()):.3f}")
                reported = step
            if _stop(callbacks, step, param, values):
                break
    final = _current(param)
    return RenderResult(
        images=final.cpu(),
        objective=_evaluate(model, objective, final).detach().cpu(),
        snapshots={k: v.cpu() for k, v in sorted(snapshots.items())},
        trace=torch.stack(trace).cpu() if trace else None,
        steps_run=steps_run,
    )


def plateau(patience: int = 64, rel_tol: float = 1e-3, check_every: int = 16) -> Callback:
    """A callback that stops when the mean objective improved by less than ``rel_tol``
    (relative) over the last ``patience`` updates; it reads values every ``check_every`` steps."""
    history: list[tuple[int, float]] = []

    def callback(step: int, images: torch.Tensor, values: torch.Tensor) -> bool:
        if step % check_every:
            return False
        history.append((step, float(values.mean())))
        old = [v for s, v in history if s <= step - patience]
        if not old:
            return False
        best_old, now = max(old), history[-1][1]
        return now - best_old <= rel_tol * max(abs(best_old), 1e-8) and math.isfinite(now)

    return callback
