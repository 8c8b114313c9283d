"""The session an answer's SQL runs in, whatever the engine: one deadline, sorted failures.

A `SqlSession` belongs to one answer. Every statement and probe of that answer runs through it,
under one deadline that the `Watchdog` enforces from outside the engine. `execute` raises
`Rejected` (the engine refused the data), `Broken` (it could not run) or `TimedOut`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Any, Literal

from .errors import TimedOut

Engine = Literal["postgres", "duckdb"]
Rows = list[tuple[Any, ...]]

DEFAULT_DEADLINE_S = 20.0


class Deadline:
    """When an answer's time is up; `expire()` is called by the watchdog, never by the answer."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("a deadline must be a positive number of seconds")
        self.seconds = seconds
        self.started = time.monotonic()
        self.at = self.started + seconds
        self._expired = threading.Event()

    @property
    def expired(self) -> bool:
        return self._expired.is_set() or time.monotonic() >= self.at

    def expire(self) -> None:
        self._expired.set()

    def check(self) -> None:
        """Raise TimedOut when the time is up (before sending anything more to the engine)."""
        if self.expired:
            raise TimedOut(self.seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())


class SqlSession(ABC):
    """One answer's database: run statements, undo blocks, start over; all under one deadline."""

    engine: Engine

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.notes: list[str] = []
        """What the sandbox did on the answer's behalf, e.g. a pre-installed extension."""

    @abstractmethod
    def execute(self, sql: str) -> Rows | None:
        """Run one statement; its rows, or None when it returns none. Raises Rejected, Broken,
        TimedOut, each with a one-line message."""

    @abstractmethod
    def savepoint(self, *, undo: bool = False) -> AbstractContextManager[None]:
        """A block whose changes are undone if it raises (or always, with `undo=True`).

        PostgreSQL: a transaction, or a savepoint inside one. DuckDB: a transaction at the
        outermost level; DuckDB has no savepoints, so an inner block is undone with the outer.
        """

    @abstractmethod
    def reset(self) -> None:
        """Start again from an empty database, under the same deadline."""

    @property
    @abstractmethod
    def connection(self) -> Any:
        """The engine's connection (psycopg or duckdb), for what `execute` cannot express.
        Everything run through it is still under the deadline."""

    @property
    def dsn(self) -> str | None:
        """A libpq DSN of the answer's own database and role (PostgreSQL only)."""
        return None
