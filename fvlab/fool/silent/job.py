"""The ``fvlab fool silent`` job (also run by the demo): build silent units, check the natural
behaviour, render the original FVs and predict from them whether a takeover can happen
(:mod:`.reach`, warned about when unlikely), render the fooled FVs, measure the takeover in
feature space (:mod:`.takeover`; pixel correlations as a secondary figure), and save the model,
the grid and summary.json.

    run_silent(model, SilentSettings(layer="conv3", target_unit="relu4:0"), out) -> SilentResult
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fvlab.data.dataset import head
from fvlab.errors import FvlabWarning
from fvlab.fool.silent.build import BuiltSilent, SilentConstruction, build_silent
from fvlab.fool.silent.evaluate import compare_visualizations, natural_agreement, render_original
from fvlab.fool.silent.reach import Reach, branch_reach
from fvlab.fool.silent.takeover import Takeover, measure_takeover
from fvlab.fool.targets import check_image_target
from fvlab.jobs import OutDir, SettingsError, at_least, finish

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

FV_COMPARISON = (
    "secondary (pixels): Pearson correlation over all pixels of the fooled FV with the target "
    "and with the unit's original FV, all at the model's input size and channels (corr_*); "
    "shifted_corr_*: the largest such correlation over circular shifts"
)


@dataclass(frozen=True)
class SilentSettings(SilentConstruction):
    """The job: how the units are built (:class:`SilentConstruction`), plus the target —
    exactly one of ``target`` (an image file or ``builtin:NAME``) and ``target_unit``
    (``LAYER:IDX``, that unit's visualization) —, the natural data (``data``: the bias images,
    Fashion-MNIST's training split by default; ``eval_data``: the check, default its test
    split; ``natural_limit`` / ``eval_limit``: only the first N images), ``fv_steps``, the
    render updates of the comparison, and ``fv_redirect_steps``, lucid's ReLU-gradient
    redirection for the first N of them (original and fooled FVs alike; it also passes
    gradient through a branch that is still off)."""

    target: str | None = None
    target_unit: str | None = None
    data: Path | None = None
    eval_data: Path | None = None
    natural_limit: int | None = None
    eval_limit: int | None = None
    fv_steps: int = 256
    fv_redirect_steps: int = 0

    def validate(self) -> None:
        super().validate()
        if (self.target is None) == (self.target_unit is None):
            raise SettingsError(
                "target",
                "give exactly one of target (an image file or builtin:NAME) or target_unit "
                "(LAYER:IDX)",
            )
        if self.target is not None:
            check_image_target(self.target)
        at_least("natural_limit", self.natural_limit, 1)
        at_least("eval_limit", self.eval_limit, 1)
        at_least("fv_steps", self.fv_steps, 1)
        at_least("fv_redirect_steps", self.fv_redirect_steps, 0)


@dataclass
class SilentResult:
    """The built units, their natural check and visualization comparison, and the grid (per
    unit: original FV | fooled FV | target)."""

    built: BuiltSilent
    settings: SilentSettings
    natural: dict[str, Any]
    comparison: dict[str, Any]
    reach: Reach
    takeover: Takeover

    @property
    def model(self) -> LoadedModel:
        """The fooled model."""
        return self.built.model

    def grid(self) -> tuple[torch.Tensor, list[str]]:
        """Triplets (3n, C, S, S) original FV | fooled FV | target per unit, and their labels."""
        comparison, units = self.comparison, self.built.units
        fooled = comparison["fooled_fv"]
        target = self.built.target.expand(len(units), -1, -1, -1).to(fooled)
        triplets = torch.stack([comparison["original_fv"], fooled, target], dim=1).flatten(0, 1)
        labels = [f"{u} {kind}" for u in units for kind in ("orig", "fooled", "target")]
        return triplets, labels

    def summary(self) -> dict[str, Any]:
        built, c, takeover, reach = self.built, self.comparison, self.takeover, self.reach
        closer = c["corr_target"] > c["corr_original"]
        closer_shifted = c["shifted_corr_target"] > c["shifted_corr_original"]
        per_unit = [
            {
                "unit": unit,
                "corr_target": float(c["corr_target"][i]),
                "corr_original": float(c["corr_original"][i]),
                "original_corr_target": float(c["original_corr_target"][i]),
                "shifted_corr_target": float(c["shifted_corr_target"][i]),
                "shifted_corr_original": float(c["shifted_corr_original"][i]),
                "objective_original": float(c["original_objective"][i]),
                "objective_fooled": float(c["fooled_objective"][i]),
                "branch_fires_in_fv": bool(c["branch_fires"][i]),
                "original_fv_over_threshold": float(reach.to_threshold[i]),
                **takeover.per_unit(i),
            }
            for i, unit in enumerate(built.units)
        ]
        return {
            "model": built.base.name,
            "layer": built.layer,
            "attach": built.attach,
            "construction": built.params,
            "natural": {"bias_images": built.natural.n_images, **self.natural},
            "fv": {
                "layer": built.attach,
                "steps": self.settings.fv_steps,
                "redirect_steps": self.settings.fv_redirect_steps,
                "seed": self.settings.seed,
                **takeover.summary(),
                "diagnostic": reach.summary(),
                "comparison": FV_COMPARISON,
                "share_closer_to_target": float(closer.float().mean()),
                "share_closer_to_target_shifted": float(closer_shifted.float().mean()),
                "branch_fires_share": float(c["branch_fires"].float().mean()),
                "units": per_unit,
            },
            "files": {"model": "model", "grid": "grid.png"},
        }

    def save(self, out: Path) -> Path:
        """Write OUT/model/ (the fooled model), OUT/grid.png and OUT/summary.json."""
        from fvlab.report.images import save_grid
        from fvlab.report.summary import write_summary

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.built.save(out / "model")
        triplets, labels = self.grid()
        columns = 3 * min(len(self.built.units), 6)
        upscale = max(1, 84 // triplets.shape[-1])
        save_grid(triplets, out / "grid.png", ncol=columns, labels=labels, upscale=upscale)
        return write_summary(out, self.summary())


def run_silent(
    model: LoadedModel, settings: SilentSettings, out: OutDir = None, *, show_progress: bool = True
) -> SilentResult:
    """Build silent units on ``model`` (left unchanged), check them on natural images and
    compare the visualizations (module docstring)."""
    from fvlab.data.natural import open_dataset

    data = settings.data
    natural = head(open_dataset(model, data, "train"), settings.natural_limit, "natural_limit")
    evaluation = head(
        open_dataset(model, settings.eval_data or data, "test"), settings.eval_limit, "eval_limit"
    )
    target = settings.target if settings.target is not None else settings.target_unit
    built = build_silent(model, target, natural, settings, show_progress)
    agreement = natural_agreement(
        model,
        built.model,
        evaluation,
        settings.batch_size,
        show_progress,
        margin_shift=built.margin_shift,
    )
    render = {
        "steps": settings.fv_steps,
        "seed": settings.seed,
        "show_progress": show_progress,
        "relu_redirect_steps": settings.fv_redirect_steps,
    }
    before = render_original(model, built, **render)
    reach = branch_reach(model, built, before.images)
    if not reach.likely:
        warnings.warn(reach.line(), FvlabWarning, stacklevel=2)
    comparison = compare_visualizations(model, built, before=before, **render)
    takeover = measure_takeover(
        model,
        built.layer,
        list(built.units),
        comparison["original_fv"],
        comparison["fooled_fv"],
        built.target,
        settings.target_unit,
        built.attach,
    )
    result = SilentResult(built, settings, agreement, comparison, reach, takeover)
    return finish(result, out)
