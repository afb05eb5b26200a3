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
