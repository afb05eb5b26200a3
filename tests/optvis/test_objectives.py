import pytest
import torch

from fvlab.optvis import objectives as obj


@pytest.fixture
def acts():
    g = torch.Generator().manual_seed(0)
    return {"conv": torch.randn(4, 5, 6, 7, generator=g), "fc": torch.randn(4, 10, generator=g)}


def test_channel_neuron_logit(acts):
    a = acts["conv"]
    assert torch.allclose(obj.channel("conv", 2)(acts), a[:, 2].mean((1, 2)))
    # lucid's axes: x indexes rows (height), y columns (width)
    assert torch.equal(obj.neuron("conv", 1, x=4, y=6)(acts), a[:, 1, 4, 6])
    assert torch.equal(obj.neuron("conv", 1)(acts), a[:, 1, 3, 3])
    assert torch.equal(obj.logit("fc", 7)(acts), acts["fc"][:, 7])


def test_algebra_and_batch_targeting(acts):
    c1, c2 = obj.channel("conv", 1), obj.channel("conv", 2, batch=[0, 2])
    combined = 2 * c1 - c2 / 4 + 3
    expected = 2 * c1(acts) - c2(acts) / 4 + 3
    assert torch.allclose(combined(acts), expected)
    assert c2(acts)[1] == 0 and c2(acts)[3] == 0 and c2(acts)[0] != 0
    assert set(combined.layers) == {"conv"}
    mixed = sum([obj.channel("conv", 0), obj.logit("fc", 1)])
    assert mixed.layers == ("conv", "fc")
    assert torch.allclose((-c1)(acts), -c1(acts))


def test_direction_dot_and_cosine_are_different_things(acts):
    v = torch.randn(5)
    a = acts["conv"]
    dot = torch.einsum("bchw,c->bhw", a, v).mean((1, 2))
    assert torch.allclose(obj.direction("conv", v)(acts), dot, atol=1e-6)
    cos = torch.nn.functional.cosine_similarity(a, v.view(1, 5, 1, 1), dim=1).mean((1, 2))
    assert torch.allclose(obj.direction_cosine("conv", v)(acts), cos, atol=1e-6)
    assert torch.allclose(obj.direction("fc", torch.ones(10))(acts), acts["fc"].sum(1), atol=1e-5)


def test_diversity_is_negative_mean_gram_cosine(acts):
    a = acts["conv"]
    grams = torch.stack([x.flatten(1) @ x.flatten(1).T for x in a]).flatten(1)
    grams = grams / grams.norm(dim=1, keepdim=True)
    sims = grams @ grams.T
    expected = torch.stack([-(sims[i].sum() - sims[i, i]) / 3 for i in range(4)])
    assert torch.allclose(obj.diversity("conv")(acts), expected, atol=1e-5)
    same = {"conv": a[:1].expand(4, -1, -1, -1)}
    assert torch.allclose(obj.diversity("conv")(same), -torch.ones(4), atol=1e-5)


def test_units_objective_equals_per_element_channels(acts):
    ids = [3, 0, 4, 4]
    values = obj.units("conv", ids)(acts)
    for b, u in enumerate(ids):
        assert torch.isclose(values[b], obj.channel("conv", u)(acts)[b])
    with pytest.raises(ValueError, match="3 units but the batch has 4"):
        obj.units("conv", [1, 2, 3])(acts)
