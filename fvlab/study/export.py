"""Export the study's tables: CSV (stdlib), Parquet (pyarrow) or JSON lines.

Tables: ``participants`` (one row each, no access token, no trial list, no raw JSON),
``responses`` (one row per answered trial) and ``raw`` (one JSON object per submitted
participant: their enrolment and the submission exactly as stored).

CSV cells are made safe for spreadsheets (:func:`csv_cell`): text starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading ``'`` (so it is not run as a formula;
OWASP's advice), and NUL characters are removed. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from fvlab.errors import FvlabError
from fvlab.study.storage import fetch_participants, fetch_responses

TABLES = ("participants", "responses", "raw")
FORMATS = ("csv", "parquet", "jsonl")
_PRIVATE = ("token", "trials_json", "submission_json")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell that no spreadsheet runs as a formula (see the module docstring)."""
    if not isinstance(value, str):
        return value
    value = value.replace("\x00", "")
    return "'" + value if value.startswith(_FORMULA_START) else value


def table_rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    """Rows of one export table as plain dicts."""
    if table == "responses":
        return fetch_responses(engine)
    if table == "participants":
        return [
            {k: v for k, v in row.items() if k not in _PRIVATE}
            for row in fetch_participants(engine)
        ]
    if table == "raw":
        return [
            {
                "participant_id": row["participant_id"],
                "condition": row["condition"],
                "prolific_pid": row["prolific_pid"],
                "study_id": row["study_id"],
                "session_id": row["session_id"],
                "created_unix": row["created_unix"],
                "submitted_unix": row["submitted_unix"],
                "assigned": json.loads(row["trials_json"]),
                "submission": json.loads(row["submission_json"]),
            }
            for row in fetch_participants(engine, submitted_only=True)
        ]
    raise FvlabError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")


def encode_table(rows: list[dict[str, Any]], table: str, fmt: str) -> bytes:
    """Serialise rows in ``fmt`` (csv, parquet, jsonl); ``raw`` only as jsonl."""
    if fmt not in FORMATS:
        raise FvlabError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if table == "raw" and fmt != "jsonl":
        raise FvlabError("the raw table holds nested JSON: export it as jsonl")
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows).encode()
    columns = list(rows[0]) if rows else []
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
        return text.getvalue().encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def export_study(engine: Engine, out_dir: Path, fmt: str = "csv") -> list[Path]:
    """Write participants.<fmt>, responses.<fmt> and raw.jsonl into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in TABLES:
        table_fmt = "jsonl" if table == "raw" else fmt
        path = out_dir / f"{table}.{table_fmt}"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(encode_table(table_rows(engine, table), table, table_fmt))
        tmp.replace(path)
        written.append(path)
    return written
