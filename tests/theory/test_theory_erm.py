"""ERM-trained networks: same data, same small loss, same arg max / arg min, different elsewhere."""

from __future__ import annotations

import pytest
import torch

from fvlab.errors import FvlabError
from fvlab.theory.decoders import EXTREMES_ONLY
from fvlab.theory.erm import demonstrate_erm, held_out_depth, make_data


@pytest.fixture(scope="module")
def demo():
    return demonstrate_erm(seed=0)


def test_trained_pair_has_same_visualization_and_differs_at_held_out_points(demo):
    assert max(demo.loss_a, demo.loss_b) <= 1e-6
    gap = demo.extremes_gap()
    assert max(gap["argmax"], gap["argmin"]) <= 1e-3
    assert max(gap["max_value"], gap["min_value"]) <= 0.01
    assert torch.equal(demo.vis_a.argmax, torch.ones(2, dtype=torch.float64))
    assert torch.equal(demo.vis_a.argmin, torch.zeros(2, dtype=torch.float64))
    # the stated margin, with room: measured ≈ 0.32 at both points
    assert float(demo.disagreement.min()) >= demo.margin == 0.2
    # random seeds alone barely move the held-out values: the difference is the initialisation
    assert demo.seeds_only_gap < demo.margin / 4
    for name in EXTREMES_ONLY:
        assert min(demo.decoder_worst_error[name]) >= demo.margin / 2 - demo.value_tol, name
    assert all(demo.checks().values()), demo.checks()


def test_the_loss_never_sees_the_held_out_region():
    data = make_data(200, 0.5, 0.4, seed=3)
    assert (held_out_depth(data.x, 0.5) < 0).all()
    assert (held_out_depth(data.decoy_x, 0.5) > 0).all()
    assert (held_out_depth(data.held_out, 0.5) > 0).all()
    torch.testing.assert_close(data.y, data.x.mean(dim=1))


def test_bad_data_settings_are_errors():
    with pytest.raises(FvlabError, match="gap must be"):
        make_data(200, 0.9, 0.4, seed=0)
    with pytest.raises(FvlabError, match="n_train"):
        make_data(3, 0.5, 0.4, seed=0)
