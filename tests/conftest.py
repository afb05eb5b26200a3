"""Shared fixtures: the embedded model, the real Fashion-MNIST test set (loaded once), and a
headless Chromium (Debian's chromium + chromedriver, via Selenium)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

# Run these modules' tests on one xdist worker, one after another: they start a local Ray
# cluster each (two at once on one machine would race for its ports and session files, and the
# worker-kill test looks for Ray workers by process title).
RAY_GROUP = "ray"
RAY_MODULES = {"test_ray.py", "test_engine_jobs.py", "test_detector_any_model.py"}
# Scheduled first, longest first, so that no long module is the suite's tail (the demo alone is
# about a third of the suite); the other modules follow in collection order.
FIRST = (
    "test_demo.py", *sorted(RAY_MODULES), "test_reproduce.py", "test_circuit_fmnist.py",
    "test_silent_fmnist.py", "test_audit.py",
)  # fmt: skip

CHROMIUM = os.environ.get("FVLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = (
    os.environ.get("FVLAB_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
)
BROWSER_WAIT_S = 20


def pytest_xdist_make_scheduler(config, log):
    """With ``-n N`` (``make test``) whole modules go to a worker, so module-scoped fixtures (the
    demo, the dry runs) run once, and the Ray modules count as one module. Modules are handed
    out in the order of :func:`pytest_collection_modifyitems` (xdist would otherwise reorder
    them by their number of tests, which says nothing about their duration)."""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return RAY_GROUP if Path(path).name in RAY_MODULES else path

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        return FIRST.index(item.path.name) if item.path.name in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the order within a rank is kept


@pytest.fixture(scope="session", autouse=True)
def _threads():
    """The machine's cores shared among the xdist workers (2 threads without xdist)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))


@pytest.fixture(scope="session")
def reference_model():
    import fvlab

    return fvlab.load("fmnist-cnn")


@pytest.fixture(scope="session")
def fmnist_test():
    """(images (10000, 1, 28, 28) in [0, 1], labels) — the real test split."""
    from fvlab.data.fashion_mnist import FashionMNIST

    return FashionMNIST("test").load()


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium that records the page's console (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,1100",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(BROWSER_WAIT_S)
    yield driver
    driver.quit()
