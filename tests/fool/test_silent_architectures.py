"""Silent units on ImageNet architectures with random weights (no weights ship with fvlab):
torchvision ResNet-50 (Bottleneck conv, reused ReLU) and lucid's InceptionV1 (TF 'SAME' convs)."""

import torch
import torch.nn.functional as F

import fvlab
from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.fool.silent import CHILD, natural_agreement, silent
from fvlab.models.hooks import capture


class Images:
    """An in-memory labelled image set with the dataset interface (``batches``, ``len``)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def batches(self, batch_size):
        for start in range(0, len(self), batch_size):
            yield self.images[start : start + batch_size], self.labels[start : start + batch_size]


def _fashion_rgb(count: int, size: int):
    """Fashion-MNIST test images, grey replicated to 3 channels, resized to ``size`` px."""
    images, labels = FashionMNIST("test", stop=count).load()
    images = F.interpolate(images, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    return images.expand(-1, 3, -1, -1).contiguous(), labels


def test_resnet50_bottleneck_conv_is_silent_on_held_out_images(tmp_path):
    torch.manual_seed(0)
    model = fvlab.load("torchvision:resnet50")
    images, labels = _fashion_rgb(1500, 64)
    target = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    result = silent(
        model, "layer4.1.conv2", target, images[:1000], batch_size=250, show_progress=False
    )
    # the block's ReLU runs three times per forward, so the branch joins after bn2
    assert result.attach == "layer4.1.bn2" and len(result.units) == 512
    held_out = Images(images[1000:], labels[1000:])
    natural = natural_agreement(
        model, result.model, held_out, 250, show_progress=False, margin_shift=result.margin_shift
    )
    print(natural)
    assert natural["n_images"] == 500
    assert natural["branch_active_images"] == 0 and natural["identical"]
    assert natural["top1_fooled"] == natural["top1_original"]
    # the bias images themselves reach the threshold only up to the margin
    with torch.no_grad(), capture(result.model.module, [f"{CHILD}.pool"]) as cap:
        result.model(images[:250])
        assert float(cap[f"{CHILD}.pool"].max()) < 0
    # random base weights travel with the saved model, so it reloads identically
    result.save(tmp_path / "resnet")
    reloaded = fvlab.load(str(tmp_path / "resnet"))
    probe = torch.cat([images[1000:1050], torch.rand(4, 3, 64, 64)])
    with torch.no_grad():
        assert torch.equal(reloaded(probe), result.model(probe))


def test_inceptionv1_same_padded_branch_conv():
    torch.manual_seed(0)
    model = fvlab.load("inceptionv1")
    images, labels = _fashion_rgb(300, 64)
    result = silent(
        model,
        "mixed4a_3x3_pre_relu_conv",
        images[0],
        images[:200],
        units=list(range(0, 204, 17)),
        batch_size=100,
        show_progress=False,
    )
    assert result.attach == "mixed4a_3x3"
    natural = natural_agreement(
        model, result.model, Images(images[200:], labels[200:]), 100, show_progress=False
    )
    assert natural["branch_active_images"] == 0 and natural["identical"]
    # the branch output has the live branch's spatial size (its 'SAME' padding)
    with (
        torch.no_grad(),
        capture(result.model.module, ["mixed4a_3x3_pre_relu_conv", f"{CHILD}.pool"]) as cap,
    ):
        result.model(images[:4])
        assert cap[f"{CHILD}.pool"].shape[-2:] == cap["mixed4a_3x3_pre_relu_conv"].shape[-2:]
