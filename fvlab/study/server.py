"""The study server (FastAPI): the experiment page, its images, enrolment, submissions, export.

Routes (all URLs the page uses are relative, so the app also works under a proxy prefix):

* ``GET /`` — the jsPsych experiment; ``GET /complete`` — the default end page (shows the
  completion code given as ``?code=``); ``GET /ended`` — the default page after a failed
  practice; ``GET /favicon.ico``
* ``GET /static/<name>`` — jsPsych (from ``web/node_modules``) and the experiment's own files,
  from a fixed list of names
* ``GET /study/<participant id>/<id>.png`` — an image of the study by its per-participant
  opaque id, padded to the common length, without Last-Modified or ETag (see
  :mod:`fvlab.study.protocol`); anything else is refused (400/404)
* ``GET /api/consent`` — the consent text (HTML) shown before enrolment
* ``POST /api/participants`` — enrol (or resume, with the token cookie) a participant:
  condition + trial list + token; at most ``enrol_limit`` new enrolments per client address
  and window (429)
* ``POST /api/participants/<id>/submission`` — store all answers at once (see
  :mod:`fvlab.study.submission`); bodies over ``max_body_bytes`` → 413
* ``GET /api/export/<table>.<csv|parquet|jsonl>`` — with ``Authorization: Bearer <admin token>``
* ``GET /api/participants/<id>/key`` — (admin) correct side, kind and image URLs of each of
  their trials, for simulated participants and tests
* ``GET /healthz`` — row counts (for readiness checks)

Every response carries security headers (:data:`SECURITY_HEADERS`: a strict
Content-Security-Policy with ``frame-ancestors 'none'``, ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: no-referrer``). Request bodies are parsed by
:func:`fvlab.study.protocol.strict_json`. All state is in the database: a restarted server
carries on where the old one stopped.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Header, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from fvlab.errors import FvlabError
from fvlab.study.enrolment import enrol
from fvlab.study.export import FORMATS, TABLES, encode_table, table_rows
from fvlab.study.manifest import manifest_image_paths, read_manifest
from fvlab.study.protocol import (
    ImageIds,
    PaddedImages,
    RequestRejected,
    strict_json,
    trial_images,
)
from fvlab.study.settings import ServerSettings
from fvlab.study.storage import count_rows, open_database, participants, server_secret
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
    "favicon.svg": "favicon.svg",
}
_MEDIA = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}
#: headers of every response
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
        "form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
TOKEN_COOKIE = "fvlab_token"
DEFAULT_CONSENT = (
    "<h2>Consent</h2><p>This is a study about how people understand an artificial neural "
    "network that looks at images. It takes about 10 minutes. You will answer questions about "
    "images by clicking buttons.</p><p>We store your answers, your response times and the "
    "identifiers your recruitment platform passes on (e.g. your Prolific ID), nothing else. "
    "The data are used for research only. Taking part is voluntary; you can stop at any time "
    "by closing this window.</p><p>Do you agree to take part?</p>"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{title}</title>"
        "<link rel='icon' href='static/favicon.svg'>"
        "<body style='font-family:sans-serif;text-align:center;margin-top:20vh'>"
        f"{body}</body></html>"
    )


def complete_page(code: str | None) -> str:
    """The default end page; ``code`` (escaped) is shown as the completion code."""
    shown = (
        f"<p>Your completion code: <b id='fvlab-code'>{html.escape(code)}</b></p>" if code else ""
    )
    return _page(
        "Thank you",
        f"<h1>Thank you!</h1><p>Your answers are saved.</p>{shown}"
        "<p>You can close this window.</p>",
    )


_ENDED_PAGE = _page(
    "Thank you",
    "<h1>Thank you for your time</h1><p>The practice rounds were not passed, so the study "
    "ends here. Your practice answers are saved.</p><p>You can close this window.</p>",
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
    token: str | None = Field(default=None, max_length=128)  # to resume, if no cookie


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


class SecurityHeaders:
    """ASGI middleware: add :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class EnrolLimiter:
    """At most ``limit`` new enrolments per client address in any ``window_s`` seconds
    (sliding window, kept in this process). Loopback clients are exempt (tests, load
    rehearsals); behind a reverse proxy the client is the address the proxy forwards
    (``X-Forwarded-For``, trusted from 127.0.0.1 by uvicorn)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self.seen: dict[str, deque[float]] = {}

    def take(self, client: str | None) -> None:
        if self.limit == 0 or client is None or _is_loopback(client):
            return
        now = time.monotonic()
        times = self.seen.setdefault(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.limit:
            raise RequestRejected(429, "too many new enrolments from this address; try later")
        times.append(now)
        if len(self.seen) > 100_000:  # forget idle clients
            for name in [n for n, t in self.seen.items() if not t or t[-1] <= now - self.window_s]:
                del self.seen[name]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


def _image_files(study_dir: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """Manifest path → file, every file checked to exist inside the study directory."""
    root = study_dir.resolve()
    files = {}
    for rel in sorted(manifest_image_paths(manifest)):
        path = (root / rel).resolve()
        if root not in path.parents or not path.is_file():
            raise FvlabError(f"manifest image {rel!r} is missing or outside the study directory")
        files[rel] = path
    return files


def _parse(model: type[BaseModel], body: bytes, empty: Any = None) -> Any:
    """``model`` from a request body via :func:`strict_json`; bad input → 422."""
    data = empty if not body.strip() and empty is not None else strict_json(body)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise RequestRejected(422, f"{where}: {first.get('msg', 'invalid')}") from exc


def create_app(study_dir: Path, db_url: str, settings: ServerSettings, admin_token: str) -> FastAPI:
    """The FastAPI app for one study directory and database."""
    if len(admin_token) < 16:
        raise FvlabError("the admin token must be at least 16 characters long")
    study_dir = Path(study_dir)
    manifest = read_manifest(study_dir)
    for condition in settings.trials.conditions:  # fail at start, not at the first participant
        make_trials(manifest, condition, "check", 0, settings.seed, settings.trials)
    files = _image_files(study_dir, manifest)
    padded = PaddedImages(files)
    assets = web_assets()
    engine = open_database(db_url)

    def trial_paths(participant_id: str) -> dict[str, list[str]] | None:
        with engine.begin() as conn:
            stored = conn.execute(
                sa.select(participants.c.trials_json).where(
                    participants.c.participant_id == participant_id
                )
            ).scalar_one_or_none()
        if stored is None:
            return None
        trials = json.loads(stored)
        return {t["trial_id"]: trial_images(t) for b in ("practice", "trials") for t in trials[b]}

    ids = ImageIds(server_secret(engine), trial_paths)
    limiter = EnrolLimiter(settings.enrol_limit, settings.enrol_window_s)
    consent = settings.consent_html or DEFAULT_CONSENT
    app = FastAPI(title="fvlab study", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.state.engine = engine
    app.state.padded_length = padded.length

    image_url = ids.url

    @app.exception_handler(RequestRejected)
    async def _rejected(_request: Request, exc: RequestRejected) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(assets["index.html"], headers={"Cache-Control": "no-store"})

    @app.get("/complete", include_in_schema=False)
    def complete(code: str | None = None, cc: str | None = None) -> HTMLResponse:
        shown = code or cc
        return HTMLResponse(complete_page(shown[:64] if shown else None))

    @app.get("/ended", include_in_schema=False)
    def ended() -> HTMLResponse:
        return HTMLResponse(_ENDED_PAGE)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(assets["favicon.svg"], media_type="image/svg+xml")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, **count_rows(engine)}

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        if name not in assets or name == "index.html":
            raise RequestRejected(404, f"no static file {name!r}")
        path = assets[name]
        return FileResponse(path, media_type=_MEDIA.get(path.suffix, "application/octet-stream"))

    @app.get("/api/consent")
    def consent_text() -> dict[str, str]:
        return {"html": consent}

    def is_admin(authorization: str | None) -> bool:
        expected = f"Bearer {admin_token}".encode()
        return authorization is not None and hmac.compare_digest(authorization.encode(), expected)

    def check_admin(authorization: str | None) -> None:
        if not is_admin(authorization):
            raise RequestRejected(401, "needs the header 'Authorization: Bearer <admin token>'")

    @app.get("/study/{name:path}")
    def image(name: str) -> Response:
        if ".." in name or name.startswith("/") or "\\" in name:
            raise RequestRejected(400, "image names may not contain '..', '\\' or start with '/'")
        participant_id, _, file_name = name.partition("/")
        image_id, _, suffix = file_name.partition(".")
        path = ids.path(participant_id, image_id) if suffix == "png" else None
        if path is None:
            raise RequestRejected(404, f"no image {name!r} in this study")
        return Response(
            padded.get(path),
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=86400"},
        )

    @app.post("/api/participants")
    async def enrol_participant(request: Request) -> JSONResponse:
        body = _parse(EnrolIn, await request.body(), empty={})
        presented = request.cookies.get(TOKEN_COOKIE) or body.token
        client = request.client.host if request.client else None
        admin = is_admin(request.headers.get("authorization"))  # the operator may resume anyone
        view = await run_in_threadpool(
            enrol,
            engine,
            manifest,
            settings,
            body.prolific_pid,
            body.study_id,
            body.session_id,
            image_url,
            presented,
            lambda: limiter.take(client),
            admin,
        )
        response = JSONResponse(view, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            TOKEN_COOKIE,
            view["token"],
            max_age=7 * 86400,
            path=None,  # the browser's default: this API's folder (proxy prefixes stay apart)
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    @app.post("/api/participants/{participant_id}/submission")
    async def submit(participant_id: str, request: Request) -> dict[str, Any]:
        body = _parse(SubmissionIn, await request.body())
        return await run_in_threadpool(store_submission, engine, participant_id, body, settings)

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
            t["trial_id"]: {
                "correct_side": t["correct_side"],
                "kind": t["kind"],
                "position": t["position"],
                "query": ids.url(participant_id, t["trial_id"], t["query"]),
                "left": ids.url(participant_id, t["trial_id"], t["left"]),
                "right": ids.url(participant_id, t["trial_id"], t["right"]),
                "set_id": t["set_id"],
            }
            for block in ("practice", "trials")
            for t in trials[block]
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
    """Run the app with uvicorn until interrupted (a port in use is a one-line error)."""
    import socket

    import uvicorn

    app = create_app(study_dir, db_url, settings, admin_token)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise FvlabError(
                f"port: cannot listen on {host}:{port} ({exc.strerror}); "
                "is another server running there? choose another with --port"
            ) from exc
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
