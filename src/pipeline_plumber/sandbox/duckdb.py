"""DuckDB for an answer: in-memory, nothing outside the process reachable, bounded, locked.

The configuration is locked once applied, so the answer cannot raise its own limits or turn
external access back on. The deadline is enforced by `con.interrupt()` from the watchdog,
repeated until the session ends (an interrupt that lands between two statements is lost, and
the next statement then fails the deadline check before it starts).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from .errors import Broken, Rejected, first_line_of
from .session import Deadline, Rows, SqlSession
from .watchdog import Watchdog

DUCKDB_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "threads": 1,
    "memory_limit": "512MB",
    "max_temp_directory_size": "0KB",
    "lock_configuration": True,
}
"""No files, network or extensions; one thread, 512 MB, nothing spilled to disk; locked."""

INTERRUPT_REPEAT_S = 0.2


class DuckdbSession(SqlSession):
    engine = "duckdb"

    def __init__(self, deadline: Deadline) -> None:
        import duckdb

        super().__init__(deadline)
        self._lock = threading.Lock()
        self._con: Any = duckdb.connect(":memory:", config=dict(DUCKDB_CONFIG))
        self._in_transaction = False

    @property
    def connection(self) -> Any:
        return self._con

    def interrupt(self) -> None:
        """Stop whatever runs now (watchdog thread)."""
        with self._lock:
            if self._con is not None:
                self._con.interrupt()

    def execute(self, sql: str) -> Rows | None:
        import duckdb

        self.deadline.check()
        try:
            cursor = self._con.execute(sql)
            rows: Rows | None = cursor.fetchall() if cursor.description else None
        except (duckdb.IntegrityError, duckdb.DataError) as err:
            self.deadline.check()
            raise Rejected(first_line_of(err)) from err
        except duckdb.Error as err:
            self.deadline.check()
            raise Broken(first_line_of(err)) from err
        return rows

    def savepoint(self, *, undo: bool = False) -> AbstractContextManager[None]:
        return self._transaction(undo)

    @contextmanager
    def _transaction(self, undo: bool) -> Iterator[None]:
        if self._in_transaction:  # DuckDB has no savepoints: the outer block undoes it
            yield
            return
        self.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._in_transaction = False
            self._quiet_rollback()
            raise
        self._in_transaction = False
        if undo:
            self._quiet_rollback()
        else:
            self.execute("COMMIT")

    def _quiet_rollback(self) -> None:
        import duckdb

        with contextlib.suppress(duckdb.Error):  # an interrupted or failed COMMIT ended it
            self._con.execute("ROLLBACK")

    def reset(self) -> None:
        import duckdb

        self.deadline.check()
        with self._lock:
            self._con.close()
            self._con = duckdb.connect(":memory:", config=dict(DUCKDB_CONFIG))
        self._in_transaction = False

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


@contextmanager
def duckdb_answer(seconds: float, watchdog: Watchdog) -> Iterator[DuckdbSession]:
    """A DuckDB session with a deadline `seconds` away that the watchdog enforces; closed on
    exit."""
    session = DuckdbSession(Deadline(seconds))
    deadline = session.deadline

    def alarm() -> float:
        deadline.expire()
        session.interrupt()
        return INTERRUPT_REPEAT_S

    handle = watchdog.schedule(deadline.at, alarm)
    try:
        yield session
    finally:
        watchdog.cancel(handle)
        session.close()

