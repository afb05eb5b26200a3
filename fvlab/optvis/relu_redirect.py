"""lucid's ReLU-gradient redirection, scoped to a ``with`` block.

For an element of the batch whose true ReLU gradient is all zero (every unit of that layer is
dead for it), the gradient is passed through anyway, except where it would push an already
negative input further down (x < 0 and ∂L/∂y > 0 under minimisation). Elements with any true
gradient keep it. Applies to ``nn.ReLU`` modules (not functional ``F.relu`` calls); in-place ReLUs
are switched to out-of-place inside the block and restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def redirect_relu_gradients(model: nn.Module) -> Iterator[int]:
    """Within the block every ``nn.ReLU`` of ``model`` uses :func:`redirected_relu`.

    Yields the number of ReLU modules affected.
    """
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    inplace = [m.inplace for m in relus]
    handles = []
    try:
        for module in relus:
            module.inplace = False
            # prepend: run before any other forward hook of the module (a Capture reading this
            # ReLU's output, a fooling circuit replacing it) so they all see the redirected value
            handles.append(
                module.register_forward_hook(
                    lambda mod, args, out: redirected_relu(args[0]), prepend=True
                )
            )
        yield len(relus)
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in zip(relus, inplace, strict=True):
            module.inplace = flag
