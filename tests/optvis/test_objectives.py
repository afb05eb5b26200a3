import numpy as np
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


def test_wrap_objective_names_primitives_after_their_arguments():
    assert obj.channel("bn3", 5).name == "channel(bn3, 5)"
    assert obj.channel("bn3", 5, batch=[0, 2]).name == "channel(bn3, 5, batch=[0, 2])"
    assert obj.channel("bn3", 5, batch=None).name == "channel(bn3, 5)"  # defaults left out
    assert obj.neuron("conv", 1, x=4).name == "neuron(conv, 1, x=4)"
    assert obj.logit("fc", 3).name == "logit(fc, 3)"
    assert obj.diversity("bn3").name == "diversity(bn3)"
    assert obj.units("fc", range(10)).name == "units(fc, [0, 1, 2, … (10 values)])"
    assert obj.layer_units([("a", 1), ("b", 2)]).name == "layer_units([(a, 1), (b, 2)])"
    assert obj.direction("conv", torch.ones(5)).name == "direction(conv, tensor(5,))"
    assert obj.total_variation().name == "total_variation()"
    assert obj.l2(constant=0.5).name == "l2(constant=0.5)"
    combined = obj.channel("bn3", 5) - 0.1 * obj.total_variation()
    assert combined.name == "(channel(bn3, 5) - (total_variation() * 0.1))"

    @obj.wrap_objective
    def second(layer: str, k: int = 2) -> obj.Objective:
        return obj.Objective(lambda a: a[layer][:, k], [layer])

    assert second("fc").name == "second(fc)" and second("fc", k=3).name == "second(fc, k=3)"
    assert second.__name__ == "second" and second("fc").layers == ("fc",)


def numpy_tv(x):
    x = x.numpy().astype(np.float64)
    rows = np.abs(np.diff(x, axis=2)).reshape(len(x), -1).sum(1)
    cols = np.abs(np.diff(x, axis=3)).reshape(len(x), -1).sum(1)
    return rows + cols


def test_image_regularisers_read_the_input_and_match_numpy():
    g = torch.Generator().manual_seed(1)
    images = {"input": torch.rand(3, 2, 5, 7, generator=g)}
    x = images["input"].numpy().astype(np.float64)
    np.testing.assert_allclose(
        obj.total_variation()(images).numpy(), numpy_tv(images["input"]), rtol=1e-5
    )
    l1 = np.abs(x - 0.5).reshape(3, -1).sum(1)
    np.testing.assert_allclose(obj.l1(constant=0.5)(images).numpy(), l1, rtol=1e-5)
    l2 = np.sqrt(1e-6 + (x**2).reshape(3, -1).sum(1))
    np.testing.assert_allclose(obj.l2()(images).numpy(), l2, rtol=1e-5)
    flat = {"input": torch.full((2, 1, 4, 4), 0.3)}
    assert torch.equal(obj.total_variation()(flat), torch.zeros(2))
    tv = obj.total_variation()
    assert tv.layers == ("input",) and tv.model_layers == () and tv.reads_input
    mixed = obj.channel("bn3", 0) - tv
    assert mixed.model_layers == ("bn3",) and mixed.reads_input
    assert not obj.channel("bn3", 0).reads_input
