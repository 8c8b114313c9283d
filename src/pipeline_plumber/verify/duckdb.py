"""Prove an example on DuckDB, in a fresh in-memory database: the columnar engine here, where
the knowledge base's warehouse claims (column pruning, no enforced-key assumptions) are real."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..kb import Example
from .checks import evaluate
from .core import Env
from .python import exec_example


def prove(ex: Example, deps: Sequence[Example], env: Env) -> list[str]:
    import duckdb

    assert ex.proof is not None
    with duckdb.connect(":memory:") as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for dep in deps:
            try:
                _setup(conn, dep)
                _run(conn, dep, {})
            except Exception as err:
                return [f"required example '{dep.id}' failed: {type(err).__name__}: {err}"]
        _setup(conn, ex)
        session = _Session(ex, conn)
        return evaluate(ex.proof, session, session.run_example(), ex.code)


def _setup(conn: Any, ex: Example) -> None:
    assert ex.proof is not None
    if ex.proof.setup:
        conn.execute(ex.proof.setup)


def _run(conn: Any, ex: Example, namespace: dict[str, Any]) -> None:
    if ex.language == "python":
        namespace.setdefault("conn", conn)
        _, err = exec_example(ex, namespace, run=True)
        if err is not None:
            raise err
    else:
        conn.execute(ex.code)


class _Session:
    def __init__(self, ex: Example, conn: Any) -> None:
        self.ex, self.conn = ex, conn
        self.namespace: dict[str, Any] = {"conn": conn}
        self.defined = False
        self.rows: list[tuple[Any, ...]] | None = None

    def returned(self) -> list[tuple[Any, ...]] | None:
        return self.rows

    def run_example(self) -> BaseException | None:
        try:
            if self.ex.language == "python":
                _, err = exec_example(self.ex, self.namespace, run=True, define=not self.defined)
                self.defined = True
                return err
            self.conn.execute(self.ex.code)
            self.rows = self.conn.fetchall() if self.conn.description else None
        except Exception as err:
            return err
        return None

    def value(self, query: str) -> Any:
        row = self.conn.execute(query).fetchone()
        return None if row is None else row[0]

    def result(self, query: str) -> Any:
        return self.conn.execute(query).fetchall()

    def plan(self, query: str, analyze: bool) -> str:
        prefix = "EXPLAIN ANALYZE" if analyze else "EXPLAIN"
        rows = self.conn.execute(f"{prefix} {query}").fetchall()
        return "\n".join(str(r[-1]) for r in rows)

    def statement(self, statement: str) -> BaseException | None:
        try:
            self.conn.execute(statement)
        except Exception as err:
            return err
        return None
