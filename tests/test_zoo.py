import pytest
import torch

import fvlab
from fvlab.errors import CorruptFileError, FvlabError, FvlabWarning, UnknownModelError
from fvlab.models.evaluate import top1_accuracy


def test_reference_model_accuracy_on_real_test_set(reference_model):
    from fvlab.data.fashion_mnist import FashionMNIST

    accuracy = top1_accuracy(reference_model, FashionMNIST("test"), show_progress=False)
    assert accuracy.n_images == 10000
    assert accuracy.top1 >= 0.91


def test_reference_weights_are_small_and_layers_distinct(reference_model):
    from fvlab.models.zoo import EMBEDDED_WEIGHTS

    assert EMBEDDED_WEIGHTS.stat().st_size <= 2 * 1024 * 1024
    names = reference_model.layer_names()
    assert len(names) == len(set(names))
    relus = [n for n in names if n.startswith("relu")]
    assert relus == ["relu1", "relu2", "relu3", "relu4", "relu5"]


def test_inceptionv1_has_lucid_layers_and_1008_logits():
    with pytest.warns(FvlabWarning, match="random initialisation"):
        model = fvlab.load("inceptionv1")
    names = model.layer_names()
    for name in (
        "conv2d0",
        "mixed3a",
        "mixed4a",
        "mixed5b",
        "mixed4a_3x3_pre_relu_conv",
        "softmax2_pre_activation_matmul",
    ):
        assert name in names
    with torch.no_grad():
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 1008)


def test_random_torchvision_model_says_so():
    with pytest.warns(FvlabWarning, match="random initialisation"):
        model = fvlab.load("torchvision:resnet18")
    assert "layer4.1.conv2" in model.layer_names()
    assert model.class_names is not None and len(model.class_names) == 1000


def test_weights_round_trip_and_corrupt_file(tmp_path):
    model = fvlab.load("torchvision:resnet18")
    path = tmp_path / "w.pt"
    torch.save(model.module.state_dict(), path)
    again = fvlab.load("torchvision:resnet18", weights=path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CorruptFileError, match="cannot read weights file"):
        fvlab.load("torchvision:resnet18", weights=broken)
    with pytest.raises(CorruptFileError, match="do not fit this architecture"):
        fvlab.load("torchvision:resnet34", weights=path)
    with pytest.raises(FvlabError, match="not found"):
        fvlab.load("fmnist-cnn", weights=tmp_path / "nope.pt")


def test_unknown_model_names():
    with pytest.raises(UnknownModelError, match="resnet50"):
        fvlab.load("torchvision:resnet5O")
    with pytest.raises(UnknownModelError, match="fmnist-cnn"):
        fvlab.load("fmnist")


def test_user_module_with_spec():
    module = torch.nn.Sequential(torch.nn.Conv2d(4, 2, 3), torch.nn.ReLU())
    spec = fvlab.InputSpec(channels=4, size=16)
    model = fvlab.from_module(module, spec, "four-channel")
    assert model(torch.rand(1, 4, 16, 16)).shape == (1, 2, 14, 14)
    assert model.layer_names() == ["0", "1"]


# -- fmnist-resnet18: torchvision's ResNet-18, trained on Fashion-MNIST at 64 px -----------------
def _resnet18_weights():
    from fvlab.models.resnet18.model import WEIGHTS

    assert WEIGHTS.is_file(), (
        f"{WEIGHTS} is committed (train: python -m fvlab.models.resnet18.train)"
    )
    return WEIGHTS


@pytest.fixture(scope="module")
def resnet18_model():
    _resnet18_weights()
    return fvlab.load("fmnist-resnet18")


def test_fmnist_resnet18_is_torchvision_code_unmodified_in_half_precision(resnet18_model):
    import torchvision

    path = _resnet18_weights()
    assert path.stat().st_size <= 25 * 1024 * 1024
    stored = torch.load(path, map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    module = resnet18_model.module
    assert type(module) is torchvision.models.resnet.ResNet
    assert {type(b) for b in (*module.layer1, *module.layer4)} == {
        torchvision.models.resnet.BasicBlock
    }
    reference = torchvision.models.resnet18(num_classes=10).state_dict()
    state = module.state_dict()
    assert list(state) == list(reference)
    assert all(
        state[k].shape == v.shape and state[k].dtype == v.dtype for k, v in reference.items()
    )
    spec = resnet18_model.spec
    assert (spec.channels, spec.size) == (3, 64)
    assert resnet18_model.class_names[0] == "T-shirt/top"


def test_fmnist_resnet18_natural_images_are_fashion_mnist_at_64_px(resnet18_model):
    import torch.nn.functional as F

    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.data.natural import open_dataset

    dataset = open_dataset(resnet18_model, None, "test").slice(100, 164)
    assert dataset.start == 100 and len(dataset) == 64 and len(open_dataset(resnet18_model, None))
    images, labels = next(dataset.batches(64))
    grey, grey_labels = next(FashionMNIST("test", start=100, stop=164).batches(64))
    assert images.shape == (64, 3, 64, 64) and torch.equal(labels, grey_labels)
    assert images.min() >= 0 and images.max() <= 1
    expected = F.interpolate(grey, size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.equal(images[:, 1:2], expected) and torch.equal(images[:, 0], images[:, 2])


def test_fmnist_resnet18_top1_on_real_test_images(resnet18_model):
    from fvlab.data.dataset import head
    from fvlab.data.natural import open_dataset

    dataset = head(open_dataset(resnet18_model, None, "test"), 2000)
    accuracy = top1_accuracy(resnet18_model, dataset, show_progress=False)
    assert accuracy.n_images == 2000
    assert accuracy.top1 >= 0.90  # all 10,000 test images: 0.9174 (fmnist-resnet18.json)
