"""Per-image costs of the papers' models here, and what they project to for P1's jobs.

Measures, for InceptionV1 (lucid's, random weights: the cost does not depend on the weights)
and torchvision's ResNet-50 at 224 px, on this machine's CPU:

* ``forward``: one image through the model, no gradient (an activation sweep), batch
  ``--sweep-batch``;
* ``update``: one render update of one image — forward with the transforms' padding, backward
  to the image parameters and Adam's step (fvlab's own ``render``), batch ``--render-batch``.

Both as wall seconds and as CPU seconds of this process per image (CPU seconds are less
disturbed by other work on a shared machine). Then it multiplies them by the image counts of
the jobs in docs/reproduce.md and converts to GPU-hours with a stated GPU throughput:
``--gpu-resnet50-updates`` images/s for ResNet-50 forward + backward on one GPU (default
2,600: timm's training throughput for ResNet-50 with AMP and channels-last on one A100, as
reported in pytorch-image-models issue #1491; a render update costs about what a training step
costs), InceptionV1 scaled by the CPU cost ratio measured here, and a forward pass taken as
1/3 of an update (backward ≈ 2 × forward).

Usage: .venv/bin/python benchmarks/per_image_cost.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

#: image counts of P1's jobs (docs/reproduce.md); updates are render updates of one image
JOBS = {
    "detector trajectories (472,500 snapshots = 26,250 renders × 18 snapshots, 512 updates)": (
        "inceptionv1", "update", 26_250 * 512),
    "detector natural images (1.28 M, forward through the detector only; not the model)": (
        None, None, 0),
    "render every mixed-layer unit of InceptionV1 (~7,000 units × 512 updates)": (
        "inceptionv1", "update", 7_000 * 512),
    "sweep the 50,000 validation images (InceptionV1)": ("inceptionv1", "forward", 50_000),
    "circuit check on the validation set (original + fooled: 2 × 50,000 forwards)": (
        "inceptionv1", "forward", 100_000),
    "path check, 1,000 class units × 4 FVs × 512 updates": ("inceptionv1", "update", 2_048_000),
    "path check, 1,000 classes × 50 natural images (forwards)": ("inceptionv1", "forward", 50_000),
    "silent units: bias sweep over the 1.28 M training images (ResNet-50)": (
        "resnet50", "forward", 1_281_167),
    "silent units: 2,048 units of layer4.1.conv2, original + fooled FV, 512 updates": (
        "resnet50", "update", 2 * 2_048 * 512),
}  # fmt: skip


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(fn, images: int, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` (wall s, CPU s) per image of ``fn()`` processing ``images``."""
    fn()  # warm-up
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), cpu_seconds()
        fn()
        best = min(best, ((time.perf_counter() - wall) / images, (cpu_seconds() - cpu) / images))
    return best


def costs(name: str, args) -> dict[str, tuple[float, float]]:
    import warnings

    import fvlab
    from fvlab.optvis.api import render

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: the cost does not depend on them
        model = fvlab.load("inceptionv1" if name == "inceptionv1" else "torchvision:resnet50")
    layer = "mixed4a" if name == "inceptionv1" else "layer4.1.conv2"
    x = torch.rand(args.sweep_batch, 3, 224, 224)

    @torch.no_grad()
    def forward():
        model(x)

    steps = 4

    def update():
        render(model, layer, list(range(args.render_batch)), steps=steps, size=224,
               show_progress=False)  # fmt: skip

    fwd = measure(forward, args.sweep_batch, args.repeats)
    upd = measure(update, args.render_batch * steps, args.repeats)
    return {"forward": fwd, "update": upd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep-batch", type=int, default=8)
    parser.add_argument("--render-batch", type=int, default=4)
    parser.add_argument("--gpu-resnet50-updates", type=float, default=2600.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    measured = {name: costs(name, args) for name in ("inceptionv1", "resnet50")}
    print(f"per image on this CPU ({args.threads} threads; best of {args.repeats}):")
    for name, parts in measured.items():
        for kind, (wall, cpu) in parts.items():
            print(f"  {name:11s} {kind:7s}: {wall:7.3f} s wall, {cpu:7.3f} CPU-s")
    ratio = measured["inceptionv1"]["update"][1] / measured["resnet50"]["update"][1]
    gpu_rate = {
        ("resnet50", "update"): args.gpu_resnet50_updates,
        ("inceptionv1", "update"): args.gpu_resnet50_updates / ratio,
        ("resnet50", "forward"): 3 * args.gpu_resnet50_updates,
        ("inceptionv1", "forward"): 3 * args.gpu_resnet50_updates / ratio,
    }
    print(f"InceptionV1 / ResNet-50 update cost here: {ratio:.2f}; GPU rate assumed for a "
          f"ResNet-50 update: {args.gpu_resnet50_updates:.0f} images/s")  # fmt: skip
    print("job | images | hours on this machine (2 cores) | GPU-hours (1 GPU)")
    total_gpu = 0.0
    for job, (name, kind, count) in JOBS.items():
        if name is None:
            print(f"{job} | — | — | —")
            continue
        cpu_hours = count * measured[name][kind][1] / 3600 / args.threads
        gpu_hours = count / gpu_rate[(name, kind)] / 3600
        total_gpu += gpu_hours
        print(f"{job} | {count:,} | {cpu_hours:,.0f} | {gpu_hours:.2f}")
    print(f"total GPU-hours: {total_gpu:.1f}")


if __name__ == "__main__":
    main()
