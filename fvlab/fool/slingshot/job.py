"""The ``fvlab fool slingshot`` job: fine-tune the weights (:mod:`.build`), measure natural
behaviour, preservation and fooling — also under FV procedures the fine-tuning never saw — and
save the fooled model, the grid and summary.json.

    run_slingshot(model, SlingshotSettings(layer="relu3", units=(0, 8), target="builtin:smiley"),
                  out) -> SlingshotResult
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from fvlab.errors import FvlabError
from fvlab.fool.install import FooledResult
from fvlab.fool.measures import summarise
from fvlab.fool.slingshot.build import BuiltSlingshot, SlingshotConstruction, build_slingshot
from fvlab.fool.slingshot.evaluate import (
    fv_measures,
    natural_behaviour,
    preservation_r2,
    share_fooled,
)
from fvlab.jobs import OutDir, SettingsError, at_least, finish

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

#: FV procedures of the survival report: name → render overrides (the fine-tuning saw only
#: the default: FFT parameterization, standard transforms, Adam lr 0.05, from noise)
SURVIVAL = {
    "pixel": {"param": "pixel"},
    "maco": {"param": "maco"},
    "seed+1": {"seed_offset": 1},
    "seed+2": {"seed_offset": 2},
    "lr 0.1": {"lr": 0.1},
    "steps 128": {"steps": 128},
    "steps 1024": {"steps": 1024},
    "lucid transforms": {"transforms": "lucid"},
}


@dataclass(frozen=True)
class SlingshotSettings(SlingshotConstruction):
    """The job: the construction (:class:`SlingshotConstruction`) plus ``target`` (an image
    file, ``builtin:NAME`` or ``LAYER:IDX``), ``natural_limit`` (training images used for
    preservation), ``fv_steps`` (render updates of the evaluation), ``feature_layer`` (the
    feature-space measure's layer; default: the layer before ``layer`` in forward order) and
    ``survival`` (also render with the procedures of :data:`SURVIVAL`)."""

    target: str = "builtin:smiley"
    natural_limit: int = 10000
    fv_steps: int = 512
    feature_layer: str | None = None
    survival: bool = True

    def validate(self) -> None:
        super().validate()
        if not self.target:
            raise SettingsError("target", "give an image file, builtin:NAME or LAYER:IDX")
        at_least("natural_limit", self.natural_limit, 256)
        at_least("fv_steps", self.fv_steps, 1)


@dataclass
class SlingshotResult(FooledResult):
    """The fine-tuned model, the grid and the figures (see :class:`FooledResult`)."""

    built: BuiltSlingshot


def _feature_layer(model: LoadedModel, layer: str, given: str | None) -> str:
    from fvlab.models.probe import forward_order

    if given is not None:
        return given
    order = forward_order(model)
    return order[max(order.index(layer) - 1, 0)] if layer in order else layer


def _render(model: LoadedModel, settings: SlingshotSettings, units, show_progress, **options):
    import fvlab

    seed = settings.seed + options.pop("seed_offset", 0)
    steps = options.pop("steps", settings.fv_steps)
    return fvlab.render(model, settings.layer, units, steps=steps, seed=seed,
                        show_progress=show_progress, **options)  # fmt: skip


def run_slingshot(
    model: LoadedModel, settings: SlingshotSettings, out: OutDir = None, *,
    show_progress: bool = True,
) -> SlingshotResult:  # fmt: skip
    """Fine-tune a copy of ``model`` and measure it (module docstring)."""
    from fvlab.data.natural import open_dataset
    from fvlab.fool.targets import resolve_target

    train = open_dataset(model, None, "train")
    test = open_dataset(model, None, "test")
    if len(train) < settings.natural_batch:
        raise FvlabError(f"the training split has {len(train)} images; need >= natural_batch")
    train = train.slice(0, min(settings.natural_limit, len(train)))
    natural = torch.cat([x for x, _ in train.batches(1000)])
    test_x, test_y = (torch.cat(part) for part in zip(*test.batches(1000), strict=True))
    target, target_info = resolve_target(model, settings.target, seed=settings.seed,
                                         show_progress=show_progress)  # fmt: skip
    built = build_slingshot(model, natural, target, settings, show_progress=show_progress)
    fooled, units = built.model, built.units
    feature_layer = _feature_layer(model, settings.layer, settings.feature_layer)
    originals = _render(model, settings, units, show_progress)
    fooled_fv = _render(fooled, settings, units, show_progress)
    rows = fv_measures(model, units, fooled_fv.images, target, originals.images, feature_layer)
    for row, a_o, a_f in zip(rows, originals.objective, fooled_fv.objective, strict=True):
        row["fv_activation_original"], row["fv_activation_fooled"] = float(a_o), float(a_f)
    survival = {}
    if settings.survival:
        for name, options in SURVIVAL.items():
            orig = _render(model, settings, units, show_progress, **dict(options))
            fool = _render(fooled, settings, units, show_progress, **dict(options))
            measured = fv_measures(model, units, fool.images, target, orig.images, feature_layer)
            survival[name] = {
                "share_fooled": share_fooled(measured),
                "pixel_r_target_median": summarise([m["pixel_r_target"] for m in measured])[
                    "median"
                ],
            }
    figures = {
        "model": model.name,
        "layer": settings.layer,
        "units": units,
        "method": settings.method,
        "target": {"spec": settings.target, **target_info},
        "construction": settings.to_dict(),
        "training": built.record,
        "natural": natural_behaviour(model, fooled, test_x, test_y),
        "preservation_r2_test": preservation_r2(model, fooled, settings.layer, units, test_x),
        "feature_layer": feature_layer,
        "fooling": {
            "units": rows,
            "share_fooled": share_fooled(rows),
            "pixel_r_target": summarise([r["pixel_r_target"] for r in rows]),
            "pixel_r_original_fv": summarise([r["pixel_r_original_fv"] for r in rows]),
            "feature_cos_target": summarise([r["feature_cos_target"] for r in rows]),
            "feature_cos_original_fv": summarise([r["feature_cos_original_fv"] for r in rows]),
        },
        "survival": survival,
        "measures": (
            "pixel_r_*: Pearson r over all pixels of the fooled FV with the target / the unit's "
            "original FV (same render settings and seed); feature_cos_*: cosine of the original "
            f"model's flattened activations at {feature_layer}; fooled: pixel_r_target > "
            "pixel_r_original_fv; natural and preservation on the test split"
        ),
        "files": {"model": "model", "grid": "grid.png"},
    }
    grid = torch.cat([originals.images, fooled_fv.images,
                      target.expand(len(units), *target.shape[1:])])  # fmt: skip
    return finish(SlingshotResult(built, grid, figures), out)
