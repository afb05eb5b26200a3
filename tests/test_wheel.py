"""The wheel: `python -m build` gives a wheel that carries the browser experiment (jsPsych
included), and `fvlab study serve` from that wheel, installed into a fresh virtual env, serves
the page and jsPsych without npm and without the source tree.

The fresh env gets the wheel (``pip install --no-deps``) and, instead of a download, the
installed distributions the server needs — fastapi, uvicorn, sqlalchemy, typer, rich, numpy
and what they require — linked from this test's own env. PyTorch is not among them, so the
test also shows that `fvlab study serve` never imports it. The build runs without isolation
(``--no-isolation``: this env's setuptools, nothing fetched) on a copy of the sources, so it
neither needs the network nor writes into the work tree.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx

from fvlab.study.server import WEB_ASSETS

ROOT = Path(__file__).resolve().parents[1]
#: what `fvlab study serve` imports, by distribution (their requirements are added)
SERVER_DISTRIBUTIONS = ("fastapi", "uvicorn", "sqlalchemy", "typer", "rich", "numpy")
ADMIN_TOKEN = "wheel-test-admin-token-0123"


def _closure(names: tuple[str, ...]) -> list[metadata.Distribution]:
    """The installed distributions ``names`` and, recursively, their (non-extra) requirements
    that are installed here."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = re.split(r"[\s<>=!~;\[(]", todo.pop(), maxsplit=1)[0]
        key = name.lower().replace("_", "-")
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        found[key] = dist
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return list(found.values())


def _link_distributions(dists: list[metadata.Distribution], site_packages: Path) -> None:
    """Make each distribution importable in ``site_packages`` by symlinking its top-level
    files and folders (and its .dist-info) there."""
    for dist in dists:
        tops = {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] != ".."}
        for top in tops:
            source = Path(dist.locate_file(top))
            target = site_packages / top
            if source.exists() and not target.exists():
                target.symlink_to(source)


def _copy_sources(dest: Path) -> Path:
    """The files a build reads: pyproject.toml, setup.py, README.md and the package."""
    dest.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "fvlab", dest / "fvlab", ignore=shutil.ignore_patterns("__pycache__", ".bin")
    )
    return dest


def _run(cmd: list, env: dict, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=300, **kwargs
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]} {done.stderr[-3000:]}"
    return done


def test_the_wheel_serves_the_experiment_without_npm(tmp_path):
    from tests.study.conftest import free_port, make_tiny_study

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # The wheel, as `python -m build` makes it (sdist first, the wheel from the sdist).
    src = _copy_sources(tmp_path / "src")
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, src], env)
    [wheel] = dist.glob("fvlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in [*WEB_ASSETS.values(), "index.html"]:
        assert f"fvlab/study/web/{asset}" in names, asset
    assert not any("/node_modules/" in n and "/src/" in n for n in names)  # only what is served

    # A fresh env: the wheel without its dependencies, then only the server's dependencies.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], env)
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         "--no-index", wheel],
        env,
    )  # fmt: skip
    [site_packages] = (venv / "lib").glob("python3*/site-packages")
    _link_distributions(_closure(SERVER_DISTRIBUTIONS), site_packages)
    where = _run(
        [python, "-c", "import fvlab.study.server as s; print(s.WEB_DIR)"], env, cwd=tmp_path
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the wheel's copy, not the work tree
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, env=env)
    assert no_torch.returncode != 0  # the server works without PyTorch installed

    # `fvlab study serve` from the wheel: the page, jsPsych, the experiment's own script.
    study = make_tiny_study(tmp_path / "study")
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [venv / "bin" / "fvlab", "study", "serve", study, "--db", tmp_path / "study.sqlite",
         "--port", str(port), "--admin-token", ADMIN_TOKEN],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server from the wheel did not answer in 60 s"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "static/experiment.js" in page.text
        installed_web = Path(where)
        for name in ("jspsych.js", "jspsych.css", "plugin-preload.js", "experiment.js"):
            response = httpx.get(f"{base}/static/{name}", timeout=10)
            assert response.status_code == 200, name
            assert response.content == (installed_web / WEB_ASSETS[name]).read_bytes()
        assert "jsPsych" in httpx.get(f"{base}/static/jspsych.js", timeout=10).text
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()
