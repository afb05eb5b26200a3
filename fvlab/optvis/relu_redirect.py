"""lucid's ReLU-gradient redirection, scoped to a ``with`` block and switched by a flag.

For an element of the batch whose true ReLU gradient is all zero (every unit of that layer is
dead for it), the gradient is passed through anyway, except where it would push an already
negative input further down (x < 0 and ∂L/∂y > 0 under minimisation). Elements with any true
gradient keep it. Applies to ``nn.ReLU`` modules (not functional ``F.relu`` calls); in-place ReLUs
are switched to out-of-place inside the block and restored afterwards.

:class:`ReluRedirection` installs its hooks once; its ``active`` flag (a plain Python bool, so
flipping it costs no device synchronisation) says whether they redirect. The render loop sets
``active = step <= relu_redirect_steps`` at every update instead of leaving and re-entering scopes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _RedirectedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        (x,) = ctx.saved_tensors
        true_grad = grad * (x > 0)
        redirected = torch.where((x < 0) & (grad > 0), torch.zeros_like(grad), grad)
        alive = true_grad.flatten(1).abs().amax(1) > 0
        alive = alive.view(-1, *([1] * (grad.ndim - 1)))
        return torch.where(alive, true_grad, redirected)


def redirected_relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU whose backward pass is redirected as described in the module docstring."""
    return _RedirectedReLU.apply(x)


class ReluRedirection:
    """Within the ``with`` block, every ``nn.ReLU`` of ``model`` uses :func:`redirected_relu`
    while ``active`` is True (and the plain ReLU while it is False). ``count`` is the number of
    ReLU modules affected. ``enabled=False`` installs nothing (``active`` then has no effect)."""

    def __init__(self, model: nn.Module, *, enabled: bool = True, active: bool = True) -> None:
        self.relus = [m for m in model.modules() if isinstance(m, nn.ReLU)] if enabled else []
        self.active = active
        self._inplace = [m.inplace for m in self.relus]
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    @property
    def count(self) -> int:
        return len(self.relus)

    def _hook(self, module: nn.Module, args: tuple, output: Any) -> torch.Tensor | None:
        return redirected_relu(args[0]) if self.active else None

    def __enter__(self) -> ReluRedirection:
        try:
            for module in self.relus:
                module.inplace = False
                # prepend: run before any other forward hook of the module (a Capture reading
                # this ReLU's output, a fooling circuit replacing it): all see the redirection
                self._handles.append(module.register_forward_hook(self._hook, prepend=True))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module, flag in zip(self.relus, self._inplace, strict=True):
            module.inplace = flag


def redirect_relu_gradients(model: nn.Module) -> ReluRedirection:
    """``with redirect_relu_gradients(model) as r:`` — redirection on for the whole block
    (``r.count`` ReLU modules)."""
    return ReluRedirection(model)
