"""The gate's exactness with the detector's decision forced each way (no trained detector)."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fvlab
from fvlab.fool.circuit import Circuit, GateConstants, derive_constants, install
from fvlab.fool.circuit.detector import Detector


class ForcedDetector(Detector):
    """A detector whose decision is fixed: +1 (visualization) or −1 (natural) for every input."""

    def __init__(self, channels: int, decision: float) -> None:
        super().__init__(channels)
        self.decision = decision

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.full((images.shape[0],), self.decision, device=images.device)


@settings(max_examples=60, deadline=None)
@given(
    f=st.lists(st.floats(-5, 20, allow_nan=False), min_size=4, max_size=4),
    d=st.lists(st.floats(-5, 20, allow_nan=False), min_size=4, max_size=4),
    margin=st.floats(0.0, 2.0),
)
def test_combine_is_exact_inside_the_derived_ranges(f, d, margin):
    constants = derive_constants(-5, 20, -5, 20, margin)
    circuit = Circuit(
        Detector(), fvlab.InputSpec(1, 8), [0, 1, 2, 3], constants, mapping=[4, 5, 6, 7]
    )
    out = torch.tensor([f + d], dtype=torch.float32)
    x = torch.zeros(1, 1, 8, 8)
    natural = circuit.combine(out, torch.tensor([False]), x)
    visual = circuit.combine(out, torch.tensor([True]), x)
    assert torch.allclose(natural, out, atol=1e-5, rtol=0)
    expected = out.clone()
    expected[0, :4] = out[0, 4:]
    assert torch.allclose(visual, expected, atol=1e-5, rtol=0)
    assert all(v == 0 for v in circuit.violations(out, torch.tensor([False]), x).values())


def test_derive_constants_formula():
    c = derive_constants(-3.0, 10.0, -1.0, 12.0, margin=0.5)
    assert c.shift == pytest.approx(4.5 + 0.12)
    assert c.k == pytest.approx(4.5 + 0.12 + 18.0 + 1e-3)
    # post-ReLU: a small positive shift keeps a gradient through ReLU(D + s) at D = 0
    post_relu = derive_constants(0.0, 5.0, 0.0, 7.0, margin=1.0)
    assert post_relu.shift == pytest.approx(0.07)


def test_violations_are_counted_outside_the_ranges():
    circuit = Circuit(Detector(), fvlab.InputSpec(1, 8), [0], GateConstants(1.0, 5.0), mapping=[1])
    out = torch.tensor([[-3.0, 9.0]])
    v = circuit.violations(out, torch.tensor([False]), torch.zeros(1, 1, 8, 8))
    assert v["natural_F_below_minus_s"] == 1 and v["natural_D_above_k_minus_s"] == 1


@pytest.mark.parametrize("layer", ["fc", "relu3"])
def test_installed_circuit_on_fmnist_cnn_is_exact_both_ways(layer, fmnist_test):
    x = fmnist_test[0][:64]
    original = fvlab.load("fmnist-cnn")
    with torch.no_grad(), fvlab.capture(original, [layer, "fc"]) as cap:
        original(x)
        raw, logits = cap[layer].clone(), cap["fc"].clone()
    n = raw.shape[1]
    mapping = [(i + 1) % n for i in range(n)]
    constants = derive_constants(
        float(raw.min()), float(raw.max()), float(raw.min()), float(raw.max())
    )
    for decision, expect_layer in ((-1.0, raw), (1.0, raw[:, mapping])):
        fooled = install(
            fvlab.load("fmnist-cnn"),
            layer,
            Circuit(
                ForcedDetector(1, decision),
                original.spec,
                list(range(n)),
                constants,
                mapping=mapping,
            ),
        )
        with torch.no_grad(), fvlab.capture(fooled, [layer, "fc"]) as cap:
            fooled(x)
            assert torch.allclose(cap[layer], expect_layer, atol=1e-5, rtol=0)
            if decision < 0:
                assert torch.allclose(cap["fc"], logits, atol=1e-5, rtol=0)
        assert "fvlab_circuit" in fooled.layer_names() and layer in fooled.layer_names()


def test_installs_on_torchvision_googlenet_logits():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 64, 64)
    base = fvlab.load("torchvision:googlenet")
    with torch.no_grad():
        logits = base(x)
    constants = derive_constants(
        float(logits.min()), float(logits.max()), float(logits.min()), float(logits.max())
    )
    mapping = [(i + 100) % 1000 for i in range(1000)]
    for decision, expected in ((-1.0, logits), (1.0, logits[:, mapping])):
        fresh = copy.deepcopy(base)  # random weights differ between loads
        fooled = install(
            fresh,
            "fc",
            Circuit(
                ForcedDetector(3, decision),
                base.spec,
                list(range(1000)),
                constants,
                mapping=mapping,
            ),
        )
        with torch.no_grad():
            assert torch.allclose(fooled(x), expected, atol=1e-5, rtol=0)


def test_target_mode_is_the_template_response(fmnist_test):
    x = fmnist_test[0][:8]
    original = fvlab.load("fmnist-cnn")
    template = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(1))
    template = template - template.mean()
    constants = derive_constants(-20, 30, -20, 30)
    fooled = install(
        fvlab.load("fmnist-cnn"),
        "fc",
        Circuit(
            ForcedDetector(1, 1.0),
            original.spec,
            [0, 3],
            constants,
            template=template,
            template_scale=5.0,
        ),
    )
    with torch.no_grad():
        out, ref = fooled(x), original(x)
    response = (x * template).flatten(1).mean(1) * 5.0
    assert torch.allclose(out[:, 0], response, atol=1e-5)
    assert torch.allclose(out[:, 3], response, atol=1e-5)
    assert torch.allclose(out[:, [1, 2, 4]], ref[:, [1, 2, 4]], atol=1e-6)


def test_target_template_sits_at_the_centre_of_a_padded_canvas(fmnist_test):
    """The render transforms hand the model a canvas a few pixels larger than the image: the
    template unit must read the image where it is (the centre), not a stretched template."""
    from fvlab.fool.circuit.gate import centred_on, template_from_target

    x = fmnist_test[0][:8]
    target = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(2))
    template = template_from_target(target)
    circuit = Circuit(
        ForcedDetector(1, 1.0),
        fvlab.InputSpec(1, 28),
        [0],
        derive_constants(-20, 30, -20, 30),
        template=template,
    )
    logits = torch.zeros(len(x), 10)
    on_image = circuit.signal(logits, x)[:, 0]
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))  # 32 px, image exactly at the centre
    assert torch.allclose(circuit.signal(logits, padded)[:, 0], on_image, atol=1e-6)
    # an odd difference puts the centre between pixels: resampled, same total response mass
    placed = centred_on(template, (31, 31))
    assert placed.shape == (1, 31, 31)
    assert float(placed.sum()) == pytest.approx(float(template.sum()), rel=1e-4)
    # the linear unit ⟨t − ½, x⟩ is largest at the binarised target
    best = (target > 0.5).float()
    others = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    assert ((others * template).sum((1, 2, 3)) <= (best * template).sum()).all()
