"""Do silent units take over a model's visualizations, and where can they? (issues 5 and 18)

Two modes.

``--ranges``: per conv layer, the diagnostic of :mod:`fvlab.fool.silent.reach` on the first
``--units`` units (``fvlab.fool.silent.reach.suggest_layers``): how far the units' original FVs
reach beyond the natural maximum along their own filter (own FV / natural max: the model's
FV/natural range ratio) and along the branch directions of the construction (FV / natural max,
FV / threshold, share of branches that already fire on the original FV).

Otherwise, for each λ (or ``--angles``): builds silent units on the chosen units of one conv
layer, renders each unit's FV in the unmodified and in the fooled model (same seed, steps,
settings; ``--redirect`` lucid's ReLU redirection for the first N updates) and prints, over
units: the diagnostic's prediction (``likely``, median FV / threshold), whether the branch
fires in the fooled FV, the feature-space takeover (:mod:`fvlab.fool.silent.takeover`:
``taken_over`` share under its rule, median target activation of fooled and original FVs
relative to the target's own FV — unit targets only —, median Gram distances to the target and
between fooled FVs of different units) and, secondary, the pixel-correlation share "closer to
the target than to the original FV".

Usage:
  .venv/bin/python benchmarks/silent_takeover.py --ranges [--model fmnist-resnet18]
  .venv/bin/python benchmarks/silent_takeover.py [--model fmnist-cnn] [--layer conv3]
      [--lams 0.3,1,3 | --angles 30,60] [--target relu4:0] [--direction sum|contrast|rare]
      [--pooling none|mean] [--steps 256] [--redirect 0] [--margin 0.25]
      [--natural-limit 20000] [--units 0-63]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def measure(model, built, steps: int, seed: int, redirect: int, target_unit) -> dict:
    from fvlab.fool.silent.evaluate import compare_visualizations, render_original
    from fvlab.fool.silent.reach import branch_reach
    from fvlab.fool.silent.takeover import measure_takeover

    render = {"steps": steps, "seed": seed, "show_progress": False, "relu_redirect_steps": redirect}
    before = render_original(model, built, **render)
    reach = branch_reach(model, built, before.images)
    c = compare_visualizations(model, built, before=before, **render)
    fvs = (c["original_fv"], c["fooled_fv"])
    takeover = measure_takeover(
        model, built.layer, list(built.units), *fvs, built.target, target_unit, built.attach
    )
    t = takeover.summary()
    row = {
        "likely": reach.likely,
        "fv_over_threshold": float(reach.to_threshold.median()),
        "fires": float(c["branch_fires"].float().mean()),
        "taken_over": t["taken_over_fraction"],
        "q_fooled": t.get("target_activation_fooled_median"),
        "q_orig": t.get("target_activation_original_median"),
        "gram_target": t["gram_to_target_median"],
        "gram_orig_target": t["gram_original_to_target_median"],
        "pairwise_fooled": t["pairwise_gram_fooled_median"],
        "pairwise_orig": t["pairwise_gram_original_median"],
        "pixel_closer": float((c["corr_target"] > c["corr_original"]).float().mean()),
        "angle": built.params["angle_deg"]["median"],
    }
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fmnist-cnn")
    parser.add_argument("--ranges", action="store_true")
    parser.add_argument("--layers", default=None, help="--ranges: comma-separated conv layers")
    parser.add_argument("--layer", default="conv3")
    parser.add_argument("--lams", default="0.3,1,3")
    parser.add_argument("--angles", default=None)
    parser.add_argument("--target", default="relu4:0")
    parser.add_argument("--direction", default="sum")
    parser.add_argument("--pooling", default="none")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--redirect", type=int, default=0)
    parser.add_argument("--margin", type=float, default=0.25)
    parser.add_argument("--natural-limit", type=int, default=20000)
    parser.add_argument("--units", default=None, help="default: all (--ranges: the first 8)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)

    import fvlab
    from fvlab.data.dataset import head
    from fvlab.data.natural import open_dataset
    from fvlab.fool.silent import SilentConstruction, silent
    from fvlab.fool.silent.reach import suggest_layers
    from fvlab.fool.targets import UNIT_SPEC
    from fvlab.int_lists import parse_int_list

    model = fvlab.load(args.model)
    natural = head(open_dataset(model, None, "train"), args.natural_limit, "natural_limit")
    target_unit = args.target if UNIT_SPEC.match(args.target) else None
    common = {"margin": args.margin, "seed": args.seed, "pooling": args.pooling,
              "direction_objective": args.direction}  # fmt: skip
    if args.ranges:
        start = time.perf_counter()
        settings = SilentConstruction(layer="(ranges)", **common)
        per_layer = int(args.units) if args.units else 8
        layers = args.layers.split(",") if args.layers else None
        ranked = suggest_layers(model, args.target, natural, settings, layers=layers,
                                units_per_layer=per_layer, fv_steps=args.steps,
                                relu_redirect_steps=args.redirect, show_progress=False)  # fmt: skip
        print(f"{args.model}: {per_layer} units per conv layer, target {args.target}, "
              f"{args.steps} updates, bias from {len(natural)} natural images")  # fmt: skip
        for row in ranked:
            print(json.dumps(row.summary() | {"units": None, "rule": None}), flush=True)
        print(f"{time.perf_counter() - start:.0f} s")
        return
    conv = model.module.get_submodule(args.layer)
    units = parse_int_list(args.units) if args.units else list(range(conv.out_channels))
    print(f"{args.model} {args.layer}, {len(units)} units, target {args.target}, {args.steps} "
          f"updates (redirect {args.redirect}), bias from {len(natural)} natural images, "
          f"margin {args.margin}, direction {args.direction}, pooling {args.pooling}")  # fmt: skip
    mixes = ([("angle", float(a)) for a in args.angles.split(",")] if args.angles
             else [("lam", float(x)) for x in args.lams.split(",")])  # fmt: skip
    for kind, value in mixes:
        start = time.perf_counter()
        built = silent(model, args.layer, args.target, natural, units=units,
                       show_progress=False, **{kind: value}, **common)  # fmt: skip
        row = {kind: value, **measure(model, built, args.steps, args.seed, args.redirect,
                                      target_unit)}  # fmt: skip
        row["seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
