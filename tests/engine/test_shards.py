"""Sharded jobs on the local engine: batch-independent renders, resume by content hash, exact
sweep merges (real Fashion-MNIST, the embedded model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fvlab.activations.sharded import sharded_sweep, slice_plan
from fvlab.activations.sweep import sweep
from fvlab.errors import FvlabError
from fvlab.optvis.job import RenderJobSettings, run_render
from fvlab.optvis.settings import RenderSettings
from tests.engine.counting import CountingEngine

QUICK = RenderSettings(steps=32, seed=3)


def _job(units, batch_size, how=QUICK):
    return RenderJobSettings(layer="relu3", units=tuple(units), batch_size=batch_size, render=how)


def test_a_units_image_depends_on_neither_batch_size_nor_batch_mates(reference_model):
    together = run_render(reference_model, _job(range(12), 12), show_progress=False)
    in_fours = run_render(reference_model, _job(range(12), 4), show_progress=False)
    alone = run_render(reference_model, _job([7, 2], 1), show_progress=False)
    # float batch effects only (the same draws, the same updates): far below one PNG level
    assert (together.images - in_fours.images).abs().max() < 1e-4
    assert (together.images[[7, 2]] - alone.images).abs().max() < 1e-4
    assert torch.equal((together.images * 255).round(), (in_fours.images * 255).round()), (
        "PNG levels differ between batch sizes"
    )


def test_resume_recomputes_exactly_the_missing_or_damaged_shards(reference_model, tmp_path):
    settings = _job(range(16), 4)
    first = run_render(reference_model, settings, tmp_path, show_progress=False)
    shards = tmp_path / "shards"
    assert sorted(p.name for p in shards.glob("*.pt")) == [f"render-0000{i}.pt" for i in range(4)]
    (shards / "render-00001.pt").unlink()  # lost
    damaged = shards / "render-00003.pt"
    damaged.write_bytes(damaged.read_bytes()[:-10])  # truncated
    engine = CountingEngine()
    again = run_render(
        reference_model, settings, tmp_path, show_progress=False, engine=engine, resume=True
    )
    assert engine.ran == 2
    assert torch.equal(first.images, again.images)
    assert json.loads((tmp_path / "summary.json").read_text())["units"][15]["unit"] == 15
    engine = CountingEngine()
    run_render(reference_model, settings, tmp_path, show_progress=False, engine=engine, resume=True)
    assert engine.ran == 0  # everything intact: nothing recomputed


def test_resume_refuses_a_folder_of_another_job(reference_model, tmp_path):
    run_render(reference_model, _job(range(4), 2), tmp_path, show_progress=False)
    other = _job(range(4), 2, QUICK.replace(seed=4))
    with pytest.raises(FvlabError, match="different job.*settings"):
        run_render(reference_model, other, tmp_path, show_progress=False, resume=True)
    with pytest.raises(FvlabError, match="resume: needs the output folder"):
        run_render(reference_model, other, None, show_progress=False, resume=True)


def test_sharded_sweep_equals_one_pass(reference_model, tmp_path):
    from fvlab.data.fashion_mnist import FashionMNIST

    data = FashionMNIST("test").slice(0, 1500)
    layers = ["relu1", "relu3", "fc"]
    options = dict(top_k=5, sample=64, batch_size=128)
    one = sweep(reference_model, data, layers, show_progress=False, **options)
    sharded = sharded_sweep(
        reference_model, data, layers, shard_images=500, out=tmp_path, show_progress=False,
        **options,
    )  # fmt: skip
    assert slice_plan(1500, 500, 128) == [(0, 512), (512, 1024), (1024, 1500)]
    assert sharded.ranges == [(0, 512), (512, 1024), (1024, 1500)]
    for key, stats in one.stats.items():
        other = sharded.stats[key]
        assert other.moments.count == stats.moments.count == 1500
        np.testing.assert_array_equal(other.moments.max, stats.moments.max)
        np.testing.assert_array_equal(other.moments.active, stats.moments.active)
        np.testing.assert_array_equal(other.top.indices, stats.top.indices)
        np.testing.assert_array_equal(other.sample.indices, stats.sample.indices)
        np.testing.assert_allclose(other.moments.mean, stats.moments.mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(other.moments.var, stats.moments.var, rtol=1e-10, atol=1e-12)
    engine = CountingEngine()
    resumed = sharded_sweep(
        reference_model, data, layers, shard_images=500, out=tmp_path, resume=True,
        engine=engine, show_progress=False, **options,
    )  # fmt: skip
    assert engine.ran == 0
    np.testing.assert_array_equal(resumed["relu3"].moments.mean, sharded["relu3"].moments.mean)


def test_the_fingerprint_keeps_shard_names_whole(reference_model, tmp_path):
    """Shard names stay names in the fingerprint; ranges become lists (JSON)."""
    from fvlab.engine.jobs import shard_store

    store = shard_store(reference_model, "job", {}, ["train-0", (0, 4)], tmp_path, False)
    fingerprint = store.fingerprint
    assert fingerprint["plan"] == ["train-0", [0, 4]]
