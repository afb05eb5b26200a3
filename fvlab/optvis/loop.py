"""The render loop: optimise a parameterized image batch to maximise an objective.

Per step: image = param() → transforms (drawn per element) → channels-last layout → model
(forward stops as soon as the objective's layers have run) → loss = −Σ_b objective_b →
gradients for the image parameters only (never for the model's weights) → optimiser step. No
value is copied to the host inside the loop unless a progress bar or a callback asks for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
from torch import nn

from fvlab.models.hooks import Capture
from fvlab.optvis.objectives import Objective
from fvlab.optvis.relu_redirect import redirect_relu_gradients
from fvlab.optvis.transforms import Transform
from fvlab.progress import progress_bar

CHANNELS_LAST = torch.channels_last

#: A callback gets (step, current images (no grad), objective values (B,) on the device) after
#: each update and may return True to stop.
Callback = Callable[[int, torch.Tensor, torch.Tensor], bool | None]
OptimizerFactory = Callable[[Sequence[torch.Tensor]], torch.optim.Optimizer]


@dataclass
class RenderResult:
    """Images (B, C, H, W) in [0, 1] after the last update, snapshots per threshold, and the
    objective per element evaluated on the final, untransformed images. ``trace`` holds the
    (transformed) objective per update, shape (steps, B)."""

    images: torch.Tensor
    objective: torch.Tensor
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    trace: torch.Tensor | None = None
    units: list[int] | None = None
    steps_run: int = 0
    settings: dict = field(default_factory=dict)


def _evaluate(model, objective: Objective, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), Capture(model.module, objective.layers, stop_early=False) as cap:
        model(images)
        return objective({name: cap[name] for name in objective.layers})


def optimise(
    model,
    param: nn.Module,
    objective: Objective,
    transform: Transform,
    *,
    steps: int,
    optimizer: OptimizerFactory,
    generator: torch.Generator,
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
    the snapshot after update t + 1 as t).
    """
    params = [p for p in param.parameters() if p.requires_grad]
    opt = optimizer(params)
    offset = 1 if lucid_counting else 0
    wanted = {t + offset: t for t in thresholds}
    snapshots: dict[int, torch.Tensor] = {}
    trace: list[torch.Tensor] = []
    layers = objective.layers
    steps_run = reported = 0
    with ExitStack() as stack, progress_bar(description, steps, show_progress) as advance:
        cap = stack.enter_context(Capture(model.module, layers, stop_early=True))
        redirect = (
            stack.enter_context(redirect_relu_gradients(model.module))
            if relu_redirect_steps > 0
            else None
        )
        for step in range(1, steps + 1):
            if redirect is not None and step == relu_redirect_steps + 1:
                stack.close()  # leaves the redirection scope (and the capture; re-enter it)
                cap = stack.enter_context(Capture(model.module, layers, stop_early=True))
                redirect = None
            images = param()
            # channels-last activations take the faster convolution kernels on CPU (about 1.4×
            # per step for GoogLeNet at 140 px, neutral for small models); weights untouched
            cap.run(model, transform(images, generator).contiguous(memory_format=CHANNELS_LAST))
            values = objective({name: cap[name] for name in layers})
            loss = -values.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward(inputs=params)
            opt.step()
            steps_run = step
            detached = values.detach()
            trace.append(detached)
            if step in wanted:
                with torch.no_grad():
                    snapshots[wanted[step]] = param().detach().clone()
            if show_progress and (step % 32 == 0 or step == steps):
                advance(step - reported, info=f"objective {float(detached.mean()):.3f}")
                reported = step
            stop = False
            if callbacks:
                with torch.no_grad():
                    current = param().detach()
                stop = any(bool(cb(step, current, detached)) for cb in callbacks)
            if stop:
                break
    with torch.no_grad():
        final = param().detach()
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
