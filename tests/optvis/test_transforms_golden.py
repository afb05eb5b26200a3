"""Golden tests of every transform against NumPy references derived from first principles."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fvlab.optvis.transforms import (
    AffineJitterConfig,
    FusedAffineJitter,
    Jitter,
    Pad,
    RandomRotate,
    RandomScale,
    lucid_transforms,
    make_transforms,
)


def sample_numpy(img, src_x, src_y, mode, fill):
    """Sample img (C, H, W) at continuous pixel positions (centres at k + 0.5)."""
    c, h, w = img.shape
    out = np.full((c,) + src_x.shape, 0.0)
    px, py = src_x - 0.5, src_y - 0.5
    if mode == "nearest":
        ix, iy = np.rint(px).astype(int), np.rint(py).astype(int)
        inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        out[:, inside] = img[:, iy[inside], ix[inside]]
        out[:, ~inside] = fill
        return out
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - x0, py - y0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            vals = np.where(inside, img[:, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)], fill)
            out += vals * (wx * wy)
    return out


def inverse_map(out_hw, in_hw, scale, angle_deg, shift):
    """Output pixel centres → input positions: undo shift, rotation and scale about the centres."""
    (oh, ow), (h, w) = out_hw, in_hw
    v, u = np.meshgrid(np.arange(oh) + 0.5, np.arange(ow) + 0.5, indexing="ij")
    du, dv = u - ow / 2 - shift[1], v - oh / 2 - shift[0]
    t = math.radians(angle_deg)
    # a content rotation by +t maps input to output with R(t); invert with R(-t)
    su = (math.cos(t) * du + math.sin(t) * dv) / scale
    sv = (-math.sin(t) * du + math.cos(t) * dv) / scale
    return su + w / 2, sv + h / 2


def test_pad_matches_numpy():
    x = torch.rand(2, 3, 5, 6)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=0.5)
    np.testing.assert_allclose(Pad(2, 0.5).apply(x, {}).numpy(), expected)


@settings(max_examples=20, deadline=None)
@given(d=st.integers(0, 4), seed=st.integers(0, 1000))
def test_jitter_is_a_per_element_crop(d, seed):
    x = torch.rand(3, 2, 9, 8, generator=torch.Generator().manual_seed(seed))
    jitter = Jitter(d)
    params = jitter.sample(x, torch.Generator().manual_seed(seed))
    out = jitter.apply(x, params).numpy()
    assert out.shape == (3, 2, 9 - d, 8 - d)
    for b in range(3):
        oy, ox = params["offsets"][b].tolist()
        assert 0 <= oy <= d and 0 <= ox <= d
        np.testing.assert_array_equal(out[b], x[b, :, oy : oy + 9 - d, ox : ox + 8 - d].numpy())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), mode=st.sampled_from(["nearest", "bilinear"]))
def test_rotation_matches_numpy(seed, mode):
    x = torch.rand(3, 2, 11, 11, generator=torch.Generator().manual_seed(seed))
    rot = RandomRotate(angles=(-10, -3, 0, 7, 10), mode=mode, fill=0.0)
    params = rot.sample(x, torch.Generator().manual_seed(seed))
    out = rot.apply(x, params).numpy()
    for b in range(3):
        sx, sy = inverse_map((11, 11), (11, 11), 1.0, float(params["angle"][b]), (0, 0))
        ref = sample_numpy(x[b].numpy(), sx, sy, mode, 0.0)
        if mode == "nearest":  # ties at exactly .5 may round either way: compare most pixels
            assert np.mean(np.abs(out[b] - ref) < 1e-5) > 0.97
        else:
            np.testing.assert_allclose(out[b], ref, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000))
def test_per_sample_scale_matches_numpy(seed):
    x = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(seed))
    scale = RandomScale(fill=0.5)
    params = scale.sample(x, torch.Generator().manual_seed(seed))
    out = scale.apply(x, params).numpy()
    for b in range(4):
        sx, sy = inverse_map((12, 12), (12, 12), float(params["scale"][b]), 0.0, (0, 0))
        np.testing.assert_allclose(
            out[b], sample_numpy(x[b].numpy(), sx, sy, "bilinear", 0.5), atol=1e-5
        )


def test_batch_scale_resizes_like_lucid():
    x = torch.rand(2, 3, 20, 20)
    out = RandomScale(per_sample=False).apply(x, {"scale": torch.tensor([1.1])})
    assert out.shape == (2, 3, 22, 22)
    # half-pixel bilinear resize, reference
    sx, sy = np.meshgrid((np.arange(22) + 0.5) / 1.1, (np.arange(22) + 0.5) / 1.1, indexing="xy")
    ref = sample_numpy(x[0].numpy(), np.clip(sx, 0.5, 19.5), np.clip(sy, 0.5, 19.5), "bilinear", 0)
    np.testing.assert_allclose(out[0].numpy(), ref, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), size=st.sampled_from([16, 28, 64]))
def test_fused_transform_equals_composed_first_principles_map(seed, size):
    config = AffineJitterConfig.for_size(size)
    x = torch.rand(3, 1, size, size, generator=torch.Generator().manual_seed(seed))
    fused = FusedAffineJitter(config)
    params = fused.sample(x, torch.Generator().manual_seed(seed))
    out = fused.apply(x, params).numpy()
    side = size + 2 * config.pad - config.jitter1 - config.jitter2
    assert out.shape == (3, 1, side, side)
    for b in range(3):
        o1, o2 = params["offset1"][b].numpy(), params["offset2"][b].numpy()
        # sequential ops: pad → crop at o1 → scale/rotate about the centre → crop at o2
        c1 = size + 2 * config.pad - config.jitter1  # canvas after the first crop
        v, u = np.meshgrid(np.arange(side) + 0.5, np.arange(side) + 0.5, indexing="ij")
        u1, v1 = u + o2[1], v + o2[0]  # position on the c1 canvas
        t = math.radians(float(params["angle"][b]))
        s = float(params["scale"][b])
        du, dv = u1 - c1 / 2, v1 - c1 / 2
        su = (math.cos(t) * du + math.sin(t) * dv) / s + c1 / 2
        sv = (-math.sin(t) * du + math.cos(t) * dv) / s + c1 / 2
        src_u, src_v = su + o1[1] - config.pad, sv + o1[0] - config.pad
        ref = sample_numpy(x[b].numpy(), src_u, src_v, "bilinear", config.fill)
        np.testing.assert_allclose(out[b], ref, atol=1e-4)


def test_presets_and_sizes():
    cfg = AffineJitterConfig.for_size(128)
    assert (cfg.pad, cfg.jitter1, cfg.jitter2) == (12, 8, 4)
    assert AffineJitterConfig.for_size(28) == AffineJitterConfig(3, 2, 1)
    x = torch.rand(2, 3, 128, 128)
    out = lucid_transforms()(x, torch.Generator().manual_seed(0))
    side = out.shape[-1]
    assert out.shape[0] == 2 and out.shape[-2] == side
    assert round(0.9 * (128 + 24 - 8)) - 4 <= side <= round(1.1 * (128 + 24 - 8)) - 4
    assert torch.equal(make_transforms("none", 28)(x, None), x)


def test_draws_are_independent_per_element_and_seeded():
    x = torch.rand(64, 1, 28, 28)
    t = make_transforms("standard", 28)
    p1 = t.sample(x, torch.Generator().manual_seed(5))
    p2 = t.sample(x, torch.Generator().manual_seed(5))
    assert all(torch.equal(p1[k], p2[k]) for k in p1)
    assert len(set(p1["scale"].tolist())) > 3 and len(set(p1["angle"].tolist())) > 3
