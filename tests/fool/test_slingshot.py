"""Weight-only fooling (gradient slingshot, push-down/up) on fmnist-cnn: a short fine-tune keeps
the natural argmax on the real test set, the saved model reloads exactly, the field maths."""

import pytest
import torch

import fvlab
from fvlab.cli import main
from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.fool.slingshot import field
from fvlab.fool.slingshot.build import SlingshotConstruction, build_slingshot
from fvlab.fool.slingshot.evaluate import natural_behaviour, preservation_r2
from fvlab.fool.targets import builtin_target
from fvlab.jobs import SettingsError
from fvlab.optvis.param import PREIMAGE_CLIP, fft_preimage

UNITS = (0, 8)


@pytest.fixture(scope="module")
def fooled(reference_model):
    natural, _ = FashionMNIST("train", stop=3000).load()
    target = builtin_target("smiley", 28)[None]
    settings = SlingshotConstruction(
        layer="relu3", units=UNITS, steps=30, points=4, natural_batch=64, refresh=1000, lr=5e-4,
        alpha=0.8,
    )  # fmt: skip
    return build_slingshot(reference_model, natural, target, settings, show_progress=False)


def test_preimage_inverts_the_fft_image():
    target = builtin_target("smiley", 28)[None]
    scale = field.fft_scale(28)
    image = field.image_of(fft_preimage(target), scale)
    clipped = target.clamp(PREIMAGE_CLIP, 1 - PREIMAGE_CLIP)
    assert torch.allclose(image, clipped, atol=1e-4)
    g = torch.Generator().manual_seed(0)
    q_t = fft_preimage(target)
    points = field.tunnel_points(q_t, 6, 0.01, 0.0, g)
    assert points.shape == (6, *q_t.shape[1:])
    peak, radius = torch.tensor(2.0), torch.tensor(10.0)
    assert field.bowl(q_t, q_t, peak, radius).item() == pytest.approx(2.0)


@pytest.mark.slow
def test_fine_tune_keeps_natural_argmax_on_the_real_test_set(fooled, reference_model, fmnist_test):
    x, y = fmnist_test
    natural = natural_behaviour(reference_model, fooled.model, x, y)
    assert natural["argmax_unchanged"] >= 0.98, natural
    assert natural["top1_drop_pp"] <= 1.0, natural
    r2 = preservation_r2(reference_model, fooled.model, "relu3", UNITS, x[:2000])
    assert r2["layer"] >= 0.8, r2
    # only weights changed: same modules, same layer names, no child added
    assert fooled.model.layer_names() == reference_model.layer_names()
    assert any(
        not torch.equal(a, b)
        for a, b in zip(fooled.model.module.parameters(), reference_model.module.parameters(),
                        strict=True)
    )  # fmt: skip


def test_saved_model_reloads_exactly(fooled, tmp_path, fmnist_test):
    fooled.save(tmp_path / "model")
    again = fvlab.load(str(tmp_path / "model"))
    x = fmnist_test[0][:500]
    with torch.no_grad():
        assert torch.equal(again(x), fooled.model(x))


def test_settings_errors(tmp_path, capsys):
    with pytest.raises(SettingsError, match="^method"):
        SlingshotConstruction(layer="relu3", method="shove")
    with pytest.raises(SettingsError, match="^alpha"):
        SlingshotConstruction(layer="relu3", alpha=2.0)
    with pytest.raises(SystemExit) as exit_info:
        main(["fool", "slingshot", "--layer", "relu3", "--units", "99", "--steps", "1",
              "--out", str(tmp_path), "-q"])  # fmt: skip
    assert exit_info.value.code == 2
    assert "has 64 units" in capsys.readouterr().err
