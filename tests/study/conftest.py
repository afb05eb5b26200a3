"""Fixtures of the study server tests: a tiny study directory and server subprocesses.

The tiny study is a valid ``fvlab-study`` directory made here with PIL (random 28×28 PNGs and
a manifest in the builder's format) so server, browser and storage tests do not depend on the
stimulus builder; the builder is tested on its own. Servers run as ``fvlab study serve``
subprocesses on 127.0.0.1 and are always stopped when their fixture ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from fvlab.study.manifest import CONDITIONS

ADMIN_TOKEN = "test-admin-token-0123456789"
LAYERS = ("conv2", "bn3", "bn4")


def _png(path: Path, rng: np.random.Generator, occlude: tuple[int, int] | None = None) -> str:
    image = (rng.random((28, 28)) * 255).astype(np.uint8)
    if occlude is not None:
        y, x = occlude
        image[y : y + 11, x : x + 11] = 128
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image, mode="L").save(path)
    return str(path)


def make_tiny_study(
    root: Path,
    n_main: int = 6,
    n_catch: int = 2,
    n_practice: int = 1,
    n_sets: int = 3,
    seed: int = 0,
) -> Path:
    """Write a small valid study (PNG + manifest.json) into ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    units = []
    kinds = ["main"] * n_main + ["catch"] * n_catch + ["practice"] * n_practice
    for k, kind in enumerate(kinds):
        layer = LAYERS[k % len(LAYERS)]
        unit = k
        folder = f"images/{layer}_{unit}"
        refs = {}
        for condition in ("synthetic", "natural", "blur"):
            refs[condition] = []
            for r in range(9):
                rel = f"{folder}/{condition}_{r}.png"
                _png(root / rel, rng)
                refs[condition].append(rel)
        refs["mixed"] = refs["natural"][:5] + refs["synthetic"][:4]
        refs["none"] = []
        sets = []
        for s in range(n_sets):
            base = f"{folder}/set{s}"
            for name, occ in (("query", None), ("occluded_max", (0, 0)), ("occluded_min", (8, 8))):
                _png(root / f"{base}/{name}.png", rng, occ)
            sets.append(
                {
                    "set_id": f"{layer}:{unit}:{s}",
                    "query": f"{base}/query.png",
                    "occluded_max": f"{base}/occluded_max.png",
                    "occluded_min": f"{base}/occluded_min.png",
                    "activation": {"query": 1.0, "max": 0.9, "min": -0.2},
                    "occluder": {"max": [0, 0], "min": [8, 8], "size": 11},
                    "references": refs,
                }
            )
        units.append(
            {
                "unit_id": f"{layer}:{unit}",
                "layer": layer,
                "unit": unit,
                "kind": kind,
                "image_sets": sets,
            }
        )
    manifest = {
        "format": "fvlab-study",
        "version": 1,
        "model": "fmnist-cnn",
        "weights": "embedded",
        "image_size": 28,
        "channels": 1,
        "occluder_px": 11,
        "stride": 2,
        "seed": seed,
        "conditions": list(CONDITIONS),
        "units": units,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``fvlab study serve`` in a subprocess on 127.0.0.1; stopped by :meth:`stop`."""

    def __init__(self, study_dir: Path, db: Path, port: int | None = None, *extra: str) -> None:
        self.study_dir, self.db, self.extra = study_dir, db, extra
        self.admin_token = ADMIN_TOKEN
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> ServerProcess:
        """Launch the server and wait until it answers (a readiness wait, not a speed check:
        a loaded 2-core machine took more than 30 s to import and start it)."""
        cmd = [
            str(Path(sys.executable).parent / "fvlab"),
            "study",
            "serve",
            str(self.study_dir),
            "--db",
            str(self.db),
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--admin-token",
            ADMIN_TOKEN,
            *self.extra,
        ]
        self.log = open(self.db.with_suffix(f".{self.port}.log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                text = self.db.with_suffix(f".{self.port}.log").read_text()
                raise RuntimeError(f"server exited: {text[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None:
            self.log.close()


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    return make_tiny_study(tmp_path_factory.mktemp("tiny-study"))


def _serve_and_stop():
    """A ``start(study_dir, db, *extra, port=None)`` function; every server it starts is
    stopped when the generator is closed."""
    started: list[ServerProcess] = []

    def start(study_dir: Path, db: Path, *extra: str, port: int | None = None) -> ServerProcess:
        server = ServerProcess(study_dir, db, port, *extra).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server_factory():
    """Start servers with ``server_factory(study_dir, db, ...)``; all are stopped afterwards."""
    yield from _serve_and_stop()


@pytest.fixture(scope="module")
def module_server_factory():
    """Like ``server_factory``, for servers shared by one test module."""
    yield from _serve_and_stop()


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_port()


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL server for the whole session (``tests/study/loadtools.py``);
    ``postgres.new_database()`` gives the URL of a fresh database. Stopped and deleted at the
    end. When PostgreSQL cannot start, the tests that need it fail (never skip), saying why."""
    from tests.study.loadtools import PostgresCluster, PostgresUnavailable

    try:
        cluster = PostgresCluster().start()
    except PostgresUnavailable as exc:
        pytest.fail(f"the PostgreSQL tests cannot run: {exc}", pytrace=False)
    yield cluster
    cluster.stop()
