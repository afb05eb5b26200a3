"""The audit, the silent-unit check and the study build through the engines (issue 17): the
local and the Ray engine (a real local Ray, 2 CPUs) write identical outputs, and --resume
recomputes exactly the shards that are missing. Also: the render job's PNGs are the same with
or without an output folder (its images are then read back from the shard files), and an
audit of 512 units never feeds the model a batch larger than --batch-size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray  # a dependency of the test suite: make setup installs the ray extra
import torch
from torch import nn

from fvlab.check.audit import run_audit
from fvlab.check.natural_silence import run_silent_check
from fvlab.check.settings import AuditSettings, SilentCheckSettings
from fvlab.engine.ray_engine import RayEngine
from fvlab.optvis.job import RenderJobSettings, run_render
from fvlab.optvis.settings import RenderSettings
from fvlab.study.settings import StudySettings
from fvlab.study.stimuli import run_build_study
from tests.engine.counting import CountingEngine


@pytest.fixture(scope="module")
def ray_cluster():
    """ONE local Ray with 2 CPUs for the whole module; RayEngine(address=None) reuses it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _files(root: Path) -> dict[str, bytes]:
    """Every output file of a job folder (not its shards), by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "shards" not in p.relative_to(root).parts
    }


def _resume_after_losing(job, out: Path, lost: Path) -> int:
    """Delete one shard file, rerun ``job(out, engine, resume=True)``; how many shards ran."""
    lost.unlink()
    engine = CountingEngine()
    job(out, engine, True)
    return engine.ran


def _same_outputs(first: Path, second: Path) -> None:
    a, b = _files(first), _files(second)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name


AUDIT = AuditSettings(
    layer="relu3", units=tuple(range(6)), images=300, steps=8, snapshot_steps=(4,), top_k=3,
    n_reference=8, path_exemplars=1, gradient_grid=5, path_layers=("relu3",), batch_size=4,
    shard_images=100,
)  # fmt: skip


def test_audit_is_identical_on_both_engines_and_resumes_one_shard(
    ray_cluster, reference_model, tmp_path
):
    def job(out, engine, resume=False):
        return run_audit(
            reference_model, AUDIT, out, show_progress=False, engine=engine, resume=resume
        )

    local = job(tmp_path / "local", None)
    job(tmp_path / "ray", RayEngine())
    _same_outputs(tmp_path / "local", tmp_path / "ray")
    shards = tmp_path / "local" / "shards"
    assert sorted(p.name for p in (shards / "render").glob("*.pt")) == [
        "render-00000.pt",
        "render-00001.pt",
    ]  # 6 units, 4 per render
    assert len(list((shards / "sweep").glob("*.pt"))) == 3  # 300 images, 100 per shard
    summary = json.loads((tmp_path / "local" / "summary.json").read_text())
    assert summary["units"] == 6 and summary["settings"]["natural_images"] == 300
    before = _files(tmp_path / "local")
    ran = _resume_after_losing(job, tmp_path / "local", shards / "render" / "render-00001.pt")
    assert ran == 1
    ran = _resume_after_losing(job, tmp_path / "local", shards / "sweep" / "sweep-00002.pt")
    assert ran == 1
    assert _files(tmp_path / "local") == before
    assert [r["excess"] for r in local.rows] == [r["excess"] for r in job(None, None).rows]


def test_silent_check_is_identical_on_both_engines_and_resumes_one_shard(
    ray_cluster, reference_model, tmp_path
):
    settings = SilentCheckSettings(
        layers=("relu3", "relu4"), threshold=2.0, max_fraction=0.02, steps=8, max_render=3,
        shard_images=5000,
    )  # fmt: skip

    def job(out, engine, resume=False):
        return run_silent_check(
            reference_model, settings, out, show_progress=False, engine=engine, resume=resume
        )

    result = job(tmp_path / "local", None)
    job(tmp_path / "ray", RayEngine())
    _same_outputs(tmp_path / "local", tmp_path / "ray")
    assert result.n_images == 10000
    assert [entry.rendered for entry in result.layers.values()] == [
        entry.silent[:3] for entry in result.layers.values()
    ]
    assert all(len(entry.rendered) == 3 for entry in result.layers.values())
    assert (tmp_path / "local" / "fv_relu3.png").is_file()
    shards = tmp_path / "local" / "shards"
    assert len(list((shards / "sweep").glob("*.pt"))) == 2
    assert len(list((shards / "render").glob("*.pt"))) == 2  # one render per layer
    before = _files(tmp_path / "local")
    ran = _resume_after_losing(job, tmp_path / "local", shards / "render" / "render-00000.pt")
    assert ran == 1
    ran = _resume_after_losing(job, tmp_path / "local", shards / "sweep" / "sweep-00001.pt")
    assert ran == 1
    assert _files(tmp_path / "local") == before


def test_study_build_is_identical_on_both_engines_and_resumes_one_shard(
    ray_cluster, reference_model, tmp_path
):
    settings = StudySettings(
        units=(("bn2", 0), ("bn2", 1), ("bn4", 3)), split="test", max_images=300, top_k=20,
        bins=5, sets_per_unit=2, fv_steps=4, catch_units=0, practice_units=0, seed=5,
        batch_size=8, shard_images=100,
    )  # fmt: skip

    def job(out, engine, resume=False):
        return run_build_study(
            reference_model, settings, out, show_progress=False, engine=engine, resume=resume
        )

    job(tmp_path / "local", None)
    job(tmp_path / "ray", RayEngine())
    _same_outputs(tmp_path / "local", tmp_path / "ray")
    shards = tmp_path / "local" / "shards"
    # 3 units × 4 references, 8 images per shard → 2 units per shard
    assert len(list((shards / "references").glob("*.pt"))) == 2
    assert len(list((shards / "exemplars").glob("*.pt"))) == 3  # 300 images, 104 per shard
    assert any(p.suffix == ".png" for p in (tmp_path / "local").rglob("*"))
    before = _files(tmp_path / "local")
    lost = shards / "references" / "references-00001.pt"
    assert _resume_after_losing(job, tmp_path / "local", lost) == 1
    lost = shards / "exemplars" / "exemplars-00000.pt"
    lost = lost if lost.exists() else next((shards / "exemplars").glob("*.pt"))
    assert _resume_after_losing(job, tmp_path / "local", lost) == 1
    assert _files(tmp_path / "local") == before


def test_render_job_pngs_do_not_depend_on_keeping_images_in_memory(reference_model, tmp_path):
    """With --out the job writes each shard's PNGs as it finishes and reads images back from
    the shard files; the files are byte-identical to saving the in-memory result."""
    how = RenderSettings(steps=6, thresholds=(3, 6), seed=2)
    settings = RenderJobSettings(layer="relu3", units=tuple(range(5)), batch_size=2, render=how)
    streamed = run_render(reference_model, settings, tmp_path / "streamed", show_progress=False)
    in_memory = run_render(reference_model, settings, show_progress=False)
    in_memory.save(tmp_path / "memory")
    _same_outputs(tmp_path / "streamed", tmp_path / "memory")
    assert len(list((tmp_path / "streamed").glob("unit_*.png"))) == 5 * 3
    assert not isinstance(streamed.frames.parts[0], dict)  # kept on disk, not in memory
    assert torch.equal(streamed.images, in_memory.images)
    assert torch.equal(streamed.snapshots[3], in_memory.snapshots[3])


class _Wide(nn.Module):
    """512 channels, cheap: 8 × 8 average pooling, a 1 × 1 convolution, a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(8)
        self.conv = nn.Conv2d(3, 512, kernel_size=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(self.pool(x)))


def test_an_audit_of_512_units_never_exceeds_the_batch_size():
    """The batch bound does not depend on the image side; 64 px (not 224) keeps the 512 units'
    bisected paths quick."""
    from fvlab.check.audit import audit
    from fvlab.data.dataset import InMemoryImages
    from fvlab.models.spec import InputSpec
    from fvlab.models.zoo import LoadedModel

    torch.manual_seed(0)
    model = LoadedModel("wide", _Wide().eval(), InputSpec(3, 64))
    generator = torch.Generator().manual_seed(1)
    natural = InMemoryImages(torch.rand(40, 3, 64, 64, generator=generator), torch.zeros(40))
    batches: list[int] = []
    model.module.register_forward_pre_hook(lambda _m, args: batches.append(args[0].shape[0]))
    settings = AuditSettings(
        layer="relu", steps=1, snapshot_steps=(), top_k=2, n_reference=4, path_exemplars=1,
        gradient_grid=3, relu_redirect_steps=0, path_layers=("relu",), metric="cosine",
        batch_size=32,
    )  # fmt: skip
    result = audit(model, natural, settings, show_progress=False)
    assert len(result.rows) == 512
    assert max(batches) == 32, max(batches)  # full batches of 32, never 512


def test_path_check_is_identical_on_both_engines_and_resumes_one_shard(
    ray_cluster, reference_model, tmp_path
):
    from fvlab.check.paths import run_paths
    from fvlab.check.settings import PathsSettings

    settings = PathsSettings(
        classes=(0, 1, 2), images_per_class=20, fv_seeds=1, steps=4, layers=("relu3", "fc"),
        bootstrap=10, batch_size=10, shard_images=20, shard_classes=2,
    )  # fmt: skip

    def job(out, engine, resume=False):
        return run_paths(
            reference_model, settings, out, show_progress=False, engine=engine, resume=resume
        )

    job(tmp_path / "local", None)
    job(tmp_path / "ray", RayEngine())
    _same_outputs(tmp_path / "local", tmp_path / "ray")
    shards = tmp_path / "local" / "shards" / "pass1"
    assert len(list(shards.glob("*.pt"))) == 3  # 60 images, 20 per shard
    assert len(list((shards.parent / "fvs").glob("*.pt"))) == 2  # 3 classes, 2 per shard
    before = _files(tmp_path / "local")
    assert _resume_after_losing(job, tmp_path / "local", shards / "pass1-00001.pt") == 1
    assert _files(tmp_path / "local") == before
