"""Prove an example on a real PostgreSQL server, in a fresh database of its own.

SQL examples run as one script on an autocommit connection, the way psql would run them.
Python examples get `conn`, a psycopg connection that is NOT in autocommit (as DB-API code
expects), and the checks read through a second connection: what an example did not commit is
not there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..kb import Example
from ..kb_proof import ConcurrentCheck
from .checks import evaluate
from .core import Env, matches, one_line
from .python import exec_example
from .sqlsplit import split_sql

if TYPE_CHECKING:
    import psycopg

LOCK_TIMEOUT = "1s"


def prove(ex: Example, deps: Sequence[Example], env: Env) -> list[str]:
    import psycopg

    from ..pgcluster import fresh_database

    with fresh_database(env.postgres()) as dsn, psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SET TimeZone = 'UTC'")
        for dep in deps:
            problem = _prepare(dep, dsn, admin)
            if problem is not None:
                return [f"required example '{dep.id}' failed: {problem}"]
        assert ex.proof is not None
        if ex.proof.setup:
            run_script(admin, ex.proof.setup)
        if ex.language == "python":
            session: _Session = _PythonSession(ex, dsn, admin)
        else:
            session = _SqlSession(ex, dsn, admin)
        try:
            error, failures = session.first_run()
            return failures + evaluate(ex.proof, session, error, ex.code)
        finally:
            session.close()


def _prepare(dep: Example, dsn: str, admin: psycopg.Connection[Any]) -> str | None:
    """Run a required example's setup and code; the error line if it fails."""
    assert dep.proof is not None
    try:
        if dep.proof.setup:
            run_script(admin, dep.proof.setup)
        if dep.language == "python":
            session = _PythonSession(dep, dsn, admin)
            try:
                err = session.run_example()
            finally:
                session.close()
            if err is not None:
                raise err
        else:
            run_script(admin, dep.code)
    except Exception as err:
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0]}"
    return None


def run_script(conn: psycopg.Connection[Any], script: str) -> list[tuple[Any, ...]] | None:
    """Run each statement of `script` in turn; the rows of the last one that returned rows."""
    rows = None
    for statement in split_sql(script):
        cur = conn.execute(statement.encode())
        if cur.description is not None:
            rows = cur.fetchall()
    return rows


class _Session:
    def __init__(self, ex: Example, dsn: str, admin: psycopg.Connection[Any]) -> None:
        self.ex, self.dsn, self.admin = ex, dsn, admin
        self.rows: list[tuple[Any, ...]] | None = None

    def returned(self) -> list[tuple[Any, ...]] | None:
        return self.rows

    def first_run(self) -> tuple[BaseException | None, list[str]]:
        return self.run_example(), []

    def run_example(self) -> BaseException | None:
        raise NotImplementedError

    def value(self, query: str) -> Any:
        row = self.admin.execute(query.encode()).fetchone()
        return None if row is None else row[0]

    def result(self, query: str) -> Any:
        return self.admin.execute(query.encode()).fetchall()

    def plan(self, query: str, analyze: bool) -> str:
        options = "ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF" if analyze else "COSTS OFF"
        rows = self.admin.execute(f"EXPLAIN ({options}) {query}".encode()).fetchall()
        return "\n".join(str(r[0]) for r in rows)

    def statement(self, statement: str) -> BaseException | None:
        try:
            run_script(self.admin, statement)
        except Exception as err:
            return err
        return None

    def close(self) -> None:
        pass


class _SqlSession(_Session):
    def run_example(self) -> BaseException | None:
        """Run the script; keep the rows of its last statement that returned any."""
        try:
            self.rows = run_script(self.admin, self.ex.code)
        except Exception as err:
            if self.admin.info.transaction_status != 0:  # a failed script's own BEGIN
                self.admin.execute("ROLLBACK")
            return err
        return None

    def first_run(self) -> tuple[BaseException | None, list[str]]:
        """With concurrent checks, the example's transaction stays open while they run."""
        assert self.ex.proof is not None
        concurrent = [c for c in self.ex.proof.checks if isinstance(c, ConcurrentCheck)]
        if not concurrent:
            return self.run_example(), []
        import psycopg

        failures: list[str] = []
        holder = psycopg.connect(self.dsn)
        other = psycopg.connect(self.dsn, autocommit=True)
        with holder, other:
            other.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'".encode())
            try:
                self.rows = run_script(holder, self.ex.code)
            except Exception as first:
                return first, []
            for check in concurrent:
                err: BaseException | None = None
                try:
                    other.execute(check.concurrently.encode())
                except Exception as caught:
                    err = caught
                what = f"`{one_line(check.concurrently)}` from another session"
                if check.raises is None and err is not None:
                    failures.append(f"{what}: claimed it proceeds while the example's transaction "
                                    f"is open; observed {type(err).__name__}: {_first(err)}")
                elif check.raises is not None and not matches(err, check.raises):
                    observed = f"{type(err).__name__}: {_first(err)}" if err else "it proceeded"
                    failures.append(f"{what}: claimed it fails with '{check.raises}' while the "
                                    f"example's transaction is open; observed {observed}")
            holder.commit()
        return None, failures


class _PythonSession(_Session):
    """A Python example with `conn` on the fresh database; `run` calls what it defines."""

    def __init__(self, ex: Example, dsn: str, admin: psycopg.Connection[Any]) -> None:
        import psycopg

        super().__init__(ex, dsn, admin)
        self.conn = psycopg.connect(dsn)
        self.conn.execute("SET TimeZone = 'UTC'")
        self.conn.commit()
        self.namespace: dict[str, Any] | None = None

    def run_example(self) -> BaseException | None:
        assert self.ex.proof is not None
        if self.namespace is None:
            self.namespace, err = exec_example(self.ex, {"conn": self.conn}, run=False)
            if err is not None:
                return err
        err = exec_example(self.ex, self.namespace, run=True, define=False)[1]
        if err is not None and not self.conn.closed:
            self.conn.rollback()  # leave the connection usable for a rerun, as a pool would
        return err

    def statement(self, statement: str) -> BaseException | None:
        assert self.namespace is not None
        try:
            exec(compile(statement, f"<{self.ex.id} statement>", "exec"), self.namespace)
        except Exception as err:
            if not self.conn.closed:
                self.conn.rollback()
            return err
        return None

    def close(self) -> None:
        self.conn.close()


def _first(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""
