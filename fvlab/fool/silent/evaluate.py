"""Measuring silent units: behaviour on natural images, and what the visualizations show.

:func:`natural_agreement` streams natural images through the original and the fooled model:
top-1 of both, the largest |logit difference|, whether the logits are bit-for-bit equal, and
how many images make any fooling branch non-zero (``branch_active_images``), with the largest
branch pre-activation seen (negative = every branch stayed below its threshold).

:func:`compare_visualizations` renders the built units at their attach layer in both models
(same seed and settings) and compares each fooled FV with the target and with the unit's
original FV by :func:`fvlab.fool.measures.image_correlation` (and up to a shift,
:func:`~fvlab.fool.measures.shifted_correlation`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from fvlab.fool.measures import image_correlation, shifted_correlation
from fvlab.fool.silent.branch import CHILD
from fvlab.models.hooks import capture
from fvlab.progress import progress_bar

if TYPE_CHECKING:
    from fvlab.data.dataset import Dataset
    from fvlab.fool.silent.build import BuiltSilent
    from fvlab.models.zoo import LoadedModel


@torch.no_grad()
def natural_agreement(
    original: LoadedModel,
    fooled: LoadedModel,
    dataset: Dataset,
    batch_size: int = 500,
    show_progress: bool = True,
    margin_shift: torch.Tensor | None = None,
) -> dict:
    """Compare ``original`` and ``fooled`` (LoadedModels) on ``dataset`` (labelled batches).

    ``margin_shift`` (n,): the part of each branch's bias that the margin added; with it, also
    count the images on which a branch would have fired without the margin."""
    correct_original = correct_fooled = n = active = active_without_margin = 0
    max_abs_diff = 0.0
    identical = True
    max_pre = float("-inf")
    device = original.device
    branch_layers = [f"{CHILD}.pool", f"{CHILD}.relu"]
    with (
        capture(fooled.module, branch_layers, detach=True) as cap,
        progress_bar("natural images", len(dataset), show_progress) as advance,
    ):
        for images, labels in dataset.batches(batch_size):
            images = images.to(device)
            logits_original = original(images)
            logits_fooled = fooled(images)
            labels = labels.to(device)
            correct_original += int((logits_original.argmax(1) == labels).sum())
            correct_fooled += int((logits_fooled.argmax(1) == labels).sum())
            diff = (logits_original - logits_fooled).abs().max()
            max_abs_diff = max(max_abs_diff, float(diff))
            identical = identical and torch.equal(logits_original, logits_fooled)
            pre = cap[f"{CHILD}.pool"]
            active += int((cap[f"{CHILD}.relu"].flatten(1) > 0).any(1).sum())
            max_pre = max(max_pre, float(pre.max()))
            if margin_shift is not None:
                shifted = pre + margin_shift.to(pre).view(1, -1, 1, 1)
                active_without_margin += int((shifted.flatten(1) > 0).any(1).sum())
            n += len(labels)
            advance(len(labels))
    summary = {
        "n_images": n,
        "top1_original": correct_original / n,
        "top1_fooled": correct_fooled / n,
        "max_abs_diff": max_abs_diff,
        "identical": identical,
        "branch_active_images": active,
        "max_branch_preactivation": max_pre,
    }
    if margin_shift is not None:
        summary["branch_active_images_without_margin"] = active_without_margin
    return summary


def _render(model, built, steps, seed, show_progress, relu_redirect_steps):
    import fvlab

    return fvlab.render(
        model,
        built.attach,
        list(built.units),
        steps=steps,
        seed=seed,
        relu_redirect_steps=relu_redirect_steps,
        show_progress=show_progress,
    )


def render_original(
    original: LoadedModel,
    built: BuiltSilent,
    steps: int = 256,
    seed: int = 0,
    show_progress: bool = True,
    relu_redirect_steps: int = 0,
):
    """The built units' FVs in the unmodified model (a RenderResult), as
    :func:`compare_visualizations` renders them."""
    return _render(original, built, steps, seed, show_progress, relu_redirect_steps)


def compare_visualizations(
    original: LoadedModel,
    built: BuiltSilent,
    *,
    steps: int = 256,
    seed: int = 0,
    show_progress: bool = True,
    relu_redirect_steps: int = 0,
    before=None,
) -> dict:
    """Render the built units at their attach layer in ``original`` and in the fooled model
    (``built.model``), same seed and steps (and lucid's ReLU-gradient redirection for the
    first ``relu_redirect_steps`` updates of both); correlations of each fooled FV with the
    target (``built.target``, (1, C, S, S)) and with the unit's original FV, and whether the
    unit's fooling branch fires anywhere on its fooled FV. ``before``: the original FVs'
    RenderResult if already rendered (:func:`render_original`). Returns images and per-unit
    values."""
    fooled, units, target = built.model, list(built.units), built.target
    if before is None:
        before = render_original(original, built, steps, seed, show_progress, relu_redirect_steps)
    after = _render(fooled, built, steps, seed, show_progress, relu_redirect_steps)
    with torch.no_grad(), capture(fooled.module, [f"{CHILD}.relu"], detach=True) as cap:
        fooled(after.images)
        branch = cap[f"{CHILD}.relu"]
    position = {int(u): i for i, u in enumerate(fooled.module.get_submodule(CHILD).units)}
    own = torch.as_tensor([position[u] for u in units], device=branch.device)
    fires = branch[torch.arange(len(units), device=branch.device), own].flatten(1).amax(1) > 0
    target = target.to(after.images).expand_as(after.images)
    with_target = image_correlation(after.images, target)
    with_original = image_correlation(after.images, before.images)
    shifted_target = shifted_correlation(after.images, target)
    shifted_original = shifted_correlation(after.images, before.images)
    return {
        "original_fv": before.images,
        "fooled_fv": after.images,
        "original_objective": before.objective,
        "fooled_objective": after.objective,
        "corr_target": with_target,
        "corr_original": with_original,
        "original_corr_target": image_correlation(before.images, target),
        "branch_fires": fires.cpu(),
        "shifted_corr_target": shifted_target,
        "shifted_corr_original": shifted_original,
    }
