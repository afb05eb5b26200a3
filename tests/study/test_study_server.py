"""The HTTP server (a real `fvlab study serve` subprocess): bad input is refused with a 4xx and
stores nothing; images cannot be reached by path tricks; export needs the admin token."""

from __future__ import annotations

import http.client
import io
import json
from collections import Counter

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fvlab.errors import FvlabError
from fvlab.study.manifest import CONDITIONS, read_manifest
from fvlab.study.server import SECURITY_HEADERS, create_app
from fvlab.study.settings import ServerSettings
from fvlab.study.trials import encode_response

ADMIN = {"Authorization": "Bearer test-admin-token-0123456789"}  # conftest's ADMIN_TOKEN


@pytest.fixture(scope="module")
def server(tiny_study, tmp_path_factory, module_server_factory):
    db = tmp_path_factory.mktemp("server") / "study.sqlite"
    started = module_server_factory(tiny_study, db, "--max-body-kb", "64")
    assert started.admin == ADMIN
    return started


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def counts(client):
    body = client.get("/healthz").json()
    return {k: body[k] for k in ("participants", "submitted", "responses")}


def enrol(client, **prolific):
    response = client.post("/api/participants", json=prolific)
    assert response.status_code == 200, response.text
    return response.json()


def full_submission(client, enrolment):
    key = client.get(f"/api/participants/{enrolment['participant_id']}/key", headers=ADMIN).json()
    answers = [
        {
            "trial_id": t["trial_id"],
            "attempt": 1,
            "rt_ms": 1000.0,
            "response": encode_response(key[t["trial_id"]]["correct_side"], 2),
        }
        for t in enrolment["practice"] + enrolment["trials"]
    ]
    return {
        "token": enrolment["token"],
        "responses": answers,
        "instructions_ms": 20000,
        "total_ms": 150000,
        "practice_attempts": 1,
        "practice_passed": True,
    }


def raw_get(server, path: str) -> int:
    """GET with the path sent byte for byte (no client-side normalisation of '..')."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_page_assets_and_enrolment_reveal_no_answers(client, tiny_study):
    page = client.get("/")
    assert page.status_code == 200 and "static/experiment.js" in page.text
    for name in (
        "jspsych.js",
        "jspsych.css",
        "plugin-occlusion-choice.js",
        "experiment.js",
        "plugin-instructions.js",
        "plugin-html-button-response.js",
        "plugin-preload.js",
    ):
        assert client.get(f"/static/{name}").status_code == 200, name
    assert (
        "simulate(trial, simulation_mode" in client.get("/static/plugin-occlusion-choice.js").text
    )
    person = enrol(client)
    assert all(t["correct_side"] is None and t["kind"] == "test" for t in person["trials"])
    assert all(t["correct_side"] in ("left", "right") for t in person["practice"])
    urls = {u for t in person["trials"] for u in (t["query"], t["left"], t["right"])}
    assert not any("occluded" in u or "images/" in u for u in urls)
    # Every image URL serves the manifest's file: the same pixels, padded to one length.
    manifest = read_manifest(tiny_study)
    sets = {s["set_id"]: s for u in manifest["units"] for s in u["image_sets"]}
    key = client.get(f"/api/participants/{person['participant_id']}/key", headers=ADMIN).json()
    lengths = set()
    for trial in person["trials"][:5]:
        truth = key[trial["trial_id"]]
        correct = trial[truth["correct_side"]]
        response = client.get(f"/{correct}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert "last-modified" not in response.headers and "etag" not in response.headers
        expected = np.asarray(Image.open(tiny_study / sets[truth["set_id"]]["occluded_max"]))
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content))), expected)
        lengths.add(len(response.content))
    assert len(lengths) == 1
    # The ids are the participant's own: another participant's URL prefix does not work.
    other = enrol(client)
    swapped = person["trials"][0]["left"].replace(person["participant_id"], other["participant_id"])
    assert client.get(f"/{swapped}").status_code == 404


def test_security_headers_on_every_response(client):
    for path in ("/", "/static/experiment.js", "/healthz", "/complete", "/nope"):
        response = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (path, name)
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]
    assert client.get("/favicon.ico").headers["content-type"].startswith("image/svg+xml")
    assert 'rel="icon"' in client.get("/").text


def test_completion_page_escapes_the_code(client):
    page = client.get("/complete", params={"code": '"><script>alert(1)</script>'}).text
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "ABC-123" in client.get("/complete", params={"code": "ABC-123"}).text


def test_conditions_are_balanced_over_http(client):
    people = [enrol(client, prolific_pid=f"balance-{i}", study_id="B") for i in range(10)]
    assert len({p["condition"] for p in people}) == 5
    everyone = client.get("/api/export/participants.jsonl", headers=ADMIN).text.splitlines()
    totals = Counter(json.loads(line)["condition"] for line in everyone)
    assert set(totals) == set(CONDITIONS) and max(totals.values()) - min(totals.values()) <= 1


def test_malformed_json_is_rejected(client):
    person = enrol(client)
    before = counts(client)
    url = f"/api/participants/{person['participant_id']}/submission"
    for body in (b"{not json", b"[]", b'{"token": 5}', json.dumps({"token": person["token"]})):
        response = client.post(url, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
    assert counts(client) == before


def test_wrong_participant_is_rejected(client):
    alice, bob = enrol(client), enrol(client)
    before = counts(client)
    body = full_submission(client, alice)
    # Bob's token on Alice's submission.
    response = client.post(
        f"/api/participants/{alice['participant_id']}/submission",
        json={**body, "token": bob["token"]},
    )
    assert response.status_code == 403
    # Alice's answers sent as Bob's: the trial ids are not his.
    response = client.post(
        f"/api/participants/{bob['participant_id']}/submission",
        json={**body, "token": bob["token"]},
    )
    assert response.status_code == 422 and "not one of participant" in response.text
    response = client.post("/api/participants/p99999/submission", json=body)
    assert response.status_code == 404
    assert counts(client) == before


def test_replayed_submission_is_rejected(client):
    person = enrol(client)
    body = full_submission(client, person)
    url = f"/api/participants/{person['participant_id']}/submission"
    assert client.post(url, json=body).status_code == 200
    stored = counts(client)
    response = client.post(url, json=body)
    assert response.status_code == 409 and "already submitted" in response.text
    assert counts(client) == stored


def test_oversized_body_is_rejected(client, server):
    person = enrol(client)
    before = counts(client)
    url = f"/api/participants/{person['participant_id']}/submission"
    body = full_submission(client, person)
    body["jspsych_data"] = [{"padding": "x" * 1000} for _ in range(100)]  # ~100 kB > 64 KiB
    assert client.post(url, json=body).status_code == 413
    # Chunked upload (no Content-Length): counted while it arrives.
    blob = json.dumps(body).encode()
    chunks = (blob[i : i + 8192] for i in range(0, len(blob), 8192))
    response = client.post(url, content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert counts(client) == before
    # The same participant can still submit a normal-sized body.
    del body["jspsych_data"]
    assert client.post(url, json=body).status_code == 200


@pytest.mark.parametrize(
    "path, status",
    [
        ("/study/../manifest.json", 400),
        ("/study/..%2Fmanifest.json", 400),
        ("/study/%2e%2e/%2e%2e/study.sqlite", 400),
        ("/study/images/../manifest.json", 400),
        ("/study/images/conv2_0/set0/query.png", 404),  # real file, but only ids are served
        ("/study/manifest.json", 404),
        ("/study/0123456789abcdef0123.png", 404),
        ("/static/../server.py", 404),
        ("/static/..%2Fserver.py", 404),
        ("/static/index.html", 404),
    ],
)
def test_paths_outside_the_study_images_are_refused(server, client, path, status):
    before = counts(client)
    assert raw_get(server, path) == status
    assert counts(client) == before


def test_export_needs_the_admin_token(client):
    assert client.get("/api/export/responses.csv").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    assert client.get("/api/export/responses.csv", headers=wrong).status_code == 401
    assert client.get("/api/participants/p00001/key", headers=wrong).status_code == 401
    assert client.get("/api/export/secrets.csv", headers=ADMIN).status_code == 404
    person = enrol(client)
    assert (
        client.post(
            f"/api/participants/{person['participant_id']}/submission",
            json=full_submission(client, person),
        ).status_code
        == 200
    )
    stored = counts(client)
    text = client.get("/api/export/responses.csv", headers=ADMIN).text
    assert len(text.strip().splitlines()) == 1 + stored["responses"]
    table = pq.read_table(
        io.BytesIO(client.get("/api/export/responses.parquet", headers=ADMIN).content)
    )
    assert table.num_rows == stored["responses"]
    mine = [r for r in table.to_pylist() if r["participant_id"] == person["participant_id"]]
    assert len(mine) == 23 and all(r["correct"] for r in mine)
    raw = client.get("/api/export/raw.jsonl", headers=ADMIN).text.splitlines()
    assert len(raw) == stored["submitted"]
    assert client.get("/api/export/raw.csv", headers=ADMIN).status_code == 400


def test_server_refuses_to_start_on_a_bad_study(tiny_study, tmp_path):
    db = f"sqlite:///{tmp_path}/x.sqlite"
    with pytest.raises(FvlabError, match="no manifest.json"):
        create_app(tmp_path, db, ServerSettings(), "test-admin-token-0123456789")
    manifest = json.loads((tiny_study / "manifest.json").read_text())
    for unit in manifest["units"]:
        for image_set in unit["image_sets"]:
            del image_set["references"]["blur"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FvlabError, match="no references for condition 'blur'"):
        create_app(broken, db, ServerSettings(), "test-admin-token-0123456789")
    with pytest.raises(FvlabError, match="at least 16"):
        create_app(tiny_study, db, ServerSettings(), "short")


def test_the_server_and_the_manifest_reader_do_not_import_torch(tiny_study):
    import subprocess
    import sys

    code = (
        "import sys; import fvlab.study, fvlab.study.server, fvlab.study.settings; "
        "from fvlab.study.manifest import read_manifest; "
        f"read_manifest({str(tiny_study)!r}); "
        "print(sorted(m for m in ('torch', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"token": "%s", "responses": [], "instructions_ms": NaN}',
        b'{"token": "%s", "responses": [], "instructions_ms": Infinity}',
        b'{"token": "%s", "responses": [], "instructions_ms": -Infinity}',
        b'{"token": "%s", "responses": [], "instructions_ms": 1e999}',
        b'{"token": "%s", "user_agent": "\\ud800", "responses": []}',
        b'{"token": "%s", "user_agent": "a\\u0000b", "responses": []}',
        b'{"token": "%s", "jspsych_data": [{"x": NaN}]}',
        b'{"token": "%s", "jspsych_data": [{"\\udfff": 1}]}',
        b"\xff\xfe{}",
        b"[" * 50_000,
    ],
)
def test_nan_infinity_and_invalid_unicode_are_422(client, raw):
    person = enrol(client)
    before = counts(client)
    url = f"/api/participants/{person['participant_id']}/submission"
    body = raw.replace(b"%s", person["token"].encode()) if b"%s" in raw else raw
    response = client.post(url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    # A full, otherwise valid submission with one poisoned value is refused too.
    good = full_submission(client, person)
    poisoned = json.dumps({**good, "user_agent": "x"}).replace('"x"', '"\\ud83d"')
    response = client.post(url, content=poisoned, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    for bad in ("NaN", "Infinity"):
        text = json.dumps(good).replace('"rt_ms": 1000.0', f'"rt_ms": {bad}', 1)
        response = client.post(url, content=text, headers={"Content-Type": "application/json"})
        assert response.status_code == 422
    assert (
        client.post("/api/participants", content=b'{"prolific_pid": "\\ud800"}').status_code == 422
    )
    assert counts(client)["responses"] == before["responses"]


def test_a_prolific_id_resumes_only_with_the_original_token(server):
    pid = {"prolific_pid": "resume-1", "study_id": "R"}
    with httpx.Client(base_url=server.url, timeout=10) as first_browser:
        first = first_browser.post("/api/participants", json=pid)
        assert first.status_code == 200 and "fvlab_token" in first.cookies
        again = first_browser.post("/api/participants", json=pid)  # a reload: cookie sent
        assert again.json()["resumed"] and again.json()["token"] == first.json()["token"]
    with httpx.Client(base_url=server.url, timeout=10) as other_browser:
        stolen = other_browser.post("/api/participants", json=pid)
        assert stolen.status_code == 409 and "another browser" in stolen.text
        assert first.json()["token"] not in stolen.text
        guessed = other_browser.post("/api/participants", json={**pid, "token": "x" * 32})
        assert guessed.status_code == 409
        own = other_browser.post("/api/participants", json={**pid, "token": first.json()["token"]})
        assert own.status_code == 200 and own.json()["resumed"]


def test_enrolment_is_rate_limited_per_client(tiny_study, tmp_path, server_factory):
    server = server_factory(
        tiny_study, tmp_path / "rate.sqlite", "--enrol-limit", "3", "--enrol-window-minutes", "5"
    )
    with httpx.Client(base_url=server.url, timeout=10) as c:

        def from_address(address: str) -> int:  # as a reverse proxy on 127.0.0.1 forwards it
            return c.post(
                "/api/participants", json={}, headers={"X-Forwarded-For": address}
            ).status_code

        assert [from_address("203.0.113.7") for _ in range(5)] == [200, 200, 200, 429, 429]
        assert from_address("198.51.100.2") == 200  # another client is not affected
        assert c.post("/api/participants", json={}).status_code == 200  # loopback: exempt
        assert c.get("/healthz").json()["participants"] == 5


def test_csv_export_cannot_run_formulas(client):
    person = enrol(client, prolific_pid='=HYPERLINK("http://x")', study_id="@SUM(1)")
    body = {**full_submission(client, person), "user_agent": "-2+3\u0000"}
    url = f"/api/participants/{person['participant_id']}/submission"
    assert client.post(url, json=body).status_code == 422  # NUL refused at the door ...
    body["user_agent"] = "+cmd|' /C calc'!A0"
    assert client.post(url, json=body).status_code == 200
    import csv

    rows = list(
        csv.DictReader(io.StringIO(client.get("/api/export/participants.csv", headers=ADMIN).text))
    )
    mine = next(r for r in rows if r["participant_id"] == person["participant_id"])
    assert mine["prolific_pid"] == '\'=HYPERLINK("http://x")'
    assert mine["study_id"] == "'@SUM(1)" and mine["user_agent"] == "'+cmd|' /C calc'!A0"
    assert all(not v.startswith(("=", "+", "@")) for r in rows for v in r.values())
