"""The sandbox session API: isolation between answers, one deadline, damage found and repaired."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pipeline_plumber.sandbox import Broken, Damaged, Rejected, Sandbox, TimedOut

pytestmark = pytest.mark.engines  # sandboxes over PostgreSQL and DuckDB


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(deadline_s=5) as shared:
        yield shared


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_rejected_broken_and_undo(sandbox: Sandbox, engine: str) -> None:
    with sandbox.answer_session(engine) as session:  # type: ignore[arg-type]
        session.execute("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)")
        with pytest.raises(Rejected):
            session.execute("INSERT INTO t VALUES (1, NULL)")
        with pytest.raises(Broken) as caught:
            session.execute("SELECT * FROM missing\x1b[31m")
        assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)
        with pytest.raises(Rejected), session.savepoint():
            session.execute("INSERT INTO t VALUES (2, 'a')")
            session.execute("INSERT INTO t VALUES (2, 'b')")
        assert session.execute("SELECT count(*) FROM t") == [(0,)]
        with session.savepoint(undo=True):
            session.execute("INSERT INTO t VALUES (3, 'c')")
        assert session.execute("SELECT count(*) FROM t") == [(0,)]
        session.reset()
        with pytest.raises(Broken):
            session.execute("SELECT * FROM t")


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_one_deadline_covers_every_statement(sandbox: Sandbox, engine: str) -> None:
    sleep = "SELECT pg_sleep(0.6)" if engine == "postgres" else (
        "SELECT count(*) FROM range(100000000) a, range(10) b")
    started = time.monotonic()
    with pytest.raises(TimedOut, match=r"timed out after 1.5 s"), \
            sandbox.answer_session(engine, deadline_s=1.5) as session:  # type: ignore[arg-type]
        for _ in range(100):
            session.execute(sleep)
    assert time.monotonic() - started < 1.5 + 2


def test_answers_on_threads_do_not_see_each_other(sandbox: Sandbox) -> None:
    seen: list[object] = []
    errors: list[BaseException] = []

    def answer(number: int) -> None:
        try:
            with sandbox.answer_session("postgres") as session:
                session.execute("CREATE TABLE shared_name (n int)")
                session.execute(f"INSERT INTO shared_name VALUES ({number})")
                time.sleep(0.2)
                seen.append(session.execute("SELECT array_agg(n) FROM shared_name"))
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=answer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(str(s) for s in seen) == sorted(f"[([{n}],)]" for n in range(6))


def test_an_answer_cannot_reach_another_answers_database(sandbox: Sandbox) -> None:
    with sandbox.answer_session("postgres") as first, \
            sandbox.answer_session("postgres") as second:
        assert first.dsn and second.dsn
        other_db = psycopg.conninfo.conninfo_to_dict(second.dsn)["dbname"]
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(make_conninfo(first.dsn, dbname=str(other_db))).close()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(make_conninfo(first.dsn, dbname="postgres")).close()


def test_damage_is_found_the_server_replaced_and_the_answer_marked() -> None:
    with Sandbox(deadline_s=5) as own:
        admin = own.postgres.admin_dsn
        with pytest.raises(Damaged, match="the answer damaged the sandbox server"), \
                own.answer_session("postgres") as session:
            session.execute("CREATE TABLE t (n int)")
            with psycopg.connect(admin, autocommit=True) as conn:  # what no answer can do
                conn.execute("ALTER SYSTEM SET work_mem = '1MB'")
        assert own.postgres.restarts == 1
        assert own.postgres.admin_dsn != admin
        with own.answer_session("postgres") as session:
            assert session.execute("SHOW work_mem") == [("32MB",)]
