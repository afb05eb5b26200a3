"""The attacker's view: nothing the browser receives before answering predicts the correct side
or the trial kind — except the pixels.

The study here is made to leak on purpose at the file level, the way a real build can: every
correct image (``occluded_max``) is a larger PNG than its foil and was written earlier (an older
mtime). An attacker script enrols participants, reads everything the server sends before an
answer (enrolment JSON, image responses with headers, bytes and timing) and predicts the
correct side of every trial from one channel at a time. Over ≥ 200 trials each channel must do
no better than chance (one-sided binomial test, α = 0.001), while the same attacker reading
the raw FILES is right every time (so the test can see a leak when there is one).
"""

from __future__ import annotations

import json
import os
import re
import time

import httpx
import pytest
from PIL import Image, PngImagePlugin
from scipy import stats

from tests.study.conftest import make_tiny_study

PARTICIPANTS = 12  # × 21 trials = 252 trials
ALPHA = 0.001


def _make_leaky(root):
    """The tiny study, with every occluded_max PNG 400 bytes larger and 1 day older."""
    make_tiny_study(root)
    manifest = json.loads((root / "manifest.json").read_text())
    for unit in manifest["units"]:
        for image_set in unit["image_sets"]:
            path = root / image_set["occluded_max"]
            info = PngImagePlugin.PngInfo()
            info.add_text("comment", "x" * 400)
            Image.open(path).save(path, pnginfo=info)
            old = time.time() - 86400
            os.utime(path, (old, old))
    return root


@pytest.fixture(scope="module")
def leaky_study(tmp_path_factory):
    return _make_leaky(tmp_path_factory.mktemp("leaky"))


@pytest.fixture(scope="module")
def observed(leaky_study, tmp_path_factory, module_server_factory):
    """Per trial: what the attacker saw before answering, and (from the admin key) the truth."""
    server = module_server_factory(leaky_study, tmp_path_factory.mktemp("leaks") / "db.sqlite")
    trials = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for i in range(PARTICIPANTS):
            response = client.post(
                "/api/participants", json={"prolific_pid": f"attacker-{i}", "study_id": "L"}
            )
            enrolment, text = response.json(), response.text
            key = client.get(
                f"/api/participants/{enrolment['participant_id']}/key", headers=server.admin
            ).json()
            for t in enrolment["trials"]:
                seen = {"trial": t, "first_in_json": {}, "truth": key[t["trial_id"]]}
                for side in ("left", "right"):
                    started = time.perf_counter()
                    image = client.get(f"/{t[side]}")
                    seen[side] = {
                        "seconds": time.perf_counter() - started,
                        "headers": dict(image.headers),
                        "bytes": image.content,
                    }
                    seen["first_in_json"][side] = text.index(t[side])
                trials.append(seen)
    return trials


def _score(observed, predict) -> tuple[int, int, float]:
    """(right, trials, one-sided binomial p against 50 %) of predictor ``predict(trial)``."""
    right = sum(predict(o) == o["truth"]["correct_side"] for o in observed)
    n = len(observed)
    return right, n, stats.binomtest(right, n, 0.5, alternative="greater").pvalue


def _larger(left: float, right: float) -> str:
    return "left" if left >= right else "right"


def _headers(response: dict) -> str:
    return str(sorted((k, v) for k, v in response["headers"].items() if k != "date"))


CHANNELS = {
    # every header but Date, compared as text (ETag, Last-Modified, Content-Length, …)
    "headers": lambda o: "left" if _headers(o["left"]) > _headers(o["right"]) else "right",
    "content_length": lambda o: _larger(
        int(o["left"]["headers"]["content-length"]), int(o["right"]["headers"]["content-length"])
    ),
    "size": lambda o: _larger(len(o["left"]["bytes"]), len(o["right"]["bytes"])),
    "ids": lambda o: "left" if o["trial"]["left"] > o["trial"]["right"] else "right",
    "order_in_json": lambda o: (
        "left" if o["first_in_json"]["left"] < o["first_in_json"]["right"] else "right"
    ),
    "timing": lambda o: _larger(o["left"]["seconds"], o["right"]["seconds"]),
}


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_no_channel_predicts_the_correct_side(observed, channel):
    right, n, p = _score(observed, CHANNELS[channel])
    print(f"{channel}: {right}/{n} right ({100 * right / n:.1f} %), p = {p:.3f}")
    assert n >= 200
    assert p > ALPHA, f"{channel} predicts the correct side: {right}/{n}"


def test_the_raw_files_would_leak_and_the_served_bytes_do_not(observed, leaky_study):
    """The attacker's size and age predictors work on the files: the test has power."""
    manifest = json.loads((leaky_study / "manifest.json").read_text())
    sets = {s["set_id"]: s for u in manifest["units"] for s in u["image_sets"]}
    right_size = right_age = 0
    for o in observed:
        s = sets[o["truth"]["set_id"]]
        files = {"max": leaky_study / s["occluded_max"], "min": leaky_study / s["occluded_min"]}
        if o["truth"]["kind"] == "catch":
            continue  # (catch trials of 'none' have a foil from another set)
        right_size += files["max"].stat().st_size > files["min"].stat().st_size
        right_age += files["max"].stat().st_mtime < files["min"].stat().st_mtime
    n = sum(1 for o in observed if o["truth"]["kind"] != "catch")
    assert right_size == right_age == n  # on the files: always right
    lengths = {len(o[side]["bytes"]) for o in observed for side in ("left", "right")}
    assert len(lengths) == 1  # served: one length for every image
    for o in observed:
        for side in ("left", "right"):
            headers = o[side]["headers"]
            assert "last-modified" not in headers and "etag" not in headers


def test_catch_trials_look_like_main_trials(observed):
    """Kind (main or catch) is visible nowhere but in the pixels: same fields, same kind label,
    ids that only give the position, same image lengths, same headers."""
    shapes = set()
    for o in observed:
        t = o["trial"]
        assert re.fullmatch(r"p\d{5}-t\d{2}", t["trial_id"])
        assert t["kind"] == "test" and t["correct_side"] is None
        shapes.add((tuple(sorted(t)), len(t["references"])))
        for side in ("left", "right"):
            shapes_of_headers = tuple(sorted(k for k in o[side]["headers"] if k != "date"))
            shapes.add(shapes_of_headers)
    kinds = {o["truth"]["kind"] for o in observed}
    assert kinds == {"main", "catch"}
    # one trial shape per reference count (none: 0, others: 9), one header shape, both kinds
    assert len(shapes) == len({len(o["trial"]["references"]) for o in observed}) + 1


def test_image_urls_are_unlinkable(observed):
    """Every image URL occurs once: across participants and across one participant's trials
    (a unit's references shown twice get two ids, so recurring ids cannot mark main units)."""
    urls = [
        url
        for o in observed
        for url in (o["trial"]["query"], o["trial"]["left"], o["trial"]["right"])
        + tuple(o["trial"]["references"])
    ]
    assert len(urls) == len(set(urls))
    assert len({u.split("/")[1] for u in urls}) == PARTICIPANTS
