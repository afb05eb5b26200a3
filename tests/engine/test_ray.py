"""The Ray engine on a real local Ray cluster (2 CPUs): identical outputs to the local engine,
a worker killed mid-shard is retried with an identical result, and the CLI's --engine ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray  # a dependency of the test suite: make setup installs the ray extra
import torch

from fvlab.activations.sharded import sharded_sweep
from fvlab.engine.ray_engine import RayEngine
from fvlab.optvis.job import RenderJobSettings, run_render
from fvlab.optvis.settings import RenderSettings

FVLAB = Path(sys.executable).with_name("fvlab")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs for this module; RayEngine(address=None) reuses it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _settings(units, batch_size, steps):
    how = RenderSettings(steps=steps, seed=0)
    return RenderJobSettings(layer="relu3", units=tuple(units), batch_size=batch_size, render=how)


def _shard_workers() -> list[int]:
    """PIDs of Ray workers executing a shard right now (Ray titles them 'ray::run_shard')."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"ray::run_shard"):
                pids.append(int(entry.name))
    return pids


def test_ray_renders_and_sweeps_exactly_what_the_local_engine_does(ray_cluster, reference_model):
    settings = _settings(range(8), 2, 24)
    local = run_render(reference_model, settings, show_progress=False)
    remote = run_render(reference_model, settings, show_progress=False, engine=RayEngine())
    assert torch.equal(local.images, remote.images)
    assert torch.equal(local.objective, remote.objective)

    from fvlab.data.fashion_mnist import FashionMNIST

    data = FashionMNIST("test").slice(0, 1000)
    options = dict(top_k=3, batch_size=250, shard_images=250, show_progress=False)
    here = sharded_sweep(reference_model, data, ["relu2", "fc"], **options)
    there = sharded_sweep(reference_model, data, ["relu2", "fc"], engine=RayEngine(), **options)
    for key, stats in here.stats.items():  # same plan, same merge order: bit-identical
        np.testing.assert_array_equal(stats.moments.mean, there.stats[key].moments.mean)
        np.testing.assert_array_equal(stats.moments.m2, there.stats[key].moments.m2)
        np.testing.assert_array_equal(stats.top.indices, there.stats[key].top.indices)


def test_a_worker_killed_mid_shard_is_retried_and_the_output_is_identical(
    ray_cluster, reference_model, tmp_path
):
    settings = _settings(range(4), 2, 200)
    expected = run_render(reference_model, settings, show_progress=False)
    outcome: dict = {}

    def job() -> None:
        try:
            outcome["result"] = run_render(
                reference_model, settings, tmp_path, show_progress=False, engine=RayEngine()
            )
        except BaseException as exc:  # reported to the test thread below
            outcome["error"] = exc

    thread = threading.Thread(target=job)
    thread.start()
    killed = None
    deadline = time.monotonic() + 300  # a bound on waiting, not a timing assertion
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        workers = _shard_workers()
        if workers:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    assert killed is not None, "no shard was seen running, so none was killed"
    result = outcome["result"]
    assert torch.equal(result.images, expected.images)
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.pt")) == [
        "render-00000.pt",
        "render-00001.pt",
    ]


@pytest.mark.slow
def test_cli_engine_ray_writes_the_same_pngs_as_the_local_engine(tmp_path):
    """The issue's command (fewer units' worth of time: 16 units, 64 updates), with its own
    local Ray started and stopped by the command."""
    outs = {}
    for engine in ("local", "ray"):
        outs[engine] = tmp_path / engine
        command = [str(FVLAB), "render", "--model", "fmnist-cnn", "--layer", "relu3"]
        command += ["--units", "0-15", "--steps", "64", "--seed", "0", "--batch-size", "8"]
        command += ["--engine", engine, "--out", str(outs[engine]), "-q"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    pngs = sorted(p.name for p in outs["local"].glob("unit_*.png"))
    assert len(pngs) == 16
    for name in pngs:
        assert (outs["local"] / name).read_bytes() == (outs["ray"] / name).read_bytes(), name


def test_cli_rejects_an_unknown_engine_in_one_line(tmp_path):
    command = [str(FVLAB), "render", "--layer", "fc", "--engine", "spark", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "fvlab: error: engine: must be one of local, ray, not 'spark'"
    ]
