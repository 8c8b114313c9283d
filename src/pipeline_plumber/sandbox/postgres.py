"""PostgreSQL for answers: a role and a database of their own, cloned from a prepared template.

Per answer the superuser, in its own session and never with answer text, creates a login role
with no attribute beyond LOGIN (no SUPERUSER, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS;
member of no role) and a database it owns, cloned from a template. The role can create schemas,
tables, views, indexes, triggers, partitions and plpgsql functions there, and nothing else:

- pg_hba.conf lets a non-superuser log in only to the database named like itself
  (`sameuser`), and CONNECT on every other database is revoked from PUBLIC.
- Reading or writing server files, COPY TO/FROM PROGRAM, server-side lo_import/lo_export,
  ALTER SYSTEM, untrusted languages and signalling other roles' backends all need SUPERUSER or a
  predefined role it does not have: PostgreSQL refuses them with its own error.
- CREATE EXTENSION: since PostgreSQL 13 a database owner may create *trusted* extensions. An
  event trigger owned by the superuser refuses every CREATE/ALTER EXTENSION by anyone else. A
  small safe set is pre-installed in the template instead; an answer's `CREATE EXTENSION [IF NOT
  EXISTS] <one of those>` is not sent and is noted as already satisfied.
- The deadline: the watchdog cancels the role's backends when the answer's time is up, then
  terminates them after a grace period, from its own superuser connection. The timeouts set on
  the answer's connection only make the common case cheaper; the answer may turn them off.
- After each answer a health check (superuser) compares roles, databases, per-role and
  per-database settings and postgresql.auto.conf with how they were; a difference, or a server
  that no longer answers, replaces the cluster and fails that answer with `Damaged`.
- Databases and roles are made ahead by a background thread (a few spares) and dropped by
  another, so neither is on the answer's path; a spare is used once.
"""

from __future__ import annotations

import contextlib
import queue
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.conninfo import make_conninfo

from .errors import Broken, Damaged, Rejected, TimedOut, first_line_of
from .pg_standins import install_stand_ins
from .session import Deadline, Rows, SqlSession
from .watchdog import Watchdog

if TYPE_CHECKING:
    import psycopg

TEMPLATE = "plumber_answer_template"
ROLE_PREFIX = "answer_"
SAFE_EXTENSIONS = ("pgcrypto", "citext", "pg_trgm", "btree_gist", "uuid-ossp")
"""Trusted extensions pre-installed for answers (when the server has them; else, for
pgcrypto and uuid-ossp, the stand-ins of `pg_standins`)."""
CONNECTION_LIMIT = 4
GRACE_S = 1.0
"""After the deadline: cancel, wait this long, then terminate (and keep terminating)."""
CLONE_STRATEGY = "FILE_COPY"
"""CREATE DATABASE strategy (PostgreSQL 15+). bench/bench_sandbox.py measures both: equal on
an idle machine, FILE_COPY clearly faster when the disk is busy (WAL_LOG writes the whole
template to the WAL; FILE_COPY copies files and checkpoints, cheap with fsync off)."""
ADMIN_TIMEOUT_MS = 10_000
SCRAM_ITERATIONS = 1
SCRAM_ITERATIONS_SINCE = 160000
"""An answer role's password is 24 random bytes used once, never a guessable word: hashing it
4096 times (the default) protects nothing and costs every answer's login several
milliseconds on both sides. PostgreSQL 16+ lets the superuser's session choose."""
SPARES = 3
"""Roles and databases made ahead of need."""

SANDBOX_SETTINGS = {
    "max_connections": "100",
    "temp_file_limit": "'1GB'",
    "work_mem": "'32MB'",
}
"""postgresql.conf lines of the answers' cluster, beyond pgcluster's own."""

_GUARD = """
CREATE SCHEMA plumber_sandbox;
REVOKE ALL ON SCHEMA plumber_sandbox FROM PUBLIC;
CREATE FUNCTION plumber_sandbox.refuse_extension() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = session_user) THEN
    RAISE EXCEPTION 'permission denied: % is not allowed in the sandbox', tg_tag
      USING ERRCODE = 'insufficient_privilege';
  END IF;
END $$;
CREATE EVENT TRIGGER plumber_refuse_extension ON ddl_command_start
  WHEN TAG IN ('CREATE EXTENSION', 'ALTER EXTENSION', 'CREATE LANGUAGE', 'ALTER LANGUAGE')
  EXECUTE FUNCTION plumber_sandbox.refuse_extension();
"""

_FINGERPRINT = r"""
SELECT md5(concat_ws('|',
  (SELECT string_agg(concat_ws(',', rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb,
          rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolpassword, rolvaliduntil),
          ';' ORDER BY rolname) FROM pg_authid WHERE rolname !~ '^answer_'),
  (SELECT string_agg(concat_ws(',', r.rolname, m.rolname, a.admin_option), ';'
          ORDER BY r.rolname, m.rolname)
     FROM pg_auth_members a JOIN pg_authid r ON r.oid = a.roleid
     JOIN pg_authid m ON m.oid = a.member
    WHERE r.rolname !~ '^answer_' AND m.rolname !~ '^answer_'),
  (SELECT string_agg(concat_ws(',', datname, datallowconn, datistemplate, datconnlimit,
          datacl::text), ';' ORDER BY datname) FROM pg_database WHERE datname !~ '^answer_'),
  (SELECT string_agg(concat_ws(',', s.setdatabase, s.setrole, s.setconfig::text), ';'
          ORDER BY s.setdatabase, s.setrole)
     FROM pg_db_role_setting s
    WHERE NOT EXISTS (SELECT 1 FROM pg_authid r WHERE r.oid = s.setrole
                        AND r.rolname ~ '^answer_')
      AND NOT EXISTS (SELECT 1 FROM pg_database d WHERE d.oid = s.setdatabase
                        AND d.datname ~ '^answer_')),
  (SELECT string_agg(name || '=' || setting, ';' ORDER BY name) FROM pg_settings
    WHERE source NOT IN ('default', 'client', 'session', 'override')),
  pg_read_file('postgresql.auto.conf')))
"""

_FORGET_SETTINGS = """DO $$ BEGIN
  EXECUTE format('ALTER DATABASE %I RESET ALL', current_database());
  ALTER ROLE CURRENT_USER RESET ALL;
END $$"""
"""Run by an answer's own role before its database is kept for its next session."""

_CREATE_EXTENSION = re.compile(
    r"""\s*CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?("?)([\w-]+)\1
        (?:\s+(?:WITH\s+)?(?:SCHEMA\s+"?\w+"?|VERSION\s+'?[\w.]+'?|CASCADE))*\s*;?\s*""",
    re.IGNORECASE | re.VERBOSE,
)


def _connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    import psycopg

    return psycopg.connect(dsn, autocommit=True, **kwargs)


class PostgresSession(SqlSession):
    """An answer's connection to its own database, as its own role."""

    engine = "postgres"

    def __init__(self, deadline: Deadline, dsn: str, preinstalled: frozenset[str]) -> None:
        super().__init__(deadline)
        self._dsn = dsn
        self._preinstalled = preinstalled
        self._conn: psycopg.Connection[Any] | None = None
        self._conn = self._open()

    def _open(self) -> psycopg.Connection[Any]:
        import psycopg

        self.deadline.check()
        ms = max(1, int(self.deadline.remaining() * 1000))
        options = (f"-c statement_timeout={ms} -c lock_timeout={ms} "
                   f"-c idle_in_transaction_session_timeout={ms}")
        try:
            return _connect(self._dsn, options=options, connect_timeout=10)
        except psycopg.Error as err:
            raise self._classify(err) from err

    @property
    def connection(self) -> psycopg.Connection[Any]:
        assert self._conn is not None, "the session is closed"
        return self._conn

    @property
    def dsn(self) -> str:
        return self._dsn

    def execute(self, sql: str) -> Rows | None:
        import psycopg

        self.deadline.check()
        satisfied = _CREATE_EXTENSION.fullmatch(sql)
        if satisfied and satisfied.group(2).lower() in self._preinstalled:
            self.notes.append(f"extension {satisfied.group(2)} is provided by the sandbox")
            return None
        try:
            cursor = self.connection.execute(sql.encode())  # bytes: no parameter placeholders
            return cursor.fetchall() if cursor.description else None
        except psycopg.Error as err:
            raise self._classify(err) from err

    def _classify(self, err: Exception) -> Exception:
        import psycopg

        if self.deadline.expired or isinstance(err, psycopg.errors.QueryCanceled):
            return TimedOut(self.deadline.seconds)
        if isinstance(err, psycopg.IntegrityError | psycopg.DataError):
            return Rejected(first_line_of(err))
        return Broken(first_line_of(err))

    def savepoint(self, *, undo: bool = False) -> AbstractContextManager[None]:
        return self._savepoint(undo)

    @contextmanager
    def _savepoint(self, undo: bool) -> Iterator[None]:
        import psycopg

        self.deadline.check()
        try:
            with self.connection.transaction(force_rollback=undo):
                yield
        except psycopg.Error as err:
            raise self._classify(err) from err

    def reset(self) -> None:
        """Empty the answer's database: drop what the role owns (it owns nothing elsewhere)."""
        self.execute("DROP OWNED BY CURRENT_USER CASCADE")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresSandbox:
    """The cluster answers run on, started on first use, and what each answer gets from it.

    Thread-safe: worker threads may hold several answers open at once.
    """

    def __init__(self, watchdog: Watchdog,
                 start_cluster: Callable[[], AbstractContextManager[str]] | None = None) -> None:
        self._watchdog = watchdog
        self._start_cluster = start_cluster or _default_cluster
        self._lock = threading.RLock()
        self._stack: contextlib.ExitStack | None = None
        self._admin_dsn: str | None = None
        self._admins: list[psycopg.Connection[Any]] = []
        self._signaller: psycopg.Connection[Any] | None = None
        self._signal_lock = threading.Lock()
        self._fingerprint = ""
        self._preinstalled: frozenset[str] = frozenset()
        self._cleaner: _Cleaner | None = None
        self._spares: _Spares | None = None
        self.restarts = 0

    # --- the cluster ----------------------------------------------------------------------

    @property
    def admin_dsn(self) -> str:
        """The superuser's DSN (starting the cluster if needed). Never given to an answer."""
        with self._lock:
            if self._admin_dsn is None:
                self._start()
            assert self._admin_dsn is not None
            return self._admin_dsn

    def _start(self) -> None:
        stack = contextlib.ExitStack()
        try:
            dsn = stack.enter_context(self._start_cluster())
            self._preinstalled = _prepare(dsn)
            with _connect(dsn) as conn:
                self._fingerprint = _fingerprint(conn)
        except BaseException:
            stack.close()
            raise
        self._stack, self._admin_dsn = stack, dsn
        self._cleaner = _Cleaner(dsn)
        self._spares = _Spares(lambda admin: self._create(admin, dsn), dsn)

    def close(self) -> None:
        with self._lock:
            if self._spares is not None:
                self._spares.stop()
                self._spares = None
            if self._cleaner is not None:
                self._cleaner.stop()
                self._cleaner = None
            for conn in [*self._admins, self._signaller]:
                if conn is not None:
                    conn.close()
            self._admins, self._signaller = [], None
            stack, self._stack, self._admin_dsn = self._stack, None, None
        if stack is not None:
            stack.close()

    def restart(self) -> None:
        """Replace the cluster with a fresh one (after the health check found damage)."""
        with self._lock:
            self.close()
            self._start()
            self.restarts += 1

    @contextmanager
    def _admin(self) -> Iterator[psycopg.Connection[Any]]:
        dsn = self.admin_dsn
        with self._lock:
            conn = self._admins.pop() if self._admins else None
        if conn is None or conn.closed:
            conn = _connect(dsn, options=f"-c statement_timeout={ADMIN_TIMEOUT_MS}")
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if self._admin_dsn == dsn:
                self._admins.append(conn)
            else:
                conn.close()

    # --- one answer -----------------------------------------------------------------------

    @contextmanager
    def answer(self, seconds: float, scope: AnswerScope | None = None
               ) -> Iterator[PostgresSession]:
        """A fresh role and database for one answer, with a deadline `seconds` away from when
        they are ready; dropped afterwards.

        Within an `AnswerScope` (one answer's checks) a database the same answer used before,
        and left without error or timeout, is given again instead of a new one: its settings
        reset when it was left, emptied (`DROP OWNED BY CURRENT_USER CASCADE`) when taken, both
        by its own role. It never passes to another answer, and the scope drops them all when
        the answer is done.
        """
        self.admin_dsn  # noqa: B018  (starts the cluster, and the spares, if needed)
        with self._lock:
            spares, cleaner, generation = self._spares, self._cleaner, self.restarts
        made = scope.reuse(generation) if scope is not None else None
        reused = made is not None
        if made is None:
            made = spares.take() if spares is not None else None
        if made is None:
            with self._admin() as admin:
                made = self._create(admin, self.admin_dsn)
        name, dsn = made
        deadline = Deadline(seconds)
        stage = [0]

        def alarm() -> float:
            deadline.expire()
            self._signal(name, terminate=stage[0] > 0)
            stage[0] += 1
            return GRACE_S

        handle = self._watchdog.schedule(deadline.at, alarm)
        session: PostgresSession | None = None
        clean = False
        try:
            session = PostgresSession(deadline, dsn, self._preinstalled)
            if reused:
                session.reset()
            yield session
            if scope is not None and not deadline.expired:
                session.execute(_FORGET_SETTINGS)  # the next session logs in without them
                clean = True
        finally:
            self._watchdog.cancel(handle)
            if session is not None:
                session.close()
            if scope is not None and clean:
                scope.keep(name, dsn, generation)
            elif cleaner is not None:
                cleaner.drop(name)
            self._check_health()

    def drop_scope(self, scope: AnswerScope) -> None:
        """Drop every database an answer's scope kept (on the background cleaner)."""
        with self._lock:
            cleaner = self._cleaner
        for name in scope.release():
            if cleaner is not None:
                cleaner.drop(name)

    def _create(self, admin: psycopg.Connection[Any], admin_dsn: str) -> tuple[str, str]:
        """A new role and its database: (name, the role's DSN)."""
        name = ROLE_PREFIX + secrets.token_hex(8)
        password = secrets.token_urlsafe(24)
        role = sql.Identifier(name)
        if admin.info.server_version >= SCRAM_ITERATIONS_SINCE:
            admin.execute(f"SET scram_iterations = {SCRAM_ITERATIONS}")
        admin.execute(sql.SQL(
            "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            "NOBYPASSRLS CONNECTION LIMIT {}").format(
                role, sql.Literal(password), sql.Literal(CONNECTION_LIMIT)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {} STRATEGY {}").format(
            role, role, sql.Identifier(TEMPLATE), sql.SQL(CLONE_STRATEGY)))
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(role))
        return name, make_conninfo(admin_dsn, user=name, password=password, dbname=name)

    def _signal(self, role: str, *, terminate: bool) -> None:
        """Cancel (or terminate) every backend of `role`, from the watchdog's own connection."""
        import psycopg

        function = "pg_terminate_backend" if terminate else "pg_cancel_backend"
        query = sql.SQL("SELECT {}(pid) FROM pg_stat_activity WHERE usename = {}").format(
            sql.Identifier(function), sql.Literal(role))
        with self._signal_lock:
            try:
                if self._signaller is None or self._signaller.closed:
                    self._signaller = _connect(self.admin_dsn,
                                               options="-c statement_timeout=2000")
                self._signaller.execute(query)
            except psycopg.Error:
                if self._signaller is not None:
                    self._signaller.close()
                self._signaller = None

    def _check_health(self) -> None:
        """Raise Damaged (after replacing the cluster) if the server is not as it was."""
        import psycopg

        problem = None
        try:
            with self._admin() as admin:
                if _fingerprint(admin) != self._fingerprint:
                    problem = ("roles, databases, or server settings changed "
                               "(postgresql.auto.conf, ALTER ROLE/DATABASE SET)")
        except psycopg.Error as err:
            problem = f"the server no longer answers the superuser: {first_line_of(err)}"
        if problem is not None:
            self.restart()
            raise Damaged(f"the answer damaged the sandbox server: {problem}")


class AnswerScope:
    """The databases one answer used and left in order, kept for its next session (one
    thread's, one answer's: never shared)."""

    def __init__(self) -> None:
        self._free: list[tuple[str, str, int]] = []

    def reuse(self, generation: int) -> tuple[str, str] | None:
        """A kept (role, DSN) of this cluster generation, or None."""
        while self._free:
            name, dsn, made_in = self._free.pop()
            if made_in == generation:
                return name, dsn
        return None

    def keep(self, name: str, dsn: str, generation: int) -> None:
        self._free.append((name, dsn, generation))

    def release(self) -> list[str]:
        names = [name for name, _, _ in self._free]
        self._free = []
        return names


def _default_cluster() -> AbstractContextManager[str]:
    from ..pgcluster import throwaway_cluster

    return throwaway_cluster(settings=SANDBOX_SETTINGS)


def _fingerprint(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(_FINGERPRINT).fetchone()
    return str(row[0]) if row else ""


def _prepare(dsn: str) -> frozenset[str]:
    """Build the template answers are cloned from; close every other door. Returns the
    extensions pre-installed in it."""
    with _connect(dsn) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
            sql.Identifier(TEMPLATE)))
        available = {str(row[0]) for row in admin.execute(
            "SELECT name FROM pg_available_extensions").fetchall()}
        admin.execute("REVOKE ALL ON DATABASE postgres, template1 FROM PUBLIC")
    installed = [name for name in SAFE_EXTENSIONS if name in available]
    with _connect(make_conninfo(dsn, dbname=TEMPLATE)) as template:
        for name in installed:
            template.execute(sql.SQL("CREATE EXTENSION {} SCHEMA public").format(
                sql.Identifier(name)))
        stood_in = install_stand_ins(template, set(SAFE_EXTENSIONS) - set(installed))
        template.execute(_GUARD.encode())
    with _connect(dsn) as admin:
        admin.execute(sql.SQL(
            "ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(TEMPLATE)))
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
            sql.Identifier(TEMPLATE)))
    return frozenset(installed) | stood_in


class _Cleaner:
    """Drops answers' databases and roles on a background thread, off the answer's path."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="plumber-pg-cleaner",
                                         daemon=True)
        self._thread.start()

    def drop(self, name: str) -> None:
        self._queue.put(name)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        import psycopg

        conn: psycopg.Connection[Any] | None = None
        while (name := self._queue.get()) is not None:
            try:
                if conn is None or conn.closed:
                    conn = _connect(self._dsn, options=f"-c statement_timeout={ADMIN_TIMEOUT_MS}")
                ident = sql.Identifier(name)
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None  # the cluster is being replaced or stopped; nothing left to drop
        if conn is not None:
            conn.close()


class _Spares:
    """Keeps a few answers' roles and databases made ahead, on a background thread."""

    def __init__(self, create: Callable[[psycopg.Connection[Any]], tuple[str, str]],
                 dsn: str) -> None:
        self._create, self._dsn = create, dsn
        self._ready: list[tuple[str, str]] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="plumber-pg-spares",
                                         daemon=True)
        self._thread.start()

    def take(self) -> tuple[str, str] | None:
        with self._cond:
            made = self._ready.pop(0) if self._ready else None
            self._cond.notify()
            return made

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        import psycopg

        conn: psycopg.Connection[Any] | None = None
        while True:
            with self._cond:
                while not self._stopped and len(self._ready) >= SPARES:
                    self._cond.wait()
                if self._stopped:
                    break
            try:
                if conn is None or conn.closed:
                    conn = _connect(self._dsn, options=f"-c statement_timeout={ADMIN_TIMEOUT_MS}")
                made = self._create(conn)
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
                with self._cond:
                    self._cond.wait(1.0)  # the cluster is stopping or being replaced
                continue
            with self._cond:
                self._ready.append(made)
        if conn is not None:
            conn.close()
