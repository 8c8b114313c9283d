"""Run a command from an answer (e.g. import its DAG file) in a limited child process.

What a non-root process can enforce, and all of it applied:

- an environment built from an allow list (nothing of ours: no API key, token or HOME);
- a fresh temporary working folder, which is also HOME and TMPDIR, holding the answer's files,
  deleted afterwards;
- resource limits set before the command starts: CPU seconds, address space, file size,
  process count (RLIMIT_NPROC counts every process of the account, so the allowance is added
  to what the account runs already), no core dumps;
- a new session, whose whole process group is killed at the wall-clock deadline and again when
  the command ends (so children it left behind go too);
- under root, the command runs as `nobody` with no supplementary groups;
- stdout and stderr captured, only the last `output_bytes` of each kept.

Not enforced (say so, do not pretend): the network (no network namespace without root-level
setup), reading world-readable files of the machine, a process that leaves the process group
with setsid() survives the group kill (its CPU limit still applies), and disk use outside the
working folder where the account may write (under root: only world-writable places).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

UNPRIVILEGED_ACCOUNT = "nobody"
BASE_PATH = "/usr/bin:/bin"


@dataclass(frozen=True)
class Limits:
    """What one run may use."""

    wall_s: float = 60.0
    cpu_s: int = 60
    memory_bytes: int = 2 << 30
    file_bytes: int = 64 << 20
    processes: int = 64
    """Processes and threads beyond what the account already runs."""
    output_bytes: int = 64 << 10


@dataclass(frozen=True)
class ProcessResult:
    """How the run ended. `exit_code` is negative (-signal) when a signal ended it."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    killed_by_signal: int | None
    seconds: float
    files: dict[str, bytes] = field(default_factory=dict)
    """Files the command left in its working folder that the caller asked to keep."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def run_sandboxed(
    argv: Sequence[str],
    *,
    files: Mapping[str, str | bytes] | None = None,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    keep: Sequence[str] = (),
) -> ProcessResult:
    """Run `argv` with `files` (relative path -> content) in a fresh working folder.

    `env` adds variables to the allow-listed environment (`{folder}` in a value is replaced by
    the working folder). `keep` names files to read back from the folder before it is deleted.
    Raises OSError when the command cannot be started at all.
    """
    limits = limits or Limits()
    account = _account()
    folder = Path(tempfile.mkdtemp(prefix="plumber-run-")).resolve()
    try:
        for relative, content in (files or {}).items():
            path = _inside(folder, relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode("utf-8") if isinstance(content, str) else content
            path.write_bytes(data)
        if account is not None:
            for path in [folder, *folder.rglob("*")]:
                os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)
        child_env = _environment(folder, env or {})
        result = _run(argv, folder, child_env, limits, account)
        kept = {}
        for relative in keep:
            path = _inside(folder, relative)
            if path.is_file() and not path.is_symlink():
                kept[relative] = path.read_bytes()[: limits.output_bytes]
        return ProcessResult(**{**result.__dict__, "files": kept})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _inside(folder: Path, relative: str) -> Path:
    path = (folder / relative).resolve()
    if folder not in path.parents:
        raise ValueError(f"{relative!r} is not a relative path inside the working folder")
    return path


def _account() -> pwd.struct_passwd | None:
    """The account to run as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam(UNPRIVILEGED_ACCOUNT)


def _environment(folder: Path, extra: Mapping[str, str]) -> dict[str, str]:
    base = {
        "PATH": BASE_PATH,
        "HOME": str(folder),
        "TMPDIR": str(folder),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    return {**base, **{k: v.replace("{folder}", str(folder)) for k, v in extra.items()}}


def _processes_of(uid: int) -> int:
    """How many tasks (processes and threads) `uid` runs now: RLIMIT_NPROC counts them all."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def _limits_hook(limits: Limits, nproc: int) -> Callable[[], None]:
    def hook() -> None:  # runs in the child, after the change of user, before exec
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return hook


class _Tail:
    """Reads a pipe to its end, keeping only the last `limit` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        self.data = bytearray()
        self.dropped = 0
        self._pipe, self._limit = pipe, limit
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self._pipe.fileno(), 65536):
                self.data += chunk
                if len(self.data) > self._limit:
                    self.dropped += len(self.data) - self._limit
                    del self.data[: len(self.data) - self._limit]
        except (OSError, ValueError):
            return

    def text(self) -> str:
        self.thread.join(timeout=2)
        cut = f"[{self.dropped} bytes cut]\n" if self.dropped else ""
        return cut + self.data.decode("utf-8", errors="replace")


def _run(argv: Sequence[str], folder: Path, env: dict[str, str], limits: Limits,
         account: pwd.struct_passwd | None) -> ProcessResult:
    uid = os.getuid() if account is None else account.pw_uid
    nproc = limits.processes + _processes_of(uid)
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv), cwd=folder, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=_limits_hook(limits, nproc), close_fds=True,
        user=None if account is None else account.pw_uid,
        group=None if account is None else account.pw_gid,
        extra_groups=None if account is None else [],
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Tail(proc.stdout, limits.output_bytes), _Tail(proc.stderr, limits.output_bytes)
    timed_out = False
    try:
        proc.wait(timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(proc.pid)
        proc.wait()
    stdout, stderr = out.text(), err.text()
    for pipe in (proc.stdout, proc.stderr):
        pipe.close()
    code = proc.returncode
    return ProcessResult(code, stdout, stderr, timed_out, -code if code < 0 else None,
                         time.monotonic() - started)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def python_command(python: Path) -> tuple[list[str], dict[str, str]]:
    """How the sandbox account runs `python` (a virtualenv's interpreter): the command prefix
    and the variables to add to its environment.

    As root, `plumber setup airflow` makes the Airflow virtualenv from a Python the account can
    run, in a folder it can reach, so that interpreter runs as it is. Another virtualenv's
    interpreter (plumber's own, say, run from a checkout) is often a symlink into a folder the
    account cannot enter (a pyenv under /root): then the system's interpreter of the same
    version runs instead, with the virtualenv's site-packages on PYTHONPATH. OSError when
    there is no such interpreter.
    """
    account = _account()
    real = python.resolve()
    if account is None or _reachable_by_others(real):
        return [str(python)], {}
    version = subprocess.run(
        [str(python), "-c", "import sys, sysconfig; print(f'{sys.version_info[0]}."
         "{sys.version_info[1]}'); print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, timeout=60, check=True,
        env={"PATH": BASE_PATH}).stdout.split("\n")
    for candidate in (Path(f"/usr/bin/python{version[0]}"), Path(f"/usr/local/bin/python"
                                                                  f"{version[0]}")):
        if candidate.is_file() and _reachable_by_others(candidate.resolve()):
            return [str(candidate)], {"PYTHONPATH": version[1]}
    raise OSError(f"{python} is not reachable by the {UNPRIVILEGED_ACCOUNT} account and no "
                  f"system python{version[0]} is; install one or move the virtualenv")


def _reachable_by_others(path: Path) -> bool:
    """Whether an account that is neither owner nor in the group can execute `path`."""
    import stat

    if not os.stat(path).st_mode & stat.S_IXOTH:
        return False
    return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in path.parents)
