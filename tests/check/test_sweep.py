"""Activation sweep on the real Fashion-MNIST test set: exact statistics, shards, bounded state."""

import numpy as np
import pytest
import torch

from fvlab.activations.sweep import merge_sweeps, reduce_activation, sweep
from fvlab.data.dataset import InMemoryImages, fetch_images, select_per_class
from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.errors import FvlabError, UnknownLayerError
from fvlab.models.hooks import capture
from fvlab.models.probe import choose_layers, forward_order

FMNIST_LAYERS = [
    "conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "conv3", "bn3", "relu3",
    "pool3", "conv4", "bn4", "relu4", "conv5", "bn5", "relu5", "gap", "fc",
]  # fmt: skip
PLAN = {"relu3": ["spatial_mean", "spatial_max"], "bn4": "flatten", "fc": "spatial_mean"}


def test_forward_order_of_fmnist_cnn(reference_model):
    # every leaf in execution order; the Flatten reshape is left out
    assert forward_order(reference_model) == FMNIST_LAYERS
    assert choose_layers(reference_model, "relu3, fc") == ["relu3", "fc"]
    with pytest.raises(UnknownLayerError, match="relu3"):
        choose_layers(reference_model, "relu33")


def test_reductions(reference_model):
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    assert reduce_activation(x, "flatten").shape == (2, 60)
    torch.testing.assert_close(reduce_activation(x, "spatial_mean"), x.mean((2, 3)))
    torch.testing.assert_close(reduce_activation(x, "spatial_max"), x.amax((2, 3)))
    torch.testing.assert_close(reduce_activation(x[:, :, 0, 0], "spatial_max"), x[:, :, 0, 0])
    with pytest.raises(FvlabError, match="valid: flatten, spatial_mean, spatial_max"):
        reduce_activation(x, "median")


@pytest.fixture(scope="module")
def first_3000(reference_model):
    data = FashionMNIST("test", stop=3000)
    return sweep(reference_model, data, PLAN, top_k=5, sample=64, show_progress=False)


def test_statistics_equal_a_direct_computation(reference_model, fmnist_test, first_3000):
    images = fmnist_test[0][:3000]
    with torch.no_grad(), capture(reference_model, ["relu3", "bn4"]) as cap:
        outs = [(reference_model(x), cap["relu3"], cap["bn4"]) for x in images.split(1000)]
    relu3 = torch.cat([o[1] for o in outs]).double()
    mean_act = relu3.mean((2, 3))
    stats = first_3000[("relu3", "spatial_mean")]
    assert stats.moments.count == 3000 and first_3000.n_images == 3000
    np.testing.assert_allclose(stats.moments.mean, mean_act.mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        stats.moments.std, mean_act.std(0, unbiased=False).numpy(), rtol=1e-5
    )
    np.testing.assert_allclose(stats.moments.max, mean_act.amax(0).numpy(), rtol=1e-6)
    fires = (relu3.amax((2, 3)) > 0).double().mean(0).numpy()
    np.testing.assert_array_equal(
        first_3000[("relu3", "spatial_max")].moments.active_fraction, fires
    )
    top_values, top_index = mean_act.topk(5, dim=0)
    np.testing.assert_allclose(stats.top.values, top_values.T.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(stats.top.indices, top_index.T.numpy())
    bn4 = torch.cat([o[2] for o in outs]).flatten(1).double()
    np.testing.assert_allclose(first_3000["bn4"].moments.min, bn4.amin(0).numpy(), rtol=1e-6)
    logits = torch.cat([o[0] for o in outs]).double()
    np.testing.assert_allclose(first_3000["fc"].moments.mean, logits.mean(0).numpy(), rtol=1e-6)
    # the uniform sample holds real rows of the data, and quantiles come from it
    sample = stats.sample
    np.testing.assert_allclose(sample.values, mean_act[sample.indices].numpy(), rtol=1e-6)
    assert len(set(sample.indices.tolist())) == 64
    assert sample.quantile([0.5]).shape == (1, 64)


def test_shards_merge_to_the_full_sweep(reference_model, first_3000):
    shards = [
        sweep(
            reference_model,
            FashionMNIST("test", start=a, stop=b),
            PLAN,
            top_k=5,
            sample=64,
            batch_size=batch,
            show_progress=False,
        )
        for (a, b), batch in [((0, 700), 128), ((700, 3000), 500)]
    ]
    merged = merge_sweeps(shards[::-1])
    assert merged.ranges == [(0, 700), (700, 3000)] and merged.n_images == 3000
    for key, full in first_3000.stats.items():
        part = merged.stats[key]
        assert part.moments.count == full.moments.count
        np.testing.assert_allclose(part.moments.mean, full.moments.mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(part.moments.m2, full.moments.m2, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(part.moments.max, full.moments.max)
        np.testing.assert_array_equal(part.moments.active, full.moments.active)
        np.testing.assert_array_equal(part.top.values, full.top.values)
        np.testing.assert_array_equal(part.sample.indices, full.sample.indices)
    with pytest.raises(ValueError, match="overlap"):
        merge_sweeps([shards[0], shards[0]])


def test_each_layer_alone_gives_the_same_statistics_as_the_joint_sweep(reference_model, first_3000):
    # the joint sweep keeps all layers as column blocks of one accumulator; sweeping a layer on
    # its own must give exactly the same numbers
    for (layer, how), joint in first_3000.stats.items():
        alone = sweep(
            reference_model,
            FashionMNIST("test", stop=3000),
            {layer: how},
            top_k=5,
            sample=64,
            show_progress=False,
        )[(layer, how)]
        assert (joint.layer, joint.reduction) == (alone.layer, alone.reduction)
        for name in ("mean", "m2", "min", "max", "active"):
            np.testing.assert_array_equal(
                getattr(joint.moments, name), getattr(alone.moments, name)
            )
        np.testing.assert_array_equal(joint.top.values, alone.top.values)
        np.testing.assert_array_equal(joint.top.indices, alone.top.indices)
        np.testing.assert_array_equal(joint.sample.values, alone.sample.values)
        np.testing.assert_array_equal(joint.sample.indices, alone.sample.indices)


def test_an_empty_dataset_gives_empty_statistics(reference_model):
    empty = sweep(
        reference_model, FashionMNIST("test", stop=0), PLAN, top_k=3, sample=4, show_progress=False
    )
    assert empty.n_images == 0 and set(empty.stats) == set(
        (layer, how) for layer, hows in PLAN.items() for how in np.atleast_1d(hows)
    )
    stats = empty[("relu3", "spatial_mean")]
    assert stats.moments.count == 0 and stats.top.values is None and stats.sample.keys is None


def test_state_size_does_not_grow_with_images(reference_model):
    def state_bytes(stop):
        result = sweep(
            reference_model,
            FashionMNIST("test", stop=stop),
            PLAN,
            top_k=5,
            sample=32,
            show_progress=False,
        )
        total = 0
        for stats in result.stats.values():
            for acc in (stats.moments, stats.top, stats.sample):
                total += sum(v.nbytes for v in vars(acc).values() if isinstance(v, np.ndarray))
        return total

    assert state_bytes(300) == state_bytes(1200)


def test_consumer_sees_every_batch_and_fetch_finds_images(reference_model, fmnist_test):
    seen = []
    data = FashionMNIST("test", start=100, stop=400)
    sweep(
        reference_model,
        data,
        ["fc"],
        moments=False,
        batch_size=64,
        consumer=lambda idx, labels, reduced: seen.append((idx, reduced["fc"].shape)),
        show_progress=False,
    )
    assert torch.cat([i for i, _ in seen]).tolist() == list(range(100, 400))
    assert all(shape[1] == 10 for _, shape in seen)
    picked = fetch_images(data, [399, 100, 250, 100])
    torch.testing.assert_close(picked, fmnist_test[0][[399, 100, 250, 100]])
    with pytest.raises(FvlabError, match="outside the dataset range"):
        fetch_images(data, [50])


def test_select_per_class(fmnist_test):
    chosen = select_per_class(FashionMNIST("test"), [3, 0], 4)
    assert chosen.labels.tolist() == [3] * 4 + [0] * 4
    images, labels = fmnist_test
    first_threes = images[labels == 3][:4]
    torch.testing.assert_close(chosen.images[:4], first_threes)
    with pytest.raises(FvlabError, match="fewer than"):
        select_per_class(InMemoryImages(images[:20], labels[:20]), [0, 1], 5)
    with pytest.raises(FvlabError, match="do not exist"):
        select_per_class(FashionMNIST("test"), [10], 4)
