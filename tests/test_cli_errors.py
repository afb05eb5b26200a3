"""Every ``fvlab`` command answers bad input with exactly one line on stderr and status 2.

The commands are walked from :func:`fvlab.cli.command_table` (a new command is checked without
editing this file): for each, an unknown option, each required option left out, each numeric
option given a non-number, an option given no value. Then the commands that open the
study database (those with a ``--db`` option) get a garbage file, a directory, a path under a
regular file, an SQLite database of something else, an unknown URL scheme and a PostgreSQL
server that is not there — through the real ``fvlab`` executable, so a traceback anywhere in
the start-up path would show.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import typer.main

from fvlab.cli import build_app, command_table, main

FVLAB = str(Path(sys.executable).parent / "fvlab")
COMMANDS = [(group, name) for group, name, _ in command_table()]
PASSWORD = "pass-word-never-shown"


def _ids(command: tuple[str | None, str]) -> str:
    return " ".join(c for c in command if c)


def _argv(command: tuple[str | None, str]) -> list[str]:
    return [c for c in command if c]


def _parameters(command: tuple[str | None, str]) -> list[tuple[object, type]]:
    """(click parameter, Python type without Optional) of every parameter of the command."""
    group, name = command
    function = next(f for g, n, f in command_table() if (g, n) == command)
    root = typer.main.get_command(build_app())
    click_command = root.commands[group].commands[name] if group else root.commands[name]
    signature = inspect.signature(function, eval_str=True)
    found = []
    for param in click_command.params:
        annotation = signature.parameters[param.name].annotation
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        found.append((param, annotation))
    return found


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``fvlab ARGV`` run in this process."""
    capsys.readouterr()
    try:
        main(argv)
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str, argv: list[str], expect: str = "") -> None:
    lines = err.splitlines()
    assert status == 2, (argv, status, err)
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith("fvlab: error: "), (argv, err)
    assert "Traceback" not in err
    assert expect.lower() in lines[0].lower(), (argv, expect, err)


@pytest.mark.parametrize("command", COMMANDS, ids=_ids)
def test_bad_options_give_one_line_and_status_2(command, capsys):
    argv = _argv(command)
    parameters = _parameters(command)
    cases = [(argv + ["--no-such-option"], "no such option")]
    required = [p for p, _ in parameters if p.required]
    if required:
        cases.append((argv, "missing"))
    numeric = [p for p, kind in parameters if kind in (int, float) and p.opts]
    for param in numeric:  # the bad value first: parsed before anything is found missing
        cases.append((argv + [param.opts[0], "not-a-number"], param.opts[0]))
    takes_value = [p for p, _ in parameters if p.param_type_name == "option" and not p.is_flag]
    if takes_value:  # the last word of the command line, its value forgotten
        cases.append((argv + [takes_value[-1].opts[0]], "requires an argument"))
    assert required or numeric, f"{_ids(command)}: nothing to get wrong? add a case here"
    for case, expect in cases:
        status, out, err = run_main(case, capsys)
        assert_one_line_error(status, err, case, expect)
        assert out == "", (case, out)


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["study", "power", "--p1", "1.5"], "p1"),
        (["study", "simulate", "--url", "http://127.0.0.1:9"], "admin token"),
        (["study", "export", ".", "--out", "x", "--format", "xml"], "format"),
        (["no-such-command"], "no such command"),
        (["study", "no-such-command"], "no such command"),
    ],
)
def test_bad_values_found_by_the_commands_give_one_line(argv, expect, capsys):
    status, _, err = run_main(argv, capsys)
    assert_one_line_error(status, err, argv, expect)


def test_help_is_not_an_error(capsys):
    status, out, err = run_main(["study", "build", "--help"], capsys)
    assert status == 0 and "Usage" in out and err == ""


def test_the_executable_gives_one_line_for_a_missing_option():
    done = subprocess.run([FVLAB, "study", "build"], capture_output=True, text=True, timeout=120)
    assert_one_line_error(done.returncode, done.stderr, ["study", "build"])


# --- bad databases ------------------------------------------------------------------------

DB_COMMANDS = [c for c in COMMANDS if any(p.name == "db" for p, _ in _parameters(c))]


@pytest.fixture(scope="module")
def bad_databases(tmp_path_factory) -> dict[str, str]:
    """name → --db value of a database that cannot be used."""
    import sqlite3

    root = tmp_path_factory.mktemp("bad-db")
    garbage = root / "garbage.sqlite"
    garbage.write_bytes(bytes(range(256)) * 16)
    (root / "a-file").write_text("not a folder")
    other = root / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE unrelated (x INTEGER)")
    return {
        "garbage file": str(garbage),
        "a directory": str(root),
        "under a regular file": str(root / "a-file" / "study.sqlite"),
        "another program's SQLite": str(other),
        "unknown URL scheme": "nosuchdb://host/db",
        "PostgreSQL not running": f"postgresql+psycopg://nobody:{PASSWORD}@127.0.0.1:9/none",
    }


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    from tests.study.conftest import make_tiny_study

    return make_tiny_study(tmp_path_factory.mktemp("cli-study"))


def _db_argv(command, study_dir: Path, out: Path) -> list[str]:
    """The command with its required parameters filled in with usable values."""
    argv = _argv(command)
    options = {o for p, _ in _parameters(command) for o in p.opts}
    for param, _ in _parameters(command):
        if param.required:
            if param.param_type_name == "argument":
                argv.append(str(study_dir))
            else:
                argv += [param.opts[0], str(out / param.name)]
    if "--admin-token" in options:
        argv += ["--admin-token", "x" * 20]
    if "--port" in options:
        from tests.study.conftest import free_port

        argv += ["--port", str(free_port())]
    return argv


@pytest.mark.parametrize("command", DB_COMMANDS, ids=_ids)
def test_bad_databases_give_one_line_and_status_2(
    command, bad_databases, study_dir, tmp_path, capsys, monkeypatch
):
    def started(*args, **kwargs):
        raise AssertionError("the server started on a database it cannot use")

    monkeypatch.setattr("uvicorn.run", started)
    argv = _db_argv(command, study_dir, tmp_path)
    for name, db in bad_databases.items():
        if name == "another program's SQLite" and "--port" in argv:
            continue  # serve adds its tables to any SQLite database: not an error
        case = [*argv, "--db", db]
        status, out, err = run_main(case, capsys)
        assert_one_line_error(status, err, case, "database")
        assert PASSWORD not in out + err


@pytest.mark.parametrize("command", DB_COMMANDS, ids=_ids)
def test_the_executable_gives_one_line_for_a_garbage_database(
    command, bad_databases, study_dir, tmp_path
):
    case = [*_db_argv(command, study_dir, tmp_path), "--db", bad_databases["garbage file"]]
    try:
        done = subprocess.run([FVLAB, *case], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:  # run() has killed it
        pytest.fail(f"`fvlab {' '.join(case)}` kept running instead of failing")
    assert_one_line_error(done.returncode, done.stderr, case, "file is not a database")


def test_some_commands_open_the_database():
    assert {name for _, name in DB_COMMANDS} >= {"serve", "export", "analyze"}


def test_serve_on_a_port_in_use_gives_one_line(study_dir, tmp_path, capsys, monkeypatch):
    import socket

    def started(*args, **kwargs):
        raise AssertionError("the server started on a port that is taken")

    monkeypatch.setattr("uvicorn.run", started)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        case = ["study", "serve", str(study_dir), "--host", "127.0.0.1", "--port", str(port)]
        case += ["--db", str(tmp_path / "study.sqlite"), "--admin-token", "x" * 20]
        status, _, err = run_main(case, capsys)
    assert_one_line_error(status, err, case, f"port: cannot listen on 127.0.0.1:{port}")
