"""Where the study's answers live: two tables in any SQLAlchemy database.

``participants``: one row per participant — assigned condition and trial list (JSON), Prolific
identifiers, timings, and the raw JSON of their submission. ``responses``: one row per answered
trial (practice attempts included), with the chosen side, confidence and correctness.

SQLite (the default, a file in the study directory) runs in WAL mode with ``synchronous=FULL``
and every transaction starts with ``BEGIN IMMEDIATE``, so concurrent writers queue instead of
failing and a committed submission survives a killed process. A PostgreSQL URL
(``postgresql+psycopg://user:pass@host/db``) works the same way (the driver is not a
dependency: ``pip install 'psycopg[binary]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fvlab.errors import FvlabError

metadata = sa.MetaData()

participants = sa.Table(
    "participants",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("participant_id", sa.String(32), nullable=False, unique=True),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("condition", sa.String(16), nullable=False),
    sa.Column("external_key", sa.String(420), unique=True),  # STUDY_ID|PROLIFIC_PID
    sa.Column("prolific_pid", sa.String(200)),
    sa.Column("study_id", sa.String(200)),
    sa.Column("session_id", sa.String(200)),
    sa.Column("created_unix", sa.Float, nullable=False),
    sa.Column("trials_json", sa.Text, nullable=False),
    sa.Column("submitted_unix", sa.Float),
    sa.Column("instructions_ms", sa.Float),
    sa.Column("total_ms", sa.Float),
    sa.Column("practice_attempts", sa.Integer),
    sa.Column("practice_passed", sa.Boolean),
    sa.Column("user_agent", sa.String(500)),
    sa.Column("submission_json", sa.Text),
)

responses = sa.Table(
    "responses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "participant_id",
        sa.String(32),
        sa.ForeignKey("participants.participant_id"),
        nullable=False,
        index=True,
    ),
    sa.Column("trial_id", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("condition", sa.String(16), nullable=False),
    sa.Column("unit_id", sa.String(200), nullable=False),
    sa.Column("layer", sa.String(200), nullable=False),
    sa.Column("set_id", sa.String(200), nullable=False),
    sa.Column("correct_side", sa.String(8), nullable=False),
    sa.Column("response", sa.Integer, nullable=False),
    sa.Column("chosen_side", sa.String(8), nullable=False),
    sa.Column("confidence", sa.Integer, nullable=False),
    sa.Column("correct", sa.Boolean, nullable=False),
    sa.Column("rt_ms", sa.Float, nullable=False),
    sa.UniqueConstraint("participant_id", "trial_id", "attempt", name="one_answer_per_trial"),
)


#: server-side secrets (one row: the key of the image ids), in their own MetaData so that
#: readers of the answers (export, analyze) do not need this table
keys_metadata = sa.MetaData()
server_keys = sa.Table(
    "server_keys",
    keys_metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(128), nullable=False),
)


def server_secret(engine: Engine, name: str = "image_ids") -> bytes:
    """A random 32-byte secret kept in the database: made once, the same for every server
    process and restart that uses this database (a racing second maker reads the first's)."""
    import secrets

    keys_metadata.create_all(engine)
    query = sa.select(server_keys.c.value).where(server_keys.c.name == name)
    with engine.begin() as conn:
        value = conn.execute(query).scalar_one_or_none()
    if value is None:
        try:
            with engine.begin() as conn:
                conn.execute(server_keys.insert().values(name=name, value=secrets.token_hex(32)))
        except sa.exc.IntegrityError:
            pass
        with engine.begin() as conn:
            value = conn.execute(query).scalar_one()
    return bytes.fromhex(value)


def database_url(db: str | None, study_dir: Path | None) -> str:
    """A SQLAlchemy URL from ``--db``: a URL as is, a bare path as SQLite, None → study dir."""
    if db is None:
        if study_dir is None:
            raise FvlabError(
                "db: no database given; pass a database URL (--db URL) or a study directory"
            )
        return f"sqlite:///{(Path(study_dir) / 'study.sqlite').resolve()}"
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).resolve()}"


def shown_url(url: str) -> str:
    """``url`` as messages show it: a password replaced by ``***``."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _sqlite_setup(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def open_database(url: str, create: bool = True) -> Engine:
    """An engine for ``url`` with the study tables created (when ``create``)."""
    try:
        if url.startswith("sqlite"):
            if url not in ("sqlite://", "sqlite:///:memory:"):
                path = Path(url.split("///", 1)[1])
                if not create and not path.is_file():
                    raise FvlabError(
                        f"no study database at {path}: start `fvlab study serve` first, or "
                        "pass the database URL the server used (db, --db on the command line)"
                    )
                path.parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _sqlite_setup(engine)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ModuleNotFoundError) as exc:
        raise FvlabError(
            f"cannot use database URL {shown_url(url)!r}: {exc}. Use a path, "
            "sqlite:///FILE.sqlite or postgresql+psycopg://USER:PASS@HOST/DB (after "
            "`pip install 'psycopg[binary]'`)"
        ) from exc
    except OSError as exc:  # the SQLite file's folder cannot be made
        raise FvlabError(f"cannot open database {shown_url(url)!r}: {exc}") from exc
    try:  # connect once now: an unreachable server or a file that is no database fails here
        if create:
            metadata.create_all(engine)
        else:
            missing = set(metadata.tables) - set(sa.inspect(engine).get_table_names())
            if missing:
                raise FvlabError(
                    f"{shown_url(url)!r} is not a study database (no table "
                    f"{sorted(missing)[0]!r}); pass the database `fvlab study serve` used (--db)"
                )
    except sa.exc.DBAPIError as exc:  # garbage file, refused connection, bad password
        engine.dispose()
        raise FvlabError(f"cannot open database {shown_url(url)!r}: {exc.orig}") from exc
    return engine


def lock_for_enrolment(connection: sa.Connection) -> None:
    """Serialise enrolments across processes (SQLite: BEGIN IMMEDIATE already does)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(802842)")


def fetch_participants(engine: Engine, submitted_only: bool = False) -> list[dict[str, Any]]:
    """All participant rows as dicts, ordered by participant number."""
    query = sa.select(participants).order_by(participants.c.seq)
    if submitted_only:
        query = query.where(participants.c.submitted_unix.is_not(None))
    with engine.begin() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def fetch_responses(engine: Engine) -> list[dict[str, Any]]:
    """All response rows as dicts, ordered by participant, attempt and position."""
    query = sa.select(responses).order_by(
        responses.c.participant_id, responses.c.kind, responses.c.attempt, responses.c.position
    )
    with engine.begin() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def count_rows(engine: Engine) -> dict[str, int]:
    """Rows per table, and how many participants have submitted."""
    with engine.begin() as conn:
        n_part = conn.execute(sa.select(sa.func.count()).select_from(participants)).scalar_one()
        n_sub = conn.execute(
            sa.select(sa.func.count())
            .select_from(participants)
            .where(participants.c.submitted_unix.is_not(None))
        ).scalar_one()
        n_resp = conn.execute(sa.select(sa.func.count()).select_from(responses)).scalar_one()
    return {"participants": n_part, "submitted": n_sub, "responses": n_resp}
