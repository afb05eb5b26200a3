"""``fvlab.render``: feature visualization of any unit(s) of any model in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from fvlab.errors import FvlabError
from fvlab.models.hooks import Capture, resolve_layers
from fvlab.optvis import objectives as obj
from fvlab.optvis.loop import Callback, OptimizerFactory, RenderResult, optimise
from fvlab.optvis.param import FFTImage, PhaseImage, PixelImage, estimate_magnitude
from fvlab.optvis.transforms import Transform, make_transforms

ParamName = Literal["fft", "pixel", "maco"]
#: lucid's update count for thresholds=(512,): 513 updates, see fvlab.optvis.loop.optimise
LUCID_STEPS = 512


def _loaded(model):
    from fvlab.models.zoo import LoadedModel

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, nn.Module):
        raise FvlabError(
            "render needs to know the model's input (channels, size, normalisation): wrap the "
            "module with fvlab.from_module(module, fvlab.InputSpec(channels=3, size=224, ...))"
        )
    raise FvlabError(f"expected a LoadedModel (fvlab.load(...)), got {type(model).__name__}")


def natural_magnitude(model, size: int, max_images: int = 2000) -> torch.Tensor:
    """Fourier magnitude of the model's own natural training images (for MACO)."""
    from fvlab.data.natural import open_dataset

    dataset = open_dataset(model, None, "train")
    return estimate_magnitude((x for x, _ in dataset.batches(500)), size, max_images)


def make_param(
    name: ParamName,
    batch: int,
    channels: int,
    size: int,
    generator: torch.Generator,
    *,
    decay_power: float = 1.0,
    init_sd: float = 0.01,
    magnitude: torch.Tensor | None = None,
) -> nn.Module:
    """Build a parameterization by name (see fvlab.optvis.param)."""
    if name == "fft":
        return FFTImage(
            batch, channels, size, sd=init_sd, decay_power=decay_power, generator=generator
        )
    if name == "pixel":
        return PixelImage(batch, channels, size, sd=init_sd, generator=generator)
    if name == "maco":
        if magnitude is None:
            raise FvlabError(
                "the maco parameterization needs a magnitude spectrum: pass "
                "magnitude=estimate_magnitude(natural_images, size)"
            )
        return PhaseImage(batch, channels, size, magnitude, generator=generator)
    raise FvlabError(f"unknown parameterization {name!r}; valid: fft, pixel, maco")


def _default_optimizer(param: str, lr: float | None) -> OptimizerFactory:
    if param == "maco":
        rate = 1.0 if lr is None else lr
        return lambda p: torch.optim.NAdam(p, lr=rate)
    rate = 0.05 if lr is None else lr
    return lambda p: torch.optim.Adam(p, lr=rate)


def _check_units(model, layer: str, unit_ids: Sequence[int], size: int) -> None:
    with torch.no_grad(), Capture(model.module, [layer], stop_early=False) as cap:
        model(torch.full((1, model.spec.channels, size, size), 0.5, device=model.device))
        n = cap[layer].shape[1]
    bad = [u for u in unit_ids if not 0 <= u < n]
    if bad:
        raise FvlabError(f"layer {layer!r} has {n} units (0–{n - 1}); out of range: {bad[:10]}")


def render(
    model,
    layer: str | None = None,
    units: Sequence[int] | None = None,
    *,
    objective: obj.Objective | None = None,
    batch: int | None = None,
    steps: int | None = None,
    size: int | None = None,
    param: ParamName = "fft",
    transforms: str | Transform = "standard",
    lr: float | None = None,
    optimizer: OptimizerFactory | None = None,
    seed: int = 0,
    thresholds: Sequence[int] | None = None,
    relu_redirect_steps: int = 0,
    callbacks: Sequence[Callback] = (),
    decay_power: float = 1.0,
    init_sd: float = 0.01,
    magnitude: torch.Tensor | None = None,
    preset: Literal["fvlab", "lucid"] = "fvlab",
    show_progress: bool = True,
) -> RenderResult:
    """Render feature visualizations.

    Either ``layer`` + ``units`` (element b maximises unit ``units[b]``: the spatial mean of a
    channel, or one output of a linear layer — many units in ONE optimisation), or an
    ``objective`` with a ``batch`` size. ``param``: 'fft' (default), 'pixel' or 'maco'.
    ``transforms``: 'standard' (sizes scale with the image), 'lucid', 'none' or a Transform.
    ``lr`` defaults to 0.05 (Adam), or 1.0 (NAdam) for 'maco'. ``optimizer`` takes a factory
    ``params -> torch.optim.Optimizer``. ``thresholds``: update counts at which to keep
    snapshots (``steps`` defaults to max(thresholds) if given, else 512).
    ``preset='lucid'`` reproduces lucid: lucid transforms, 513 updates for thresholds (512,),
    snapshot labelled 512.

    Example::

        model = fvlab.load("fmnist-cnn")
        result = fvlab.render(model, "fc", units=range(10))
        result.images  # (10, 1, 28, 28) in [0, 1]
    """
    model = _loaded(model)
    size = size or model.spec.size
    if objective is None:
        if layer is None or units is None:
            raise FvlabError("give either layer= and units=, or objective= (with batch=)")
        resolve_layers(model.module, [layer])
        unit_list = [int(u) for u in units]
        if not unit_list:
            raise FvlabError("units is empty; give at least one unit index")
        _check_units(model, layer, unit_list, size)
        objective = obj.units(layer, unit_list)
        batch = len(unit_list)
    else:
        resolve_layers(model.module, objective.layers)
        unit_list = None
        batch = batch or 1
    if thresholds:
        thresholds = sorted({int(t) for t in thresholds})
        if thresholds[0] < 1:
            raise FvlabError(f"thresholds must be update counts >= 1, got {thresholds}")
        steps = steps or max(thresholds)
        if max(thresholds) > steps:
            raise FvlabError(f"threshold {max(thresholds)} exceeds steps={steps}")
    steps = steps or LUCID_STEPS
    if steps < 1:
        raise FvlabError(f"steps must be >= 1, got {steps}")
    lucid_counting = preset == "lucid"
    if preset == "lucid":
        transforms = "lucid" if transforms == "standard" else transforms
        thresholds = thresholds or [steps]
        steps = max(thresholds) + 1
    if param == "maco" and magnitude is None:
        magnitude = natural_magnitude(model, size)
    device = model.device
    init_generator = torch.Generator().manual_seed(seed)
    image = make_param(
        param,
        batch,
        model.spec.channels,
        size,
        init_generator,
        decay_power=decay_power,
        init_sd=init_sd,
        magnitude=magnitude,
    ).to(device)
    transform = make_transforms(transforms, size).to(device)
    step_generator = torch.Generator(device=device).manual_seed(seed + 1)
    result = optimise(
        model,
        image,
        objective,
        transform,
        steps=steps,
        optimizer=optimizer or _default_optimizer(param, lr),
        generator=step_generator,
        thresholds=thresholds or (),
        lucid_counting=lucid_counting,
        relu_redirect_steps=relu_redirect_steps,
        callbacks=callbacks,
        show_progress=show_progress,
        description=f"rendering {objective.name}",
    )
    result.units = unit_list
    result.settings = {
        "param": param,
        "transforms": transforms if isinstance(transforms, str) else "custom",
        "steps": steps,
        "lr": lr,
        "seed": seed,
        "size": size,
        "batch": batch,
        "preset": preset,
        "relu_redirect_steps": relu_redirect_steps,
        "objective": objective.name,
    }
    return result
