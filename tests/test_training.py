import torch

from fvlab.models.train_reference import TrainConfig, augment, train_reference


def test_augment_shifts_and_flips_per_image():
    x = torch.arange(4 * 25, dtype=torch.float32).view(4, 1, 5, 5)
    out = augment(x, torch.Generator().manual_seed(3), max_shift=1)
    assert out.shape == x.shape
    for i in range(4):
        src = x[i, 0]
        candidates = [src, src.flip(-1)]
        ok = False
        for c in candidates:
            padded = torch.nn.functional.pad(c, (1, 1, 1, 1))
            for dy in range(3):
                for dx in range(3):
                    ok |= torch.equal(padded[dy : dy + 5, dx : dx + 5], out[i, 0])
        assert ok


def test_training_is_deterministic_for_a_seed(monkeypatch):
    from fvlab.data import fashion_mnist

    original = fashion_mnist.FashionMNIST.load

    def small(self):
        x, y = original(self)
        return x[:1024], y[:1024]

    monkeypatch.setattr(fashion_mnist.FashionMNIST, "load", small)
    config = TrainConfig(seed=7, epochs=1)
    a, record = train_reference(config, show_progress=False)
    b, _ = train_reference(config, show_progress=False)
    c, _ = train_reference(TrainConfig(seed=8, epochs=1), show_progress=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert record["config"]["seed"] == 7
