"""Toy fooling: identical test predictions, visualization in another unit's arg max region."""

from __future__ import annotations

import pytest
import torch

import fvlab
from fvlab.errors import FvlabError
from fvlab.theory.toy_fooling import (
    as_images,
    demonstrate_toy_fooling,
    fool,
    toy_spec,
    two_moons,
)


@pytest.fixture(scope="module")
def demo():
    from fvlab.theory.threads import limited_threads

    with limited_threads(1):
        return demonstrate_toy_fooling(seed=0, steps=256, starts=2)


def test_test_predictions_are_identical(demo):
    assert demo.identical_predictions
    assert demo.max_logit_difference == 0.0
    assert demo.gated_test_inputs == 0
    assert demo.accuracy == demo.fooled_accuracy
    assert demo.accuracy > 0.95  # a real classifier, not a constant one


def test_visualization_lands_in_the_other_units_argmax_region(demo):
    original, fooled = demo.paths["original"][-1], demo.paths["fooled"][-1]
    assert demo.in_region(original, demo.unit).all()
    assert not demo.in_region(original, demo.other).any()
    assert demo.in_region(fooled, demo.other).all()
    assert not demo.in_region(fooled, demo.unit).any()
    # the two visualizations are in different corners of the input square
    assert (original - fooled).abs().max() > 0.9
    assert all(demo.checks().values()), demo.checks()


def test_the_gate_changes_the_unit_off_the_data(demo):
    """Negative control: off the data the fooled unit really differs from the original."""
    far = torch.tensor([[0.02, 0.98], [0.98, 0.02], [0.98, 0.98], [0.02, 0.02]])
    base = fvlab.from_module(demo.model, demo.spec)
    bent = fvlab.from_module(demo.fooled, demo.spec)
    with torch.no_grad():
        assert not torch.equal(base(as_images(far)), bent(as_images(far)))


def test_dataset_is_seeded_and_a_filled_box_is_refused(demo):
    a, b = two_moons(50, 3), two_moons(50, 3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], two_moons(50, 4)[0])
    spread = torch.rand(500, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(FvlabError, match="tau_factor"):
        fool(demo.model, toy_spec(spread), spread, demo.unit, demo.other)
