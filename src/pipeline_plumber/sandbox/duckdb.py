"""DuckDB for an answer: in-memory, nothing outside the process reachable, bounded, locked.

The configuration is locked once applied, so the answer cannot raise its own limits or turn
external access back on. The deadline is enforced by `con.interrupt()` from the watchdog,
repeated until the session ends (an interrupt that lands between two statements is lost, and
the next statement then fails the deadline check before it starts).

Opening a database costs about 14 ms of CPU (DuckDB builds its catalog of built-in functions
each time), more than most statements an answer runs. So, like PostgreSQL's, a database one
answer's session left in time is emptied and given to that answer's next session; it never
passes to another answer.
"""

from __future__ import annotations

import contextlib
import re
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
SPARES = 4
"""Databases opened ahead of need."""

_LEFT_BEHIND = """
SELECT 'DETACH DATABASE', database_name, NULL, NULL FROM duckdb_databases()
 WHERE database_name NOT IN ('memory', 'system', 'temp')
UNION ALL SELECT 'DROP SCHEMA', database_name, schema_name, NULL FROM duckdb_schemas()
 WHERE NOT internal AND database_name IN ('memory', 'temp')
UNION ALL SELECT 'DROP VIEW', database_name, schema_name, view_name FROM duckdb_views()
 WHERE NOT internal
UNION ALL SELECT 'DROP TABLE', database_name, schema_name, table_name FROM duckdb_tables()
UNION ALL SELECT 'DROP SEQUENCE', database_name, schema_name, sequence_name
  FROM duckdb_sequences()
UNION ALL SELECT 'DROP TYPE', database_name, schema_name, type_name FROM duckdb_types()
 WHERE NOT internal
UNION ALL SELECT 'RESET VARIABLE', name, NULL, NULL FROM duckdb_variables()
"""
"""What an answer can leave in its database, as (statement, names...) that undo it. Macros are
not listed (duckdb_functions() lists every built-in too, and takes as long as opening a new
database): a session that defines one is not kept."""
_CASCADES = ("DROP SCHEMA", "DROP TABLE", "DROP SEQUENCE")
_DEFINES_MACRO = re.compile(r"\b(?:MACRO|FUNCTION)\b", re.IGNORECASE)
EMPTYING_ROUNDS = 4
"""Rounds of drops before a database counts as not emptied (a table a foreign key still
references goes in the next round)."""
EMPTYING_MOST = 200
"""Objects left behind beyond which a database is closed instead: emptying runs outside any
deadline, so an answer that made thousands of tables must not make it long."""


def _open() -> Any:
    import duckdb

    return duckdb.connect(":memory:", config=dict(DUCKDB_CONFIG))


class DuckdbSpares:
    """New, locked in-memory databases opened ahead of need, and used ones closed, on a
    background thread: starting and stopping a DuckDB database costs tens of milliseconds,
    which an answer then never waits for. A spare is a database nobody has used; it is given
    out once. Without a running thread (or when none is ready) a database is opened on the spot.
    """

    def __init__(self) -> None:
        self._ready: list[Any] = []
        self._used: list[Any] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="plumber-duckdb-spares",
                                        daemon=True)
        self._thread.start()

    def take(self) -> Any:
        with self._cond:
            con = self._ready.pop(0) if self._ready else None
            self._cond.notify()
        return con if con is not None else _open()

    def give_back(self, con: Any) -> None:
        """Close `con` (an answer's database) off the answer's path."""
        with self._cond:
            if self._stopped:
                con.close()
                return
            self._used.append(con)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=10)
        with self._cond:
            for con in [*self._ready, *self._used]:
                con.close()
            self._ready, self._used = [], []

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and not self._used and len(self._ready) >= SPARES:
                    self._cond.wait()
                if self._stopped:
                    return
                used = self._used.pop() if self._used else None
            if used is not None:
                used.close()
                continue
            con = _open()
            with self._cond:
                self._ready.append(con)


class DuckdbSession(SqlSession):
    engine = "duckdb"

    def __init__(self, deadline: Deadline, spares: DuckdbSpares | None = None,
                 con: Any = None) -> None:
        super().__init__(deadline)
        self._lock = threading.Lock()
        self._spares = spares
        if con is None:
            con = spares.take() if spares is not None else _open()
        self._con: Any = con
        self._in_transaction = False
        self.reusable = True
        """False once anything ran that emptying cannot undo (a macro)."""

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
        if self.reusable and _DEFINES_MACRO.search(sql):
            self.reusable = False
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
        self.deadline.check()
        with self._lock:
            self._release(self._con)
            self._con = self._spares.take() if self._spares is not None else _open()
        self._in_transaction = False

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._release(self._con)
                self._con = None

    def detach(self) -> Any:
        """End the session but keep its database open, for the same answer's next session."""
        with self._lock:
            con, self._con = self._con, None
        return con

    def _release(self, con: Any) -> None:
        release(con, self._spares)


def release(con: Any, spares: DuckdbSpares | None) -> None:
    """Close a database an answer used (off the answer's path when there are spares)."""
    if spares is not None:
        con.interrupt()  # nothing of the answer may still run while it waits to close
        spares.give_back(con)
    else:
        con.close()


def emptied(con: Any) -> bool:
    """Drop everything an answer's session left in `con` and leave no transaction open; True
    when nothing is left (it can serve the same answer's next session). A round in which every
    drop succeeded left nothing: only a failed one (a table a foreign key still references)
    needs another look."""
    import duckdb

    try:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        con.execute("USE memory.main")
        for _ in range(EMPTYING_ROUNDS):
            failed = False
            left = con.execute(_LEFT_BEHIND).fetchmany(EMPTYING_MOST + 1)
            if len(left) > EMPTYING_MOST:
                return False
            for statement in left:
                try:
                    con.execute(_undo(*statement))
                except duckdb.Error:
                    failed = True
            if not failed:
                return True
        return False
    except duckdb.Error:
        return False


def _undo(verb: str, *names: str | None) -> str:
    """The statement that undoes one row of `_LEFT_BEHIND`; IF EXISTS, as a schema's CASCADE
    may have dropped it already."""
    path = ".".join('"' + name.replace('"', '""') + '"' for name in names if name is not None)
    if verb.startswith("DROP"):
        verb += " IF EXISTS"
    return f"{verb} {path}{' CASCADE' if verb.startswith(_CASCADES) else ''}"


@contextmanager
def duckdb_answer(seconds: float, watchdog: Watchdog, spares: DuckdbSpares | None = None,
                  kept: list[Any] | None = None) -> Iterator[DuckdbSession]:
    """A DuckDB session with a deadline `seconds` away that the watchdog enforces; closed on
    exit. With `kept` (the databases of one answer's earlier sessions), one of them is emptied
    and used instead of a new one, and this session's database is added to it when the
    session ends in time, without an error and with nothing emptying cannot undo."""
    con = None
    while kept and con is None:
        con = kept.pop()
        if not emptied(con):
            release(con, spares)
            con = None
    session = DuckdbSession(Deadline(seconds), spares, con)
    deadline = session.deadline
    keep = False

    def alarm() -> float:
        deadline.expire()
        session.interrupt()
        return INTERRUPT_REPEAT_S

    handle = watchdog.schedule(deadline.at, alarm)
    try:
        yield session
        keep = session.reusable
    finally:
        watchdog.cancel(handle)
        if kept is not None and keep and not deadline.expired:
            kept.append(session.detach())
        else:
            session.close()

