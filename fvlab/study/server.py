"""The study server (FastAPI): the experiment page, its images, enrolment, submissions, export.

Routes (all URLs the page uses are relative, so the app also works under a proxy prefix):

* ``GET /`` — the jsPsych experiment; ``GET /complete`` — the default completion page
* ``GET /static/<name>`` — jsPsych (from ``web/node_modules``) and the experiment's own files,
  from a fixed list of names
* ``GET /study/<id>.png`` — an image of the study by opaque id (see
  :func:`fvlab.study.protocol.image_ids`); only images named in the manifest have an id, so
  ``..`` and anything else is refused (400/404)
* ``POST /api/participants`` — enrol (or resume) a participant: condition + trial list + token
* ``POST /api/participants/<id>/submission`` — store all answers at once (see
  :mod:`fvlab.study.submission`); bodies over ``max_body_bytes`` → 413
* ``GET /api/export/<table>.<csv|parquet|jsonl>`` — with ``Authorization: Bearer <admin token>``
* ``GET /api/participants/<id>/key`` — (admin) correct side and kind of each of their trials,
  for simulated participants
* ``GET /healthz`` — row counts (for readiness checks)

All state is in the database: a restarted server carries on where the old one stopped.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Header, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from fvlab.errors import FvlabError
from fvlab.study.enrolment import enrol
from fvlab.study.export import FORMATS, TABLES, encode_table, table_rows
from fvlab.study.manifest import manifest_image_paths, read_manifest
from fvlab.study.protocol import IMAGE_PREFIX, RequestRejected, image_ids
from fvlab.study.settings import ServerSettings
from fvlab.study.storage import count_rows, open_database, participants
from fvlab.study.submission import SubmissionIn, store_submission
from fvlab.study.trials import make_trials

WEB_DIR = Path(__file__).parent / "web"
_MODULES = "node_modules"
WEB_ASSETS = {
    "jspsych.js": f"{_MODULES}/jspsych/dist/index.browser.min.js",
    "jspsych.css": f"{_MODULES}/jspsych/css/jspsych.css",
    "plugin-instructions.js": f"{_MODULES}/@jspsych/plugin-instructions/dist/index.browser.min.js",
    "plugin-html-button-response.js": (
        f"{_MODULES}/@jspsych/plugin-html-button-response/dist/index.browser.min.js"
    ),
    "plugin-preload.js": f"{_MODULES}/@jspsych/plugin-preload/dist/index.browser.min.js",
    "plugin-occlusion-choice.js": "plugin-occlusion-choice.js",
    "experiment.js": "experiment.js",
    "experiment.css": "experiment.css",
}
_MEDIA = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
_COMPLETE_PAGE = (
    "<!doctype html><html lang='en'><meta charset='utf-8'><title>Thank you</title>"
    "<body style='font-family:sans-serif;text-align:center;margin-top:20vh'>"
    "<h1>Thank you!</h1><p>Your answers are saved. You can close this window.</p></body></html>"
)


def web_assets(web_dir: Path = WEB_DIR) -> dict[str, Path]:
    """Name → file of every static asset; a clear error when jsPsych is not installed."""
    assets = {name: web_dir / rel for name, rel in WEB_ASSETS.items()}
    assets["index.html"] = web_dir / "index.html"
    missing = [str(p) for p in assets.values() if not p.is_file()]
    if missing:
        raise FvlabError(
            f"the browser experiment is incomplete (missing {missing[0]}): install jsPsych "
            f"with `npm ci` in {web_dir} (or `make setup`)"
        )
    return assets


class EnrolIn(BaseModel):
    """Prolific's URL parameters, when the participant came from Prolific."""

    model_config = ConfigDict(extra="forbid")
    prolific_pid: str | None = Field(default=None, max_length=200)
    study_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 before any handler."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        too_big = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413
        )
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await too_big(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await too_big(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _image_table(study_dir: Path, manifest: dict[str, Any]) -> tuple[dict[str, str], dict]:
    """(manifest path → opaque id, opaque id → file), every file checked to be inside."""
    root = study_dir.resolve()
    ids = image_ids(sorted(manifest_image_paths(manifest)), (root / "manifest.json").read_bytes())
    files = {}
    for rel, image_id in ids.items():
        path = (root / rel).resolve()
        if root not in path.parents or not path.is_file():
            raise FvlabError(f"manifest image {rel!r} is missing or outside the study directory")
        files[image_id] = path
    return ids, files


def create_app(study_dir: Path, db_url: str, settings: ServerSettings, admin_token: str) -> FastAPI:
    """The FastAPI app for one study directory and database."""
    if len(admin_token) < 16:
        raise FvlabError("the admin token must be at least 16 characters long")
    study_dir = Path(study_dir)
    manifest = read_manifest(study_dir)
    for condition in settings.trials.conditions:  # fail at start, not at the first participant
        make_trials(manifest, condition, "check", 0, settings.seed, settings.trials)
    ids, images = _image_table(study_dir, manifest)

    def image_url(rel: str) -> str:
        return f"{IMAGE_PREFIX}{ids[rel]}.png"

    assets = web_assets()
    engine = open_database(db_url)
    app = FastAPI(title="fvlab study", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.state.engine = engine

    @app.exception_handler(RequestRejected)
    async def _rejected(_request: Request, exc: RequestRejected) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(assets["index.html"], headers={"Cache-Control": "no-store"})

    @app.get("/complete", include_in_schema=False)
    def complete() -> HTMLResponse:
        return HTMLResponse(_COMPLETE_PAGE)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, **count_rows(engine)}

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        if name not in assets or name == "index.html":
            raise RequestRejected(404, f"no static file {name!r}")
        path = assets[name]
        return FileResponse(path, media_type=_MEDIA.get(path.suffix, "application/octet-stream"))

    def check_admin(authorization: str | None) -> None:
        expected = f"Bearer {admin_token}".encode()
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            raise RequestRejected(401, "needs the header 'Authorization: Bearer <admin token>'")

    @app.get("/study/{name:path}")
    def image(name: str) -> FileResponse:
        if ".." in name or name.startswith("/") or "\\" in name:
            raise RequestRejected(400, "image names may not contain '..', '\\' or start with '/'")
        image_id, _, suffix = name.partition(".")
        if suffix != "png" or image_id not in images:
            raise RequestRejected(404, f"no image {name!r} in this study")
        return FileResponse(images[image_id], headers={"Cache-Control": "public, max-age=3600"})

    @app.post("/api/participants")
    def enrol_participant(body: EnrolIn) -> dict[str, Any]:
        return enrol(
            engine,
            manifest,
            settings,
            body.prolific_pid,
            body.study_id,
            body.session_id,
            image_url,
        )

    @app.post("/api/participants/{participant_id}/submission")
    def submit(participant_id: str, body: SubmissionIn) -> dict[str, Any]:
        return store_submission(engine, participant_id, body, settings)

    @app.get("/api/participants/{participant_id}/key")
    def answer_key(
        participant_id: str, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        check_admin(authorization)
        with engine.begin() as conn:
            stored = conn.execute(
                sa.select(participants.c.trials_json).where(
                    participants.c.participant_id == participant_id
                )
            ).scalar_one_or_none()
        if stored is None:
            raise RequestRejected(404, f"no participant {participant_id!r} in this study")
        trials = json.loads(stored)
        return {
            t["trial_id"]: {"correct_side": t["correct_side"], "kind": t["kind"]}
            for block in trials.values()
            for t in block
        }

    @app.get("/api/export/{name}")
    def export(name: str, authorization: str | None = Header(default=None)) -> Response:
        check_admin(authorization)
        table, _, fmt = name.partition(".")
        if table not in TABLES or fmt not in FORMATS:
            raise RequestRejected(
                404, f"export names are <{'|'.join(TABLES)}>.<{'|'.join(FORMATS)}>"
            )
        try:
            data = encode_table(table_rows(engine, table), table, fmt)
        except FvlabError as exc:
            raise RequestRejected(400, str(exc)) from exc
        media = {"csv": "text/csv", "jsonl": "application/x-ndjson"}.get(
            fmt, "application/vnd.apache.parquet"
        )
        return Response(
            data,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return app


def serve(
    study_dir: Path,
    db_url: str,
    settings: ServerSettings,
    admin_token: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "warning",
) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    app = create_app(study_dir, db_url, settings, admin_token)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
