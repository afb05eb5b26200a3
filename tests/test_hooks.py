import pytest
import torch

from fvlab.errors import RepeatedModuleError, UnknownLayerError
from fvlab.models.hooks import capture, resolve_layers


def _hook_count(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def test_capture_returns_layer_outputs_and_removes_hooks(reference_model, fmnist_test):
    x = fmnist_test[0][:16]
    module = reference_model.module
    with torch.no_grad(), capture(reference_model, ["bn3", "relu3", "fc"]) as cap:
        logits = reference_model(x)
        assert torch.equal(cap["fc"], logits)
        assert torch.equal(cap["relu3"], cap["bn3"].clamp_min(0))
        assert cap["bn3"].shape == (16, 64, 14, 14)
        assert _hook_count(module) == 4
    assert _hook_count(module) == 0


def test_map_output_keeps_only_the_mapped_value(reference_model, fmnist_test):
    x = fmnist_test[0][:16]
    with torch.no_grad(), capture(reference_model, ["bn3", "relu3"]) as full:
        reference_model(x)
    seen = []

    def spatial_mean(name, output):
        seen.append(name)
        return output.mean((2, 3))

    with (
        torch.no_grad(),
        capture(reference_model, ["bn3", "relu3"], map_output=spatial_mean) as cap,
    ):
        reference_model(x)
        assert seen == ["bn3", "relu3"]
        for name in ("bn3", "relu3"):
            assert cap[name].shape == (16, 64)
            torch.testing.assert_close(cap[name], full[name].mean((2, 3)))
    assert _hook_count(reference_model.module) == 0


def test_hooks_removed_after_exception(reference_model):
    with pytest.raises(ZeroDivisionError), capture(reference_model, ["conv1", "fc"]):
        assert _hook_count(reference_model.module) == 3
        _ = 1 / 0
    assert _hook_count(reference_model.module) == 0


def test_stop_early_gives_the_same_activations(reference_model, fmnist_test):
    x = fmnist_test[0][:8]
    with torch.no_grad(), capture(reference_model, ["bn2"], stop_early=True) as cap:
        assert cap.run(reference_model, x) is not None  # first pass runs fully
        full = cap["bn2"].clone()
        assert cap.run(reference_model, x) is None  # later passes stop after bn2
        assert torch.equal(cap["bn2"], full)


def test_unknown_layer_names_nearest(reference_model):
    with pytest.raises(UnknownLayerError, match="'conv3'"):
        resolve_layers(reference_model.module, ["covn3"])
    with pytest.raises(UnknownLayerError, match="'layer4.1.conv2'"):
        import torchvision

        resolve_layers(torchvision.models.resnet50(weights=None), ["layer4.1.conv_2"])


def test_reused_relu_in_torchvision_resnet_is_reported():
    import torchvision

    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), capture(model, ["layer1.0.relu", "layer1.0.bn1"]) as cap:
        model(x)
        assert cap.repeated == {"layer1.0.relu": 3}
        assert cap["layer1.0.bn1"].shape[1] == 64
        with pytest.raises(RepeatedModuleError, match="ran 3 times in one forward pass"):
            cap["layer1.0.relu"]
        assert len(cap.calls("layer1.0.relu")) == 3
    with torch.no_grad(), capture(model, ["layer1.0.relu"], on_repeat="last") as cap:
        model(x)
        assert cap["layer1.0.relu"].shape[1] == 256  # third use: after the residual add
    assert _hook_count(model) == 0


def test_stop_early_is_disabled_for_reused_modules():
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), capture(model, ["layer1.0.relu"], stop_early=True) as cap:
        cap.run(model, x)
        assert cap.run(model, x) is not None  # repeats seen: never stops early
        assert cap.repeated == {"layer1.0.relu": 2}
