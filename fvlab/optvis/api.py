"""``fvlab.render``: feature visualization of any unit(s) of any model in one call.

``render`` is four named steps: the settings (a :class:`RenderSettings`, with keyword
overrides), the objective (units of a layer, checked against the model, or a given objective),
the image parameterization and transforms (names or modules), and the loop
(:func:`fvlab.optvis.loop.optimise`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fvlab.errors import FvlabError
from fvlab.models.hooks import resolve_layers
from fvlab.models.probe import check_units
from fvlab.optvis import objectives as obj
from fvlab.optvis.draws import Draws
from fvlab.optvis.loop import Callback, OptimizerFactory, RenderResult, optimise
from fvlab.optvis.param import PhaseImage, estimate_magnitude, make_param
from fvlab.optvis.settings import FIELDS, LUCID, RenderSettings
from fvlab.optvis.transforms import Transform, make_transforms

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

__all__ = ["LUCID", "RenderResult", "RenderSettings", "make_param", "natural_magnitude", "render"]


def _loaded(model) -> LoadedModel:
    from fvlab.models.zoo import LoadedModel

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, nn.Module):
        raise FvlabError(
            "render needs to know the model's input (channels, size, normalisation): wrap the "
            "module with fvlab.from_module(module, fvlab.InputSpec(channels=3, size=224, ...))"
        )
    raise FvlabError(f"expected a LoadedModel (fvlab.load(...)), got {type(model).__name__}")


def natural_magnitude(model: LoadedModel, size: int, max_images: int = 2000) -> torch.Tensor:
    """Fourier magnitude of the model's own natural training images (for MACO)."""
    from fvlab.data.natural import open_dataset

    dataset = open_dataset(model, None, "train")
    return estimate_magnitude((x for x, _ in dataset.batches(500)), size, max_images)


def _settings(
    settings: RenderSettings | None, preset: str | None, overrides: dict[str, Any]
) -> RenderSettings:
    """``settings`` (default :class:`RenderSettings`) or the named ``preset``, with overrides."""
    unknown = sorted(set(overrides) - FIELDS)
    if unknown:
        raise TypeError(
            f"render() got unexpected keyword arguments {unknown}; "
            f"settings are {', '.join(sorted(FIELDS))}"
        )
    if preset is not None:
        if settings is not None:
            raise FvlabError("give either settings= or preset=, not both")
        return RenderSettings.from_preset(preset, **overrides)
    return (settings or RenderSettings()).replace(**overrides)


def _objective(
    model: LoadedModel,
    layer: str | None,
    units: Sequence[int] | None,
    objective: obj.Objective | None,
    batch: int | None,
    size: int,
) -> tuple[obj.Objective, list[int] | None, int]:
    """(objective, unit list or None, batch size): units of ``layer`` (checked against the
    model), or the given ``objective`` with ``batch`` elements (default 1)."""
    if objective is not None:
        resolve_layers(model.module, objective.model_layers)
        return objective, None, batch or 1
    if layer is None or units is None:
        raise FvlabError("give either layer= and units=, or objective= (with batch=)")
    unit_list = check_units(model, layer, list(units), size)
    return obj.units(layer, unit_list), unit_list, len(unit_list)


def _image(
    model: LoadedModel,
    settings: RenderSettings,
    param: nn.Module | None,
    batch: int,
    size: int,
    magnitude: torch.Tensor | None,
    draws: Draws,
) -> nn.Module:
    """The parameterization: ``param`` if a module is given (its output shape checked), else
    :func:`make_param` of ``settings.param`` started from ``draws`` at step 0."""
    channels = model.spec.channels
    if param is not None:
        module = param.to(model.device)
        with torch.no_grad():
            shape = tuple(module().shape)
        if len(shape) != 4 or shape[:2] != (batch, channels):
            raise FvlabError(
                f"param: the module returns images of shape {shape}; expected "
                f"({batch}, {channels}, H, W) — one image per batch element, the model's channels"
            )
        if not any(p.requires_grad for p in module.parameters()):
            raise FvlabError("param: the module has no parameters with requires_grad to optimise")
        return module
    if settings.param == "maco" and magnitude is None:
        magnitude = natural_magnitude(model, size)
    return make_param(
        settings.param,
        batch,
        channels,
        size,
        draws.at_step(0),
        decay_power=settings.decay_power,
        init_sd=settings.init_sd,
        magnitude=magnitude,
    ).to(model.device)


def _draws(
    seed: int, units: list[int] | None, batch: int, device, keys: Sequence[int] | None = None
) -> Draws:
    """Element b's random numbers keyed by its unit (and which repeat of that unit it is), or
    by its position (or ``keys[b]``) when an objective is rendered (:mod:`fvlab.optvis.draws`)."""
    if units is None:
        if keys is not None and len(keys) != batch:
            raise FvlabError(f"keys: got {len(keys)} draw keys for a batch of {batch}")
        return Draws(seed, range(batch) if keys is None else list(keys), device=device)
    seen: dict[int, int] = {}
    repeats = []
    for unit in units:
        repeats.append(seen.get(unit, 0))
        seen[unit] = repeats[-1] + 1
    return Draws(seed, units, device=device, repeats=repeats)


def _default_optimizer(image: nn.Module, lr: float | None) -> OptimizerFactory:
    """Adam, lr 0.05; NAdam, lr 1.0 for MACO's phase (:class:`PhaseImage`)."""
    if isinstance(image, PhaseImage):
        rate = 1.0 if lr is None else lr
        return lambda p: torch.optim.NAdam(p, lr=rate)
    rate = 0.05 if lr is None else lr
    return lambda p: torch.optim.Adam(p, lr=rate)


def render(
    model: LoadedModel,
    layer: str | None = None,
    units: Sequence[int] | None = None,
    *,
    objective: obj.Objective | None = None,
    batch: int | None = None,
    settings: RenderSettings | None = None,
    param: str | nn.Module | None = None,
    transforms: str | Transform | None = None,
    optimizer: OptimizerFactory | None = None,
    magnitude: torch.Tensor | None = None,
    callbacks: Sequence[Callback] = (),
    preset: str | None = None,
    show_progress: bool = True,
    keys: Sequence[int] | None = None,
    **overrides: Any,
) -> RenderResult:
    """Render feature visualizations.

    Either ``layer`` + ``units`` (element b maximises unit ``units[b]``: the spatial mean of a
    channel, or one output of a linear layer — many units in ONE optimisation), or an
    ``objective`` with a ``batch`` size.

    ``settings`` (a :class:`RenderSettings`; default its defaults) says how; any of its fields
    can be overridden by keyword (``steps=``, ``seed=``, ``size=``, ``lr=``, ``thresholds=``,
    ``relu_redirect_steps=``, ``decay_power=``, ``init_sd=``, …). ``param`` is a name ('fft',
    'pixel', 'maco') or an ``nn.Module`` whose ``forward()`` returns (B, C, H, W) in [0, 1];
    ``transforms`` a name ('standard', 'lucid', 'none') or a :class:`Transform`. ``optimizer``
    takes a factory ``params -> torch.optim.Optimizer``; ``magnitude`` is MACO's spectrum
    (default: estimated from the model's training images); ``callbacks`` see
    :data:`fvlab.optvis.loop.Callback`. ``preset='lucid'`` is ``settings=LUCID`` (kept for
    compatibility; see :meth:`RenderSettings.from_preset`). ``keys``: with an ``objective``,
    element b's draw key (default b), e.g. its position in a larger render split into shards.

    ``result.settings`` is the JSON form of the render: param, transforms ('custom' for a
    module), steps (updates run), lr, seed, size, batch, preset, relu_redirect_steps, objective.

    Example::

        model = fvlab.load("fmnist-cnn")
        result = fvlab.render(model, "fc", units=range(10))
        result.images  # (10, 1, 28, 28) in [0, 1]
    """
    model = _loaded(model)
    names = {k: v for k, v in (("param", param), ("transforms", transforms)) if isinstance(v, str)}
    settings = _settings(settings, preset, {**overrides, **names})
    size = settings.size or model.spec.size
    objective, unit_list, batch = _objective(model, layer, units, objective, batch, size)
    param_module = param if isinstance(param, nn.Module) else None
    if param is not None and param_module is None and not isinstance(param, str):
        raise FvlabError(f"param: expected a name or an nn.Module, got {type(param).__name__}")
    draws = _draws(settings.seed, unit_list, batch, model.device, keys)
    image = _image(model, settings, param_module, batch, size, magnitude, draws)
    custom_transform = isinstance(transforms, Transform)
    transform = transforms if custom_transform else make_transforms(settings.transforms, size)
    updates, thresholds = settings.schedule()
    result = optimise(
        model,
        image,
        objective,
        transform.to(model.device),
        steps=updates,
        optimizer=optimizer or _default_optimizer(image, settings.lr),
        draws=draws,
        thresholds=thresholds,
        lucid_counting=settings.lucid_counting,
        relu_redirect_steps=settings.relu_redirect_steps,
        callbacks=callbacks,
        show_progress=show_progress,
        description=f"rendering {objective.name}",
    )
    result.units = unit_list
    result.settings = {
        "param": "custom" if param_module is not None else settings.param,
        "transforms": "custom" if custom_transform else settings.transforms,
        "steps": updates,
        "lr": settings.lr,
        "seed": settings.seed,
        "size": int(result.images.shape[-1]) if param_module is not None else size,
        "batch": batch,
        "preset": settings.preset,
        "relu_redirect_steps": settings.relu_redirect_steps,
        "objective": objective.name,
    }
    return result
