"""Vectorised Spearman / Pearson / cosine against scipy and numpy, ties included."""

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fvlab.check.similarity import (
    average_ranks,
    pairwise_similarity,
    similarity_matrix,
    unit_vectors,
)
from fvlab.errors import FvlabError


def _matrices(max_rows: int = 5):
    """Two (n, d) float arrays with few distinct values (so ties are frequent) and a shared d."""

    @st.composite
    def build(draw):
        d = draw(st.integers(2, 40))
        values = st.sampled_from([-2.0, -0.5, 0.0, 0.0, 0.0, 0.25, 1.0, 3.5])
        a = draw(arrays(np.float64, (draw(st.integers(1, max_rows)), d), elements=values))
        b = draw(arrays(np.float64, (draw(st.integers(1, max_rows)), d), elements=values))
        return a, b

    return build()


def _scipy_matrix(a: np.ndarray, b: np.ndarray, fn) -> np.ndarray:
    return np.array([[fn(x, y) for y in b] for x in a], dtype=np.float64).reshape(len(a), len(b))


def _non_constant(a: np.ndarray) -> np.ndarray:
    return np.ptp(a, axis=1) > 0


@settings(max_examples=150, deadline=None)
@given(_matrices())
def test_spearman_equals_scipy_with_ties(pair):
    a, b = pair
    ours = similarity_matrix(torch.from_numpy(a), torch.from_numpy(b), "spearman").numpy()
    ok_a, ok_b = _non_constant(a), _non_constant(b)
    reference = _scipy_matrix(a[ok_a], b[ok_b], lambda x, y: scipy.stats.spearmanr(x, y).statistic)
    np.testing.assert_allclose(ours[np.ix_(ok_a, ok_b)], reference, atol=1e-6, rtol=0)
    # a constant vector has no rank correlation: scipy says NaN, we say 0
    assert np.all(ours[~ok_a] == 0) and np.all(ours[:, ~ok_b] == 0)


@settings(max_examples=60, deadline=None)
@given(_matrices())
def test_spearman_on_float32_activations_matches_scipy(pair):
    a, b = (x.astype(np.float32) for x in pair)
    za = unit_vectors(torch.from_numpy(a), "spearman", torch.float64)
    zb = unit_vectors(torch.from_numpy(b), "spearman", torch.float64)
    ok_a, ok_b = _non_constant(a), _non_constant(b)
    reference = _scipy_matrix(a[ok_a], b[ok_b], lambda x, y: scipy.stats.spearmanr(x, y).statistic)
    np.testing.assert_allclose((za @ zb.T).numpy()[np.ix_(ok_a, ok_b)], reference, atol=1e-6)


@settings(max_examples=80, deadline=None)
@given(_matrices())
def test_average_ranks_equal_scipy_rankdata(pair):
    a, _ = pair
    ours = average_ranks(torch.from_numpy(a)).numpy()
    np.testing.assert_array_equal(ours, scipy.stats.rankdata(a, axis=1))


def test_torch_rank_path_equals_numpy_path():
    from fvlab.check.similarity import _average_ranks_torch

    x = torch.randint(0, 6, (9, 300)).float()
    np.testing.assert_array_equal(
        _average_ranks_torch(x).numpy(), scipy.stats.rankdata(x.numpy(), axis=1)
    )


def test_pearson_and_cosine_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 50)), rng.normal(size=(3, 50)) + 0.3
    pearson = similarity_matrix(torch.from_numpy(a), torch.from_numpy(b), "pearson").numpy()
    cosine = similarity_matrix(torch.from_numpy(a), torch.from_numpy(b), "cosine").numpy()
    np.testing.assert_allclose(
        pearson, _scipy_matrix(a, b, lambda x, y: scipy.stats.pearsonr(x, y).statistic), atol=1e-12
    )
    expected_cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (
        b / np.linalg.norm(b, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(cosine, expected_cos, atol=1e-12)
    rowwise = pairwise_similarity(torch.from_numpy(a[:3]), torch.from_numpy(b), "pearson")
    np.testing.assert_allclose(rowwise.numpy(), np.diag(pearson[:3]), atol=1e-12)


def test_metrics_are_invariant_to_their_symmetries():
    x = torch.randn(3, 20, dtype=torch.float64)
    y = torch.randn(2, 20, dtype=torch.float64)
    base = similarity_matrix(x, y, "spearman")
    monotone = similarity_matrix(torch.exp(x), y**3, "spearman")  # ranks unchanged
    torch.testing.assert_close(base, monotone)
    pearson = similarity_matrix(x, y, "pearson")
    torch.testing.assert_close(similarity_matrix(3 * x + 7, y - 2, "pearson"), pearson)
    assert not torch.allclose(
        similarity_matrix(x + 7, y, "cosine"), similarity_matrix(x, y, "cosine")
    )


def test_bad_metric_and_shapes_are_clear_errors():
    with pytest.raises(FvlabError, match="valid: spearman, pearson, cosine"):
        similarity_matrix(torch.zeros(2, 3), torch.zeros(2, 3), "kendall")
    with pytest.raises(ValueError, match="same D"):
        similarity_matrix(torch.zeros(2, 3), torch.zeros(2, 4))
