"""Shared fixtures: the embedded model, the real Fashion-MNIST test set (loaded once), and a
headless Chromium (Debian's chromium + chromedriver, via Selenium)."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

CHROMIUM = os.environ.get("FVLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = (
    os.environ.get("FVLAB_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
)
BROWSER_WAIT_S = 20


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(2)


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
