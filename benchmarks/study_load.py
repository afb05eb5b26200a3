"""Study server throughput on SQLite and on PostgreSQL: simulated participants over 20 connections.

Run: .venv/bin/python benchmarks/study_load.py [--participants 500] [--concurrency 20]
     [--only sqlite,postgresql]

For each database: a fresh `fvlab study serve` subprocess on a tiny study (the tests' one), a
fresh database (SQLite file with WAL + synchronous=FULL; a throw-away PostgreSQL server started
with initdb/pg_ctl as in the tests, fsync on), then N simulated participants (enrol, fetch the
answer key, submit) over C concurrent connections. Prints participants/s over the whole run
and the p50/p99 latency (ms, send → whole answer read) of the participants' own requests
(enrol + submit; the admin key fetch is left out), and checks that every submission was stored
exactly once. Speed depends on what else the machine runs: printed here, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.study.*

from tests.study import loadtools  # noqa: E402
from tests.study.conftest import ServerProcess, make_tiny_study  # noqa: E402


def measure(kind: str, study: Path, work: Path, n: int, concurrency: int, cluster) -> None:
    if kind == "sqlite":
        db = work / "bench.sqlite"
        url, extra = f"sqlite:///{db}", ()
    else:
        url = cluster.new_database("bench")
        db, extra = work / "unused.sqlite", ("--db", url)  # the last --db wins
    server = ServerProcess(study, db, None, *extra).start()
    try:
        report = loadtools.run_load(server.url, server.admin_token, n, concurrency, seed=1)
    finally:
        server.stop()
    statuses = {o.status for o in report.outcomes}
    loadtools.assert_stored_exactly_once(url, report.outcomes)
    retries = sum(o.retries for o in report.outcomes)
    print(
        f"{kind:<11} {n} participants, {concurrency} connections: "
        f"{report.participants_per_s:6.1f} participants/s, latency p50 "
        f"{report.latency_ms(50):6.1f} ms, p99 {report.latency_ms(99):6.1f} ms "
        f"(enrol p50 {report.latency_ms(50, ('enrol',)):.1f}, submit p50 "
        f"{report.latency_ms(50, ('submit',)):.1f}); {report.seconds:.1f} s, "
        f"statuses {sorted(statuses)}, {retries} retries, stored exactly once"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--only", default="sqlite,postgresql")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    with tempfile.TemporaryDirectory(prefix="fvlab-study-load-") as tmp:
        work = Path(tmp)
        study = make_tiny_study(work / "study")
        cluster = loadtools.PostgresCluster().start() if "postgresql" in kinds else None
        try:
            for kind in kinds:
                measure(kind, study, work, args.participants, args.concurrency, cluster)
        finally:
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    main()
