"""Do per-position silent units take over fmnist-cnn's visualizations? (issue 5)

For each λ, builds silent units on every chosen unit of a conv layer (the paper's per-position
branch, `sum` direction, weight factor 100) with the bias from the training images, renders
each unit's FV in the unmodified and in the fooled model (same seed, steps, settings) and
prints, over units:

* fires     — share of units whose branch is active anywhere on its own fooled FV
* closer    — share whose fooled FV has a higher Pearson r with the target than with the
              unit's original FV (closer_shift: the same, maximised over circular shifts)
* r_target, r_orig — medians of those correlations
* excess    — median over units of max over positions of (w_new ∗ x + b_new) / (max − mean of
              w_new ∗ x over the natural images): > 0 means the branch fires; for the original
              FV (excess_orig) and the fooled one (excess_fooled)

The question it answers: small λ keeps w_new close to the unit's own filter, so the FV reaches
the branch's threshold, but then the branch mostly reinforces the unit's own pattern; large λ
points w_new at the target, and the FV never reaches the threshold.

Usage: .venv/bin/python benchmarks/silent_takeover.py [--layer conv3] [--lams 0.3,1,3]
       [--target builtin:checker | --target relu4:0] [--steps 256] [--margin 0.25]
       [--natural-limit 60000] [--units 0-63]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def measure(fooled, units: list[int], steps: int, seed: int, model) -> dict:
    """Render both models (fvlab.fool.silent.compare_visualizations, correlations by
    fvlab.fool.measures) and add the branch's pre-activation excess on the original and on the
    fooled FVs."""
    from fvlab.fool.silent import CHILD, compare_visualizations
    from fvlab.models.hooks import capture

    comparison = compare_visualizations(model, fooled, steps=steps, seed=seed, show_progress=False)
    idx = torch.arange(len(units))
    spread = torch.as_tensor(fooled.natural.max - fooled.natural.mean).flatten()
    excess = {}
    with torch.no_grad(), capture(fooled.model.module, [f"{CHILD}.pool"], detach=True) as cap:
        for name in ("original_fv", "fooled_fv"):
            fooled.model(comparison[name])
            peak = cap[f"{CHILD}.pool"][idx, idx].flatten(1).amax(1)
            excess[name] = (peak.cpu().double() / spread).median().item()
    r_target, r_original = comparison["corr_target"], comparison["corr_original"]
    return {
        "fires": comparison["branch_fires"].float().mean().item(),
        "closer": (r_target > r_original).float().mean().item(),
        "closer_shift": (comparison["shifted_corr_target"] > comparison["shifted_corr_original"])
        .float()
        .mean()
        .item(),
        "r_target": r_target.median().item(),
        "r_orig": r_original.median().item(),
        "excess_orig": excess["original_fv"],
        "excess_fooled": excess["fooled_fv"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="conv3")
    parser.add_argument("--lams", default="0.3,1,3")
    parser.add_argument("--target", default="builtin:checker")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--margin", type=float, default=0.25)
    parser.add_argument("--natural-limit", type=int, default=60000)
    parser.add_argument("--units", default=None, help="default: all units of the layer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)

    import fvlab
    from fvlab.data.dataset import head
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.fool.silent import silent
    from fvlab.int_lists import parse_int_list

    model = fvlab.load("fmnist-cnn")
    natural = head(FashionMNIST("train"), args.natural_limit, "natural_limit")
    conv = model.module.get_submodule(args.layer)
    units = parse_int_list(args.units) if args.units else list(range(conv.out_channels))
    print(
        f"fmnist-cnn {args.layer}, {len(units)} units, target {args.target}, "
        f"{args.steps} updates, bias from {len(natural)} training images, margin {args.margin}"
    )
    for lam in [float(x) for x in args.lams.split(",")]:
        start = time.perf_counter()
        fooled = silent(model, args.layer, args.target, natural, units=units, lam=lam,
                        margin=args.margin, seed=args.seed, show_progress=False)  # fmt: skip
        row = measure(fooled, units, args.steps, args.seed, model)
        row = {"lam": lam, **{k: round(v, 3) for k, v in row.items()}}
        row["seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
