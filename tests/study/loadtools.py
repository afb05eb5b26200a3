"""Tools of the study's load, fault and PostgreSQL tests (and of benchmarks/study_load.py).

* :class:`PostgresCluster` — a throw-away PostgreSQL server: ``initdb`` into a fresh temporary
  folder, ``pg_ctl start`` on a free port of 127.0.0.1 (trust authentication, reachable only
  from this machine), ``CREATE DATABASE`` per test, ``pg_ctl stop`` and the folder removed at
  the end. ``initdb`` refuses to run as root, so as root every PostgreSQL program runs as the
  unprivileged system user ``postgres`` (``runuser -u postgres``; the Debian package makes it).
* :func:`stored_submissions` / :func:`response_rows` — what a database holds, through
  SQLAlchemy, so the same assertions run on SQLite and PostgreSQL.
* :class:`TimingTransport` + :func:`run_load` — simulated participants against a running
  server with the latency of every request recorded (seconds, from sending the request to
  having read the whole answer).

Import it as ``from tests.study import loadtools`` (pytest's importlib mode makes ``tests`` a
namespace package; the benchmark puts the repository root on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import sqlalchemy as sa

from fvlab.study.simulate import ObserverModel, Outcome, simulate_participants

#: the unprivileged user PostgreSQL runs as when the tests run as root
POSTGRES_USER = os.environ.get("FVLAB_POSTGRES_USER", "postgres")
HOW_TO_INSTALL = (
    "install the Debian package `postgresql` (`bash scripts/ensure-postgres.sh`, which "
    "`make test` runs), or set FVLAB_POSTGRES_BIN to the folder that holds initdb and pg_ctl"
)


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be started here; the message says what is missing."""


def postgres_bin_dir() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: $FVLAB_POSTGRES_BIN, then PATH, then Debian's
    /usr/lib/postgresql/<newest version>/bin (Debian keeps initdb off PATH)."""
    candidates = []
    if os.environ.get("FVLAB_POSTGRES_BIN"):
        candidates.append(Path(os.environ["FVLAB_POSTGRES_BIN"]))
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [d for d in debian.iterdir() if d.name.isdigit()]
        candidates += [d / "bin" for d in sorted(versions, key=lambda d: -int(d.name))]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise PostgresUnavailable(
        f"no PostgreSQL server programs (initdb, pg_ctl) found: {HOW_TO_INSTALL}"
    )


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the field after the ")" that closes the command name: state, then the parent id
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """A PostgreSQL server of its own in a temporary folder; :meth:`stop` removes it."""

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.root: Path | None = None
        self.port = 0
        self._databases = 0
        self._as_user: list[str] = []

    def start(self, timeout_s: float = 60.0) -> PostgresCluster:
        """initdb + pg_ctl start; on failure nothing is left behind."""
        try:
            self._start(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout_s: float) -> None:
        user = None
        if os.geteuid() == 0:  # initdb refuses root: run the server as an unprivileged user
            try:
                user = pwd.getpwnam(POSTGRES_USER)
            except KeyError as exc:
                raise PostgresUnavailable(
                    f"running as root, and there is no user {POSTGRES_USER!r} to run PostgreSQL "
                    f"as (set FVLAB_POSTGRES_USER, or {HOW_TO_INSTALL})"
                ) from exc
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root, and `runuser` (util-linux) is missing")
            self._as_user = ["runuser", "-u", POSTGRES_USER, "--"]
        # not under pytest's tmp_path: that folder is private to root, the server must enter it
        self.root = Path(tempfile.mkdtemp(prefix="fvlab-postgres-"))
        if user is not None:
            os.chown(self.root, user.pw_uid, user.pw_gid)
        data = self.root / "data"
        self._run(
            "initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--no-sync",  # speeds up initdb only; the running server still fsyncs every commit
        )  # fmt: skip
        self.port = free_port()
        self._pg_ctl_start(timeout_s)

    def _pg_ctl_start(self, timeout_s: float = 60.0) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c max_connections=200 -c fsync=on -c synchronous_commit=on"
        )
        self._run(
            "pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"), "-w",
            "-t", str(int(timeout_s)), "-o", options, "start",
        )  # fmt: skip

    def kill(self, timeout_s: float = 30.0) -> None:
        """SIGKILL the server and every process of it at once: a crash, no shutdown, no
        checkpoint. :meth:`restart` brings it back (with crash recovery from the WAL)."""
        postmaster = int((self.root / "data" / "postmaster.pid").read_text().split()[0])
        pids = [postmaster, *_children(postmaster)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout_s
        while any(_alive(pid) for pid in pids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL processes {pids} outlived SIGKILL")
            time.sleep(0.05)
        # every process is dead, but a zombie not yet reaped by init still holds its pid, and
        # the new postmaster would take the old one's lock files for a live server's
        for stale in (
            self.root / "data" / "postmaster.pid",
            self.root / f".s.PGSQL.{self.port}.lock",
            self.root / f".s.PGSQL.{self.port}",
        ):
            stale.unlink(missing_ok=True)

    def restart(self, timeout_s: float = 60.0) -> None:
        """Start the server again on the same folder and port (after :meth:`kill`)."""
        self._pg_ctl_start(timeout_s)

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as_user, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
        )
        if done.returncode != 0:
            log = self.root / "server.log" if self.root else None
            tail = log.read_text()[-1500:] if log and log.is_file() else ""
            raise PostgresUnavailable(
                f"`{program} {' '.join(args)}` failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-1500:]} {tail}"
            )

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self, prefix: str = "fvlab") -> str:
        """A new empty database; its SQLAlchemy URL."""
        self._databases += 1
        name = f"{prefix}_{self._databases}"
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server and delete its folder; safe to call twice."""
        if self.root is None:
            return
        data = self.root / "data"
        try:
            if (data / "postmaster.pid").is_file():  # immediate: the data is thrown away anyway
                self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def stored_submissions(url: str) -> dict[str, str]:
    """participant id → raw submission JSON of every submitted participant in ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT participant_id, submission_json FROM participants "
                "WHERE submitted_unix IS NOT NULL"
            ).fetchall()
    finally:
        engine.dispose()
    return dict(rows)


def response_rows(url: str) -> tuple[int, int]:
    """(response rows, distinct (participant, trial, attempt) among them) in ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            total = conn.exec_driver_sql("SELECT count(*) FROM responses").scalar_one()
            distinct = conn.exec_driver_sql(
                "SELECT count(*) FROM (SELECT DISTINCT participant_id, trial_id, attempt "
                "FROM responses) AS answered"
            ).scalar_one()
    finally:
        engine.dispose()
    return total, distinct


def assert_stored_exactly_once(url: str, outcomes: list[Outcome]) -> None:
    """Every outcome's submission is in ``url`` exactly as sent, once; nothing else is."""
    stored = stored_submissions(url)
    assert len(stored) == len(outcomes)
    for o in outcomes:
        assert json.loads(stored[o.participant_id]) == {**o.submission, "jspsych_data": None}
    total, distinct = response_rows(url)
    assert total == distinct == sum(len(o.submission["responses"]) for o in outcomes)


class TimingTransport(httpx.AsyncBaseTransport):
    """httpx's transport, recording (route, seconds) of every request: from sending it to
    having read the whole answer. Routes: enrol, key, submit, other."""

    def __init__(self, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.inner = httpx.AsyncHTTPTransport(limits=limits)
        self.timings: list[tuple[str, float]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        began = time.perf_counter()
        response = await self.inner.handle_async_request(request)
        await response.aread()
        path = request.url.path
        route = (
            "submit"
            if path.endswith("/submission")
            else "key"
            if path.endswith("/key")
            else "enrol"
            if path.endswith("/api/participants")
            else "other"
        )
        self.timings.append((route, time.perf_counter() - began))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class LoadReport:
    """What one load run did and how fast: participants/s over the whole run, and latency
    percentiles (ms) of the participants' own requests (enrol + submit; not the admin key)."""

    outcomes: list[Outcome]
    seconds: float
    timings: list[tuple[str, float]] = field(default_factory=list)

    @property
    def participants_per_s(self) -> float:
        return len(self.outcomes) / self.seconds

    def latency_ms(self, percentile: float, routes: tuple[str, ...] = ("enrol", "submit")) -> float:
        values = [s for route, s in self.timings if route in routes]
        return float(np.percentile(values, percentile) * 1000)


def run_load(
    url: str,
    admin_token: str,
    n_participants: int,
    concurrency: int = 20,
    seed: int = 0,
    timeout_s: float = 300.0,
) -> LoadReport:
    """``n_participants`` simulated participants over ``concurrency`` connections."""
    transport = TimingTransport(concurrency)
    began = time.perf_counter()
    outcomes = simulate_participants(
        url,
        n_participants,
        admin_token,
        ObserverModel(),
        seed=seed,
        concurrency=concurrency,
        timeout_s=timeout_s,
        show_progress=False,
        transport=transport,
    )
    return LoadReport(outcomes, time.perf_counter() - began, transport.timings)
