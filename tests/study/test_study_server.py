"""The HTTP server (a real `fvlab study serve` subprocess): bad input is refused with a 4xx and
stores nothing; images cannot be reached by path tricks; export needs the admin token."""

from __future__ import annotations

import http.client
import io
import json
from collections import Counter

import httpx
import pyarrow.parquet as pq
import pytest

from fvlab.errors import FvlabError
from fvlab.study.manifest import CONDITIONS, manifest_image_paths, read_manifest
from fvlab.study.protocol import image_ids
from fvlab.study.server import create_app
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
    # Every image URL serves exactly the manifest's file.
    manifest = read_manifest(tiny_study)
    ids = image_ids(
        sorted(manifest_image_paths(manifest)), (tiny_study / "manifest.json").read_bytes()
    )
    by_url = {f"study/{v}.png": k for k, v in ids.items()}
    for url in list(urls)[:5]:
        response = client.get(f"/{url}")
        assert response.status_code == 200
        assert response.content == (tiny_study / by_url[url]).read_bytes()


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
