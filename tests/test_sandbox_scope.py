"""One answer's checks share its databases (emptied between sessions); another answer never
sees them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline_plumber.sandbox import Sandbox, TimedOut


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(deadline_s=5) as shared:
        yield shared


def _database(sandbox: Sandbox, setup: str = "") -> str:
    with sandbox.answer_session("postgres") as session:
        found = session.execute(
            "SELECT current_database(), (SELECT count(*) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r')")
        if setup:
            session.execute(setup)
    assert found is not None
    name, tables = found[0]
    assert tables == 0, f"{name} was handed over with {tables} table(s) in it"
    return str(name)


def test_within_one_answer_a_database_is_emptied_and_reused(sandbox: Sandbox) -> None:
    with sandbox.answer_scope():
        first = _database(sandbox, "CREATE TABLE leftover (id int PRIMARY KEY)")
        second = _database(sandbox, "CREATE SEQUENCE s")
        with sandbox.answer_session("postgres") as session:
            name = session.execute("SELECT current_database()")
            assert name is not None
            session.execute(f"ALTER DATABASE {name[0][0]} SET work_mem = '7MB'")
            session.execute("ALTER ROLE CURRENT_USER SET search_path = x7")
        with sandbox.answer_session("postgres") as session:
            settings = session.execute("SELECT current_setting('work_mem'), "
                                       "current_setting('search_path')")
        assert settings is not None and "7MB" not in settings[0][0]
        assert settings[0][1] != "x7"
        with sandbox.answer_session("postgres") as outer:
            found = outer.execute("SELECT current_database()")
            nested = _database(sandbox)
        again = _database(sandbox)
    assert second == first
    assert found == [(first,)]
    assert nested != first  # the outer session holds the kept one: the nested gets a new one
    assert again in (first, nested)


def test_another_answer_never_gets_it_and_it_is_dropped(sandbox: Sandbox) -> None:
    with sandbox.answer_scope():
        mine = _database(sandbox, "CREATE TABLE secret (v text)")
    with sandbox.answer_scope():
        other = _database(sandbox)
    assert other != mine
    assert _database(sandbox) != mine  # outside any scope: always a new one
    admin = sandbox.postgres
    with admin._admin() as conn:  # the cleaner drops on its own thread
        for _ in range(100):
            left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                                (mine,)).fetchone()
            if left == (0,):
                break
            import time
            time.sleep(0.05)
    assert left == (0,)


def test_a_database_left_by_a_timeout_is_not_reused(sandbox: Sandbox) -> None:
    with sandbox.answer_scope():
        with pytest.raises(TimedOut), \
                sandbox.answer_session("postgres", deadline_s=0.5) as session:
            timed = session.execute("SELECT current_database()")
            session.execute("SELECT pg_sleep(5)")
        assert timed is not None
        assert _database(sandbox) != timed[0][0]


EVERYTHING = [
    "CREATE SCHEMA staging",
    "CREATE TABLE staging.raw (id int)",
    "CREATE TYPE mood AS ENUM ('ok', 'sad')",
    "CREATE SEQUENCE ids",
    "CREATE TABLE parent (id int PRIMARY KEY DEFAULT nextval('ids'), m mood)",
    "CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id))",
    "CREATE INDEX child_parent ON child (parent_id)",
    "CREATE VIEW children AS SELECT * FROM child",
    "CREATE TEMP TABLE scratch (id int)",
    "SET VARIABLE batch = 7",
    "ATTACH ':memory:' AS elsewhere",
    "CREATE TABLE elsewhere.main.copy (id int)",
    "USE elsewhere",
    "BEGIN TRANSACTION",
    "INSERT INTO memory.main.parent (m) VALUES ('ok')",
]
"""What an answer's DuckDB session may leave behind: the next session of the same answer must
be able to run all of it again."""


def test_within_one_answer_a_duckdb_database_is_emptied_and_reused(sandbox: Sandbox) -> None:
    with sandbox.answer_scope():
        with sandbox.answer_session("duckdb") as session:
            first = session.connection
            for statement in EVERYTHING:
                session.execute(statement)
        with sandbox.answer_session("duckdb") as session:
            assert session.connection is first
            assert session.execute("SELECT current_database(), current_schema()") == \
                [("memory", "main")]
            assert session.execute("SELECT getvariable('batch')") == [(None,)]
            for statement in EVERYTHING:  # nothing of the first session is in the way
                session.execute(statement)


def test_a_duckdb_database_is_not_reused_by_another_answer_or_after_a_macro(
        sandbox: Sandbox) -> None:
    with sandbox.answer_scope():
        with sandbox.answer_session("duckdb") as session:
            mine = session.connection
            session.execute("CREATE TABLE secret (v text)")
        with sandbox.answer_session("duckdb") as session:
            assert session.connection is mine
            session.execute("CREATE MACRO twice(x) AS 2 * x")
        with sandbox.answer_session("duckdb") as session:
            assert session.connection is not mine  # a macro is not emptied: not kept
    with sandbox.answer_scope(), sandbox.answer_session("duckdb") as session:
        assert session.connection is not mine
        assert session.execute("SELECT count(*) FROM duckdb_tables()") == [(0,)]


def test_a_duckdb_database_left_by_an_error_or_a_timeout_is_not_reused(
        sandbox: Sandbox) -> None:
    with sandbox.answer_scope():
        with pytest.raises(TimedOut), \
                sandbox.answer_session("duckdb", deadline_s=0.3) as session:
            timed = session.connection
            session.execute("SELECT count(*) FROM range(10000000000)")
        with pytest.raises(ZeroDivisionError), sandbox.answer_session("duckdb") as session:
            failed = session.connection
            raise ZeroDivisionError
        with sandbox.answer_session("duckdb") as session:
            assert session.connection is not timed
            assert session.connection is not failed


def test_a_duckdb_database_with_too_much_left_in_it_is_closed_not_emptied(
        sandbox: Sandbox) -> None:
    """Emptying runs outside the answer's deadline: past `EMPTYING_MOST` objects, a new
    database is cheaper and bounded."""
    from pipeline_plumber.sandbox.duckdb import EMPTYING_MOST

    with sandbox.answer_scope():
        with sandbox.answer_session("duckdb") as session:
            crowded = session.connection
            for i in range(EMPTYING_MOST + 1):
                session.execute(f"CREATE TABLE t{i} (id int)")
        with sandbox.answer_session("duckdb") as session:
            assert session.connection is not crowded
            assert session.execute("SELECT count(*) FROM duckdb_tables()") == [(0,)]
