"""Structured networks: single-index monotone nets are ordered from the visualization."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fvlab.errors import FvlabError
from fvlab.theory.mlp import as_scalar_fn, mlp_layers
from fvlab.theory.structured import demonstrate_structured, single_index_mlp


@settings(max_examples=15, deadline=None)
@given(d=st.integers(1, 6), width=st.integers(2, 12), seed=st.integers(0, 10_000))
def test_single_index_net_orders_like_its_projection(d, width, seed):
    net = single_index_mlp(d, width, seed)
    layers = mlp_layers(net)  # a plain Linear/ReLU MLP of the usual shape
    assert [W.shape for W, _ in layers] == [(width, d), (width, width), (1, width)]
    a = layers[0][0][0] / layers[0][0][0, 0].abs()  # rank one: every row ∥ a
    g = torch.Generator().manual_seed(seed)
    x, y = (torch.rand(500, d, generator=g, dtype=torch.float64) for _ in range(2))
    f = as_scalar_fn(net)
    with torch.no_grad():
        assert torch.equal(f(x) > f(y), (x - y) @ a > 0)  # strictly increasing in a·x


def test_structured_decoder_is_reliable_only_on_structured_nets():
    demo = demonstrate_structured(d=8, n_nets=3, n_pairs=1000)
    assert demo.worst("structured") >= 0.999  # measured 1.0
    assert demo.mean("unstructured") <= 0.9  # measured ≈ 0.79 (same decoder, same size)
    assert demo.best_unstructured()[1] < 0.95
    assert all(demo.checks().values()), demo.checks()


def test_bad_sizes_are_errors():
    with pytest.raises(FvlabError, match="width"):
        single_index_mlp(3, 1, 0)
    with pytest.raises(FvlabError, match="n_nets"):
        demonstrate_structured(n_nets=0)
