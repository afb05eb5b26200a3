import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fvlab.errors import InputShapeError
from fvlab.models.inceptionv1 import INCEPTIONV1_SPEC
from fvlab.models.reference import FMNIST_SPEC
from fvlab.models.spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec

finite = st.floats(-5, 5, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    channels=st.integers(1, 4),
    lo=finite,
    width=st.floats(0.1, 300),
    mean=finite,
    std=st.floats(0.05, 10),
)
def test_preprocess_matches_formula(channels, lo, width, mean, std):
    spec = InputSpec(channels, 8, (lo, lo + width), (mean,) * channels, (std,) * channels)
    x = torch.rand(2, channels, 8, 8, generator=torch.Generator().manual_seed(channels))
    expected = ((lo + width * x) - mean) / std
    torch.testing.assert_close(spec.preprocess(x), expected, rtol=1e-5, atol=1e-4)


def test_known_specs():
    x = torch.full((1, 3, 32, 32), 0.5)
    assert torch.allclose(INCEPTIONV1_SPEC.preprocess(x), torch.full_like(x, 0.5 * 255 - 117))
    tv = InputSpec(3, 224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    out = tv.preprocess(x)
    for c in range(3):
        assert out[0, c, 0, 0].item() == pytest.approx((0.5 - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
    g = FMNIST_SPEC.preprocess(torch.zeros(1, 1, 28, 28))
    assert g.flatten()[0].item() == pytest.approx(-0.2860 / 0.3530)


def test_wrong_shapes_have_precise_messages():
    with pytest.raises(InputShapeError, match=r"shape \(batch, 1, H, W\).*unsqueeze\(0\)"):
        FMNIST_SPEC.preprocess(torch.zeros(1, 28, 28))
    with pytest.raises(InputShapeError, match="takes 1-channel images"):
        FMNIST_SPEC.preprocess(torch.zeros(2, 3, 28, 28))
    with pytest.raises(InputShapeError, match="at least 8"):
        FMNIST_SPEC.preprocess(torch.zeros(2, 1, 4, 4))
    fixed = InputSpec(3, 224, fixed_size=True)
    with pytest.raises(InputShapeError, match="exactly 224"):
        fixed.preprocess(torch.zeros(1, 3, 100, 100))


def test_spec_json_round_trip():
    assert InputSpec.from_json(INCEPTIONV1_SPEC.to_json()) == INCEPTIONV1_SPEC
