"""Demo section: the reference model and what its units look like."""

from __future__ import annotations

import torch

from fvlab.demo.context import DemoContext
from fvlab.report.html import Section


def model_section(ctx: DemoContext) -> Section:
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.models.evaluate import top1_accuracy

    model = ctx.load()
    accuracy = top1_accuracy(model, FashionMNIST("test"), show_progress=ctx.show_progress)
    ctx.numbers["model"] = {
        "name": model.name,
        "top1": accuracy.top1,
        "n_images": accuracy.n_images,
    }
    section = Section("model", "The model: fmnist-cnn")
    section.text(
        "The embedded reference model is a small grayscale CNN (five 3×3 conv blocks with "
        "BatchNorm and ReLU, global average pooling, 10 logits) trained on Fashion-MNIST by "
        "<code>fvlab train-reference</code>. Every other section works on it."
    )
    section.table(
        [
            ["top-1 accuracy on the Fashion-MNIST test set", accuracy.top1],
            ["test images", accuracy.n_images],
        ]
    )
    return section


def render_section(ctx: DemoContext) -> Section:
    import fvlab
    from fvlab.data.dataset import fetch_images
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.report.images import save_grid
    from fvlab.study.exemplars import top_exemplars

    model = ctx.load()
    folder = ctx.folder("render")
    classes = fvlab.render(model, "fc", range(10), seed=ctx.seed, show_progress=ctx.show_progress)
    with torch.no_grad():
        probs = model(classes.images).softmax(1)
    save_grid(classes.images, folder / "classes.png", labels=list(model.class_names), upscale=4)
    units = list(range(8))
    conv = fvlab.render(model, "bn3", units, seed=ctx.seed, show_progress=ctx.show_progress)
    test = FashionMNIST("test")
    top = top_exemplars(model, test, ["bn3"], k=5, show_progress=ctx.show_progress)["bn3"]
    index = top.top.indices[units]  # (8, 5) dataset indices, best first
    images = fetch_images(test, index.ravel()).view(*index.shape, *conv.images.shape[1:])
    rows = []
    for i in range(len(units)):
        rows.append(conv.images[i : i + 1])
        rows.append(images[i])
    grid = torch.cat(rows)
    save_grid(grid, folder / "bn3_units.png", ncol=6, upscale=3)
    ctx.numbers["render"] = {
        "class_softmax_of_own_class": [float(probs[c, c]) for c in range(10)],
        "class_logit": classes.objective.tolist(),
        "bn3_objective": conv.objective.tolist(),
    }
    section = Section("render", "Render: what the units respond to")
    section.text(
        "Feature visualizations of the ten class logits, all rendered in ONE optimisation "
        "(FFT parameterization, per-element random transforms, Adam, 512 updates). The model "
        "classifies each image as its class with softmax probability "
        f"{min(ctx.numbers['render']['class_softmax_of_own_class']):.4f} or more."
    )
    section.image(folder / "classes.png", "Class-logit visualizations, one per class.")
    section.text(
        "Eight channels of the middle conv layer (bn3, pre-ReLU): for each, its visualization "
        "(first column) next to its five most activating Fashion-MNIST test images."
    )
    section.image(
        folder / "bn3_units.png", "bn3 channels 0–7: visualization | top-5 natural exemplars."
    )
    section.code("fvlab render --model fmnist-cnn --layer fc --units 0-9 --out out/fc")
    return section
