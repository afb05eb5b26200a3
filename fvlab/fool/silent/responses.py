"""The input a conv layer sees, and streaming statistics of a parallel conv over natural data.

:func:`layer_input` runs a model only as far as one module and returns that module's input
(a pre-hook stops the forward there). :func:`parallel_conv` copies a live conv module — its
class, stride, padding, dilation, padding mode, and any padding its own ``forward`` does (e.g.
TensorFlow 'SAME' padding in :class:`fvlab.models.inceptionv1.SameConv2d`) — with other filters,
so a response computed with the copy equals what the live layer would compute with those
filters. :func:`response_stats` streams a dataset once and keeps, for all filters at once, the
maximum and mean response over every image and every spatial position.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from fvlab.progress import progress_bar

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel


class _Stop(Exception):
    """Raised in a pre-hook to end a forward pass at the hooked module."""


def layer_input(loaded: LoadedModel, module: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The input of ``module`` when ``loaded`` (a LoadedModel) runs on ``images`` in [0, 1].

    The forward pass stops at ``module`` (first call), so later layers cost nothing.
    """
    box: dict[str, torch.Tensor] = {}

    def grab(_module: nn.Module, args: tuple) -> None:
        box["x"] = args[0]
        raise _Stop

    handle = module.register_forward_pre_hook(grab)
    try:
        loaded(images)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "x" not in box:
        raise RuntimeError("the module did not run in the forward pass")
    return box["x"]


def _strip_hooks(module: nn.Module) -> None:
    for sub in module.modules():
        for name, value in vars(sub).items():
            if name.endswith("hooks") and isinstance(value, dict):
                value.clear()


def parallel_conv(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    """A copy of ``conv`` (same class and padding rules, no hooks) with ``weight`` (n, C_in, kh,
    kw) and ``bias`` (n,) as fixed, non-trainable parameters; ``groups`` becomes 1, so a grouped
    conv's filters must be given densely (zeros outside the unit's group)."""
    branch = copy.deepcopy(conv)
    _strip_hooks(branch)
    branch.groups = 1
    branch.out_channels = weight.shape[0]
    branch.in_channels = weight.shape[1]
    branch.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
    branch.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
    return branch


def dense_filters(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv's filters as dense (C_out, C_in, kh, kw) tensors, and the 0/1 mask of the input
    channels each output channel sees (all ones unless ``groups`` > 1)."""
    weight = conv.weight.detach()
    out_ch, per_group = weight.shape[:2]
    groups = conv.groups
    if groups == 1:
        return weight.clone(), torch.ones_like(weight)
    group_of_unit = torch.arange(out_ch, device=weight.device) // (out_ch // groups)
    columns = group_of_unit[:, None] * per_group + torch.arange(per_group, device=weight.device)
    index = columns.view(out_ch, per_group, 1, 1).expand_as(weight)
    dense = weight.new_zeros(out_ch, per_group * groups, *weight.shape[2:])
    dense.scatter_(1, index, weight)
    mask = torch.zeros_like(dense).scatter_(1, index, torch.ones_like(weight))
    return dense, mask


def patch_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A parallel conv whose D = C_in·kh·kw one-hot filters return, at every output position,
    the input patch the live conv sees there (its padding included): an unfold that obeys
    any padding rule of the live module."""
    if conv.groups != 1:
        raise ValueError("patch_conv needs a conv with groups == 1")
    shape = (conv.in_channels, *conv.kernel_size)
    size = shape[0] * shape[1] * shape[2]
    eye = torch.eye(size, dtype=conv.weight.dtype, device=conv.weight.device)
    return parallel_conv(conv, eye.view(size, *shape), None)


@dataclass(frozen=True)
class PatchStats:
    """Mean (D,) and covariance (D, D) of the input patches of a conv over natural images."""

    mean: torch.Tensor
    cov: torch.Tensor
    n_patches: int


@torch.no_grad()
def patch_stats(
    loaded: LoadedModel,
    conv: nn.Conv2d,
    data,
    max_images: int = 5000,
    batch_size: int = 250,
    pooled: bool = False,
) -> PatchStats:
    """Streaming mean and covariance (float64) of the conv's input patches over the first
    ``max_images`` natural images, all positions (``pooled``: of each image's mean patch)."""
    patcher = patch_conv(conv)
    size = patcher.out_channels
    total = torch.zeros(size, dtype=torch.float64)
    outer = torch.zeros(size, size, dtype=torch.float64)
    count = seen = 0
    for images in _batches(data, batch_size):
        images = images[: max_images - seen]
        patches = patcher(layer_input(loaded, conv, images.to(loaded.device)))
        if pooled:
            patches = patches.mean(dim=(2, 3), keepdim=True)
        flat = patches.permute(0, 2, 3, 1).reshape(-1, size).to("cpu", torch.float64)
        total += flat.sum(0)
        outer += flat.T @ flat
        count += flat.shape[0]
        seen += images.shape[0]
        if seen >= max_images:
            break
    if count == 0:
        raise ValueError("the natural data is empty")
    mean = total / count
    return PatchStats(mean, outer / count - torch.outer(mean, mean), count)


@torch.no_grad()
def mean_patch(conv: nn.Conv2d, conv_input: torch.Tensor) -> torch.Tensor:
    """The average input patch (D,) of the conv over the positions of ``conv_input``."""
    patches = patch_conv(conv)(conv_input)
    return patches.mean(dim=(0, 2, 3)).to("cpu", torch.float64)


@dataclass(frozen=True)
class ResponseStats:
    """Per filter: max and mean of the response over all images and positions; image count."""

    max: torch.Tensor
    mean: torch.Tensor
    n_images: int


def _batches(data, batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(data, torch.Tensor):
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size]
        return
    for images, *_ in data.batches(batch_size):
        yield images


@torch.no_grad()
def response_stats(
    loaded: LoadedModel,
    conv: nn.Module,
    branch: nn.Module,
    data,
    batch_size: int = 500,
    show_progress: bool = True,
    pooled: bool = False,
) -> ResponseStats:
    """Stream ``data`` (a dataset with ``.batches(n)`` or an image tensor (N, C, H, W) in [0, 1])
    once: r = branch(input of ``conv``), all filters at once; return max and mean of r over
    images and positions (float64 accumulation for the mean). ``pooled``: r is first averaged
    over the positions of each image (max and mean over images of the spatial mean)."""
    device = loaded.device
    running_max: torch.Tensor | None = None
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    n_images = 0
    with progress_bar("natural maxima", len(data), show_progress) as advance:
        for images in _batches(data, batch_size):
            response = branch(layer_input(loaded, conv, images.to(device)))
            if pooled:
                response = response.mean(dim=(2, 3), keepdim=True)
            batch_max = response.amax(dim=(0, 2, 3))
            running_max = (
                batch_max if running_max is None else torch.maximum(running_max, batch_max)
            )
            sums = response.sum(dim=(0, 2, 3), dtype=torch.float64)
            total = sums if count == 0 else total + sums
            count += response.shape[0] * response.shape[2] * response.shape[3]
            n_images += images.shape[0]
            advance(images.shape[0])
    if running_max is None:
        raise ValueError("the natural data is empty")
    return ResponseStats(running_max.cpu(), (total / count).float().cpu(), n_images)
