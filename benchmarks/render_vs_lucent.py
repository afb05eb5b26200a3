"""fvlab vs lucent (torch-lucent 0.1.8), side by side in one process, like for like.

Both render channel visualizations with the FFT parameterization (decorrelated colour for RGB,
none for grayscale), Adam lr 0.05, the same number of updates, the same transform list with the
same sizes (pad, jitter, scale 0.9–1.1, rotate ±10°, jitter) and the same image size reaching the
model (lucent's `fixed_image_size` is set to the size fvlab's transforms produce, so lucent does
not upsample to 224), on the same number of threads. The final objective of every image — from
either library — is measured by the same function: the channel's spatial mean on the final,
untransformed image.

Printed per model: seconds per image for lucent (one unit per call), fvlab (one unit per call)
and fvlab (many units per call); the time ratio fvlab-single / lucent, the throughput ratio
lucent / fvlab-batched, and the objective ratio fvlab / lucent (ratio of the mean objectives of
the single-unit renders).

Run: .venv/bin/python benchmarks/render_vs_lucent.py   (needs `make bench-deps`)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def lucent_render(module, spec, layer, unit, size, steps, sizes, fixed_size, channels):
    from lucent.optvis import param, render, transform

    pad, j1, j2 = sizes
    transforms = [
        transform.pad(pad, mode="constant", constant_value=0.5),
        transform.jitter(j1),
        transform.random_scale([1 + (i - 5) / 50 for i in range(11)]),
        transform.random_rotate(list(range(-10, 11))),
        transform.jitter(j2),
        spec.preprocess,
    ]
    images = render.render_vis(
        module,
        f"{layer}:{unit}",
        param_f=lambda: param.image(size, channels=channels, decorrelate=channels == 3),
        transforms=transforms,
        thresholds=(steps,),
        preprocess=False,
        progress=False,
        show_image=False,
        fixed_image_size=fixed_size,
    )
    return torch.from_numpy(np.ascontiguousarray(images[-1].transpose(0, 3, 1, 2)))


@torch.no_grad()
def channel_objective(model, layer, units, images):
    from fvlab.models.hooks import capture

    with capture(model, [layer]) as cap:
        model(images)
        act = cap[layer].flatten(2).mean(2)
    return act[torch.arange(len(units)), torch.as_tensor(units)]


def reinitialise(module) -> None:
    """He-normal conv/linear weights (seeded): torchvision's own random init (std 0.01) leaves
    deep activations at ~1e-6, where both libraries' objectives are noise."""
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")


def run(name, size, layer, single_units, batch_units, steps, sizes):
    import fvlab
    from fvlab.optvis.transforms import AffineJitterConfig, FusedAffineJitter

    model = fvlab.load(name)
    if name.startswith("torchvision:"):
        reinitialise(model.module)
    for p in model.module.parameters():  # lucent needs nothing else; fvlab never asks for them
        p.requires_grad_(True)
    channels = model.spec.channels
    pad, j1, j2 = sizes
    fixed = size + 2 * pad - j1 - j2  # the side fvlab's fused transform hands to the model
    fv_transform = FusedAffineJitter(AffineJitterConfig(pad, j1, j2))

    lucent_images, t = [], time.perf_counter()
    for unit in single_units:
        torch.manual_seed(unit)
        np.random.seed(unit)
        lucent_images.append(
            lucent_render(
                model.module, model.spec, layer, unit, size, steps, sizes, fixed, channels
            )
        )
    lucent_seconds = (time.perf_counter() - t) / len(single_units)

    fv_images, t = [], time.perf_counter()
    for unit in single_units:
        r = fvlab.render(
            model,
            layer,
            [unit],
            steps=steps,
            size=size,
            transforms=fv_transform,
            seed=unit,
            show_progress=False,
        )
        fv_images.append(r.images)
    fv_single_seconds = (time.perf_counter() - t) / len(single_units)

    t = time.perf_counter()
    fvlab.render(
        model,
        layer,
        batch_units,
        steps=steps,
        size=size,
        transforms=fv_transform,
        show_progress=False,
    )
    fv_batched_seconds = (time.perf_counter() - t) / len(batch_units)

    lucent_obj = channel_objective(model, layer, single_units, torch.cat(lucent_images))
    fv_obj = channel_objective(model, layer, single_units, torch.cat(fv_images))
    print(
        f"\n## {name}: layer {layer}, {size} px (model sees {fixed} px), {steps} updates, "
        f"transforms pad {pad} / jitter {j1} / scale / rotate / jitter {j2}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"lucent, 1 unit per call:     {lucent_seconds:8.3f} s/image  ({len(single_units)} units)"
    )
    print(f"fvlab,  1 unit per call:     {fv_single_seconds:8.3f} s/image")
    print(f"fvlab,  {len(batch_units):2d} units per call:   {fv_batched_seconds:8.3f} s/image")
    print(
        f"time ratio fvlab-single / lucent:        {fv_single_seconds / lucent_seconds:6.3f}"
        "  (target <= 1.0)"
    )
    print(
        f"throughput ratio fvlab-batched / lucent: {lucent_seconds / fv_batched_seconds:6.2f}"
        "  (target >= 3)"
    )
    print(
        f"objective ratio fvlab / lucent:          "
        f"{float(fv_obj.mean() / lucent_obj.mean()):6.3f}  (target >= 0.95; per unit "
        f"fvlab {[float(f'{v:.3g}') for v in fv_obj.tolist()]}, lucent "
        f"{[float(f'{v:.3g}') for v in lucent_obj.tolist()]})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--googlenet-steps", type=int, default=512)
    parser.add_argument("--fmnist-steps", type=int, default=512)
    parser.add_argument("--single-units", type=int, default=4)
    parser.add_argument("--batch-units", type=int, default=16)
    parser.add_argument("--only", choices=["googlenet", "fmnist"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    single = list(range(args.single_units))
    batch = list(range(args.batch_units))
    if args.only in (None, "fmnist"):
        run("fmnist-cnn", 28, "bn3", single, batch, args.fmnist_steps, (3, 2, 2))
    if args.only in (None, "googlenet"):
        run(
            "torchvision:googlenet",
            128,
            "inception4a",
            single,
            batch,
            args.googlenet_steps,
            (12, 8, 4),
        )


if __name__ == "__main__":
    main()
