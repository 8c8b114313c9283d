"""Running untrusted answers: least privilege, one deadline per answer, nothing shared.

`Sandbox.answer_session(engine)` opens what one answer runs in: a fresh PostgreSQL database
owned by a role made for it (see `sandbox.postgres`), or a locked, bounded in-memory DuckDB
(see `sandbox.duckdb`). One deadline covers everything run in the with-block. Sessions may be
open on several threads at once. `sandbox.process` runs Python (an answer's DAG file) in a
child process with limits. docs/security.md describes what each layer enforces and what not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .errors import Broken, Damaged, Rejected, SandboxError, TimedOut, one_line
from .postgres import AnswerScope, PostgresSandbox
from .session import DEFAULT_DEADLINE_S, Deadline, Engine, Rows, SqlSession
from .watchdog import Watchdog

if TYPE_CHECKING:
    from .duckdb import DuckdbSpares

__all__ = [
    "DEFAULT_DEADLINE_S", "Broken", "Damaged", "Deadline", "Engine", "Rejected", "Rows",
    "Sandbox", "SandboxError", "SqlSession", "TimedOut", "one_line",
]


class Sandbox:
    """The engines answers run on over one run; the PostgreSQL cluster starts on first use.

    Close it (or use it as a context manager) to stop the cluster and the watchdog.
    """

    def __init__(self, *, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        if deadline_s <= 0:
            raise ValueError("the answer timeout must be a positive number of seconds")
        self.deadline_s = deadline_s
        self.watchdog = Watchdog()
        self._lock = threading.Lock()
        self._postgres: PostgresSandbox | None = None
        self._duckdb_spares: DuckdbSpares | None = None
        self._scopes = threading.local()

    @property
    def postgres(self) -> PostgresSandbox:
        with self._lock:
            if self._postgres is None:
                self._postgres = PostgresSandbox(self.watchdog)
            return self._postgres

    @contextmanager
    def answer_session(self, engine: Engine, *, deadline_s: float | None = None
                       ) -> Iterator[SqlSession]:
        """A fresh database for one answer; one deadline over the whole with-block (from
        the moment the database is ready: starting the cluster is not the answer's time).

        Raises `TimedOut` from inside the block once the deadline passed, and `Damaged` on
        exit when the answer left the PostgreSQL server changed (the server was replaced).
        """
        seconds = deadline_s or self.deadline_s
        if engine == "duckdb":
            from .duckdb import DuckdbSpares, duckdb_answer

            with self._lock:
                if self._duckdb_spares is None:
                    self._duckdb_spares = DuckdbSpares()
                spares = self._duckdb_spares
            kept = getattr(self._scopes, "duckdb", None)
            with duckdb_answer(seconds, self.watchdog, spares, kept) as duck:
                yield duck
        elif engine == "postgres":
            scope = getattr(self._scopes, "current", None)
            with self.postgres.answer(seconds, scope) as session:
                yield session
        else:
            raise ValueError(f"no sandbox for engine {engine!r}")

    @contextmanager
    def answer_scope(self) -> Iterator[None]:
        """Everything one answer's checks open on this thread inside the block: a PostgreSQL
        or DuckDB database the answer left in order is emptied and given to its next session
        instead of a new one (never to another answer); all are dropped when the block ends."""
        if getattr(self._scopes, "current", None) is not None:
            yield  # already inside this answer's scope
            return
        scope, kept = AnswerScope(), list[Any]()  # kept: this answer's DuckDB databases
        self._scopes.current, self._scopes.duckdb = scope, kept
        try:
            yield
        finally:
            self._scopes.current = self._scopes.duckdb = None
            with self._lock:
                postgres, spares = self._postgres, self._duckdb_spares
            if postgres is not None:
                postgres.drop_scope(scope)
            if kept:
                from .duckdb import release

                for con in kept:
                    release(con, spares)

    def close(self) -> None:
        with self._lock:
            postgres, self._postgres = self._postgres, None
            spares, self._duckdb_spares = self._duckdb_spares, None
        try:
            if spares is not None:
                spares.stop()
            if postgres is not None:
                postgres.close()
        finally:
            self.watchdog.stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

