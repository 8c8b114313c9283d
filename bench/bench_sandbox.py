"""The sandbox's overhead per answer: fresh role and database, deadline, health check, cleanup.

Opens N answer sessions one after another and times each from request to close, with nothing
run in it (`SELECT 1`), and with a trivial DDL. Compares CREATE DATABASE strategies (WAL_LOG
and FILE_COPY) and prints medians, p95 and ratios against a bare superuser connection to an
existing database (what an answer cost before it had a role and database of its own) and
against DuckDB's sandbox, and what a further session of the same answer costs (its database
emptied and given again).

    .venv/bin/python bench/bench_sandbox.py [--answers 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import psycopg

from pipeline_plumber.sandbox import Sandbox, SqlSession
from pipeline_plumber.sandbox import postgres as pg_sandbox


def timings(answers: int, run: Callable[[], None]) -> list[float]:
    run()  # warm up: the cluster starts on first use
    out = []
    for _ in range(answers):
        start = time.perf_counter()
        run()
        out.append(time.perf_counter() - start)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def show(label: str, values: list[float], base: float | None = None) -> float:
    median = statistics.median(values)
    ratio = f"  {median / base:5.1f}x the bare connection" if base else ""
    print(f"{label:44} median {median * 1000:6.1f} ms  p95 {p95(values) * 1000:6.1f} ms{ratio}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=200)
    args = parser.parse_args()

    def in_session(sandbox: Sandbox, engine: str, statement: str) -> Callable[[], None]:
        def run() -> None:
            with sandbox.answer_session(engine) as session:  # type: ignore[arg-type]
                work(session, statement)
        return run

    def work(session: SqlSession, statement: str) -> None:
        session.execute(statement)

    ddl = "CREATE TABLE events (id bigint PRIMARY KEY, user_id bigint NOT NULL)"
    print(f"{args.answers} answers each, one after another")
    with Sandbox() as sandbox:
        admin = sandbox.postgres.admin_dsn
        bare = show("bare superuser connection + SELECT 1",
                    timings(args.answers, lambda: psycopg.connect(admin).close()))
        results = {}
        for strategy in ("WAL_LOG", "FILE_COPY"):
            pg_sandbox.CLONE_STRATEGY = strategy
            results[strategy] = show(f"postgres answer, {strategy}, SELECT 1",
                                     timings(args.answers, in_session(sandbox, "postgres",
                                                                      "SELECT 1")), bare)
            show(f"postgres answer, {strategy}, one CREATE TABLE",
                 timings(args.answers, in_session(sandbox, "postgres", ddl)), bare)
        show("duckdb answer, one CREATE TABLE",
             timings(args.answers, in_session(sandbox, "duckdb", ddl)), bare)
        with sandbox.answer_scope():  # the same answer's next check: its database, emptied
            show("postgres, the same answer's next session",
                 timings(args.answers, in_session(sandbox, "postgres", ddl)), bare)
        print(f"FILE_COPY / WAL_LOG: {results['FILE_COPY'] / results['WAL_LOG']:.2f}")
        print(f"health-check restarts during the run: {sandbox.postgres.restarts}")


if __name__ == "__main__":
    main()
