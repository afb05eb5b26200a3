"""One probe pass answers every "which layers, in what order, how many units?" question."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fvlab
from fvlab.errors import FvlabError, RepeatedModuleError, UnknownLayerError
from fvlab.models.probe import check_units, forward_order, layer_units, probe


def test_probe_records_every_call_with_its_shape(reference_model):
    result = probe(reference_model)
    names = [c.name for c in result.calls]
    assert names.index("conv1") < names.index("bn1") < names.index("fc")
    shapes = {c.name: c.shape for c in result.calls}
    assert shapes["conv3"] == (1, 64, 14, 14) and shapes["fc"] == (1, 10)
    assert all(c.in_forward for c in result.calls)
    assert result.counts()["relu3"] == 1


def test_calls_of_a_root_pre_hook_are_not_in_the_forward(reference_model):
    loaded = fvlab.load("fmnist-cnn")
    side = nn.Conv2d(1, 2, 3)
    loaded.module.add_module("side", side)

    def look_at_input(module: nn.Module, args: tuple) -> None:
        side(args[0])  # like a fooling circuit's detector reading the input

    loaded.module.register_forward_pre_hook(look_at_input)
    result = probe(loaded)
    side_calls = [c for c in result.calls if c.name == "side"]
    assert len(side_calls) == 1 and not side_calls[0].in_forward
    assert "side" not in forward_order(loaded)
    assert forward_order(loaded) == forward_order(reference_model)


def test_units_are_checked_against_the_layer(reference_model):
    assert layer_units(reference_model, "relu3") == 64
    assert check_units(reference_model, "fc", None) == list(range(10))
    assert check_units(reference_model, "fc", (3, 1)) == [3, 1]
    with pytest.raises(
        FvlabError, match=r"units: layer 'fc' has 10 units \(0–9\); out of range: \[10\]"
    ):
        check_units(reference_model, "fc", [2, 10])
    with pytest.raises(FvlabError, match="chosen is empty"):
        check_units(reference_model, "fc", [], parameter="chosen")
    with pytest.raises(UnknownLayerError, match="closest valid names"):
        layer_units(reference_model, "relu33")


def test_a_reused_module_has_no_unit_count():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.conv(self.act(x)))

    loaded = fvlab.from_module(Twice(), fvlab.InputSpec(channels=1, size=8))
    assert probe(loaded).counts()["act"] == 2
    with pytest.raises(RepeatedModuleError, match="ran 2 times"):
        layer_units(loaded, "act")
    assert "act" not in forward_order(loaded)
