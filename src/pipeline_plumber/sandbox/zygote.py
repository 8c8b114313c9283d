"""A warm sandboxed process that forks one limited child per run: Airflow imported once.

Importing Airflow takes seconds; importing an answer's DAG file once Airflow is loaded takes a
fraction of one. `Zygote` starts `zygote_server.py` (see there) the way `run_sandboxed` starts
a command: the `nobody` account under root, an allow-listed environment, a fresh folder,
resource limits, a new session, killed if we die. It imports what is slow once (`warm()` of
the named module), then serves `run(argv, files=..., limits=...)`: each run is a forked copy
of the warm process that, before it runs anything of the answer, starts its own session,
closes every descriptor it inherited, moves into its own fresh folder (HOME and TMPDIR) and
sets its own limits; the process group is killed at the wall-clock deadline and when it ends.
The result is a `ProcessResult`, as `run_sandboxed` gives. The zygote's folder names the
process that made it, and starting a zygote removes the folders of runs killed before they
could (see `stale_folders`).

What a run cannot do to the zygote, and so to later answers:
- change its memory: a fork is a copy, and the zygote is non-dumpable (no process of its
  account may ptrace it or read /proc/<pid>/mem);
- change its files: once warm, its folder belongs to root and is read-only (under root);
- speak for it: the child closes the zygote's pipes before it runs anything, and the report
  is read from the run's own folder (regular files only, no links);
- kill it: it may (same account); the zygote is then started again and runs the answers that
  were waiting once more, so only the answer that killed it fails.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import json
import os
import pwd
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from ..stale_folders import mark_owner, remove_stale_folders
from .process import (
    Limits,
    ProcessResult,
    _account,
    _environment,
    _inside,
    _kill_group,
    _processes_of,
)

SERVER = Path(__file__).with_name("zygote_server.py")
FOLDER_PREFIX = "plumber-zygote-"
START_TIMEOUT_S = 300.0
REPLY_GRACE_S = 5.0
"""How long past a run's wall-clock deadline the zygote may take to report it."""
ZYGOTE_LIMITS = Limits(wall_s=0, cpu_s=24 * 3600, memory_bytes=4 << 30, file_bytes=64 << 20,
                       processes=256)
"""The warm process's own limits (wall_s unused: it lives as long as the run)."""
PR_SET_PDEATHSIG = 1


class ZygoteFailed(OSError):
    """The warm process could not start; the message is the last line it wrote."""


class Zygote:
    """One warm process; `run` may be called from several threads at once."""

    def __init__(self, command: Sequence[str], warm: str, *,
                 files: Mapping[str, str | bytes] | None = None,
                 env: Mapping[str, str] | None = None,
                 limits: Limits = ZYGOTE_LIMITS) -> None:
        self._command, self._warm = list(command), warm
        self._files, self._env, self._limits = dict(files or {}), dict(env or {}), limits
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._folder: Path | None = None
        self._waiting: dict[int, list[Any]] = {}  # id -> [event, reply or None]
        self._ids = 0
        self._ended: set[int] = set()  # pids whose replies ended: dead, maybe not reaped yet
        self.starts = 0

    # --- the warm process ---------------------------------------------------------------------

    def _alive(self) -> subprocess.Popen[bytes]:
        with self._lock:
            if (self._proc is None or self._proc.pid in self._ended
                    or self._proc.poll() is not None):
                self._stop_locked()
                self._start_locked()
            assert self._proc is not None
            return self._proc

    def _start_locked(self) -> None:
        account = _account()
        remove_stale_folders(Path(tempfile.gettempdir()), FOLDER_PREFIX)  # of killed runs
        folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX)).resolve()
        mark_owner(folder)
        _fill(folder, {**self._files, "zygote_server.py": SERVER.read_bytes()}, account)
        log = (folder / "zygote.log").open("wb")
        uid = os.getuid() if account is None else account.pw_uid
        try:
            proc = subprocess.Popen(
                [*self._command, "zygote_server.py", self._warm], cwd=folder,
                env=_environment(folder, self._env), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, start_new_session=True, close_fds=True,
                preexec_fn=_zygote_hook(self._limits, self._limits.processes
                                        + _processes_of(uid)),
                user=None if account is None else account.pw_uid,
                group=None if account is None else account.pw_gid,
                extra_groups=None if account is None else [])
        finally:
            log.close()
        self._proc, self._folder = proc, folder
        assert proc.stdout is not None
        ready = _read_line(proc.stdout, START_TIMEOUT_S)
        if not ready or not json.loads(ready).get("ready"):
            tail = _tail_of(folder / "zygote.log", 4096).strip().splitlines() or ["no output"]
            self._stop_locked()
            raise ZygoteFailed(tail[-1][:300])
        if account is not None:  # warm now: nothing of its account may change its files
            for path in [folder, *folder.rglob("*")]:
                os.chown(path, 0, 0, follow_symlinks=False)
                if not path.is_symlink():
                    os.chmod(path, 0o755 if path.is_dir() else 0o644)
        self.starts += 1
        threading.Thread(target=self._read_replies, args=(proc,), name="plumber-zygote",
                         daemon=True).start()

    def _read_replies(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            try:
                reply = json.loads(line)
                waiter = self._waiting.get(int(reply["id"]))
            except (ValueError, KeyError, TypeError):
                continue
            if waiter is not None:
                waiter[1] = reply
                waiter[0].set()
        with self._lock:  # the zygote is gone: wake everyone
            self._ended.add(proc.pid)
            waiters = list(self._waiting.values())
        for waiter in waiters:
            waiter[0].set()

    def _stop_locked(self) -> None:
        proc, folder, self._proc, self._folder = self._proc, self._folder, None, None
        if proc is not None:
            self._ended.discard(proc.pid)
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
            _kill_group(proc.pid)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            self._stop_locked()

    # --- one run ------------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, files: Mapping[str, str | bytes] | None = None,
            limits: Limits | None = None, keep: Sequence[str] = ()) -> ProcessResult:
        """Call `main(argv)` of the warm module in a forked, limited child, in a fresh folder
        holding `files`. Raises ZygoteFailed when the warm process cannot start."""
        limits = limits or Limits()
        for attempt in range(2):
            result = self._run_once(argv, files or {}, limits, keep)
            if result is not None:
                return result
            if attempt == 0:
                continue  # the zygote died under this run (maybe killed by another): again
        return ProcessResult(-signal.SIGKILL, "", "the sandbox's warm process died during the "
                             "run", False, signal.SIGKILL, 0.0)

    def _run_once(self, argv: Sequence[str], files: Mapping[str, str | bytes], limits: Limits,
                  keep: Sequence[str]) -> ProcessResult | None:
        proc = self._alive()
        account = _account()
        uid = os.getuid() if account is None else account.pw_uid
        folder = Path(tempfile.mkdtemp(prefix="plumber-run-")).resolve()
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        started = time.monotonic()
        rid = 0
        try:
            _fill(folder, files, account)
            with self._lock:
                self._ids += 1
                rid = self._ids
                waiter: list[Any] = [threading.Event(), None]
                self._waiting[rid] = waiter
            request = {"id": rid, "folder": str(folder), "module": self._warm,
                       "argv": list(argv), "wall_s": limits.wall_s, "cpu_s": limits.cpu_s,
                       "memory_bytes": limits.memory_bytes, "file_bytes": limits.file_bytes,
                       "nproc": limits.processes + _processes_of(uid)}
            try:
                assert proc.stdin is not None
                with self._lock:
                    if proc.pid in self._ended:  # its replies ended before this request
                        return None
                    proc.stdin.write(json.dumps(request).encode() + b"\n")
                    proc.stdin.flush()
            except (OSError, ValueError):
                return None
            answered = waiter[0].wait(limits.wall_s + REPLY_GRACE_S)
            reply = waiter[1]
            if not answered:  # the zygote does not keep its own deadline: replace it
                with self._lock:
                    if self._proc is proc:
                        self._stop_locked()
                reply = {"exit": -signal.SIGKILL, "timed_out": True}
            elif reply is None:
                return None
            stdout = _tail_in(folder_fd, "stdout", limits.output_bytes, uid)
            stderr = _tail_in(folder_fd, "stderr", limits.output_bytes, uid)
            kept = {}
            for relative in keep:
                data = _read_in(folder_fd, relative, limits.output_bytes, uid)
                if data is not None:
                    kept[relative] = data
            code = int(reply.get("exit", -signal.SIGKILL))
            return ProcessResult(code, stdout, stderr, bool(reply.get("timed_out")),
                                 -code if code < 0 else None, time.monotonic() - started, kept)
        finally:
            with self._lock:
                self._waiting.pop(rid, None)
            os.close(folder_fd)
            shutil.rmtree(folder, ignore_errors=True)


def _fill(folder: Path, files: Mapping[str, str | bytes],
          account: pwd.struct_passwd | None) -> None:
    """Write `files` (relative path -> content) into `folder`, all given to `account`."""
    for relative, content in files.items():
        path = _inside(folder, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    if account is not None:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)


def _zygote_hook(limits: Limits, nproc: int) -> Callable[[], None]:
    import resource

    def hook() -> None:  # in the child, after the change of user, before exec
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with contextlib.suppress(OSError, AttributeError):  # die with us
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return hook


def _read_line(pipe: IO[bytes], timeout: float) -> bytes:
    """One line from `pipe` within `timeout` seconds (b"" at EOF or when the time is up)."""
    ready, _, _ = select.select([pipe], [], [], timeout)
    return pipe.readline() if ready else b""


def _open_regular(folder_fd: int, name: str, uid: int) -> int | None:
    """A descriptor on `name` in the folder when it is a regular file of the run's own account
    with one link (never a symlink, FIFO or hard link to someone else's file); else None."""
    if "/" in name or name in ("", ".", ".."):
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid != uid:
        os.close(fd)
        return None
    return fd


def _tail_in(folder_fd: int, name: str, limit: int, uid: int) -> str:
    fd = _open_regular(folder_fd, name, uid)
    if fd is None:
        return ""
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - limit))
        data = f.read(limit)
    cut = f"[{size - limit} bytes cut]\n" if size > limit else ""
    return cut + data.decode("utf-8", errors="replace")


def _read_in(folder_fd: int, name: str, limit: int, uid: int) -> bytes | None:
    fd = _open_regular(folder_fd, name, uid)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(limit)


def _tail_of(path: Path, limit: int) -> str:
    try:
        data = path.read_bytes()[-limit:]
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


_SHARED: dict[str, Zygote] = {}
_SHARED_LOCK = threading.Lock()


def shared_zygote(command: Sequence[str], warm: str, *, files: Mapping[str, str | bytes],
                  env: Mapping[str, str]) -> Zygote:
    """The process-wide zygote for this command, module, files and environment (started on its
    first run, stopped at exit)."""
    digest = hashlib.sha256(json.dumps(
        [list(command), warm, sorted(env.items()),
         sorted((k, hashlib.sha256(v if isinstance(v, bytes) else v.encode()).hexdigest())
                for k, v in files.items())]).encode()).hexdigest()
    with _SHARED_LOCK:
        if digest not in _SHARED:
            _SHARED[digest] = Zygote(command, warm, files=files, env=env)
        return _SHARED[digest]


@atexit.register
def _stop_shared() -> None:
    with _SHARED_LOCK:
        zygotes = list(_SHARED.values())
        _SHARED.clear()
    for zygote in zygotes:
        zygote.close()
