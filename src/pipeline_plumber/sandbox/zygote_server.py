"""The warm process behind `sandbox.zygote`: import once, then fork one limited child per run.

A standalone script (standard library only) for whatever interpreter the zygote uses, e.g.
the Airflow virtualenv's; `sandbox.zygote.Zygote` starts it in a sandboxed child process::

    python zygote_server.py WARM_MODULE

It imports WARM_MODULE from its working folder, calls its `warm()` if it has one (e.g. import
Airflow), makes itself non-dumpable (no process of its account can ptrace it or read its
memory), prints `ready`, then reads one JSON request per line on stdin::

    {"id": 1, "folder": "/tmp/plumber-run-x", "module": "dag_import", "argv": [...],
     "wall_s": 120, "cpu_s": 120, "memory_bytes": ..., "file_bytes": ..., "nproc": ...}

and for each forks a child that, before it runs anything of the request: starts a new
session, points fd 0 at /dev/null and fds 1 and 2 at `stdout` and `stderr` in the request's
folder, closes every other descriptor (the zygote's pipes included, so a child cannot speak
for it), moves into the folder (also HOME and TMPDIR) and sets its resource limits. It then
calls `main(argv)` of the request's module and exits with its status. The zygote kills the
child's process group at the wall-clock deadline and again when the child ends, and answers
`{"id": 1, "exit": status, "timed_out": false, "seconds": 0.3}`. EOF on stdin ends it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import resource
import select
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

PR_SET_DUMPABLE = 4
POLL_S = 0.02
REQUEST_LIMIT = 64 << 10


def _non_dumpable() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _child(request: dict[str, Any], module: Any) -> None:
    """In the forked child: contain, then run. Never returns."""
    code = 1
    try:
        os.setsid()
        folder = str(request["folder"])
        null = os.open(os.devnull, os.O_RDONLY)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        out = os.open(os.path.join(folder, "stdout"), flags, 0o600)
        err = os.open(os.path.join(folder, "stderr"), flags, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        os.chdir(folder)
        os.environ["HOME"] = os.environ["TMPDIR"] = folder
        tempfile.tempdir = None
        cpu, memory = int(request["cpu_s"]), int(request["memory_bytes"])
        files, nproc = int(request["file_bytes"]), int(request["nproc"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (files, files))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        sys.argv = [f"{request['module']}.py", *[str(a) for a in request["argv"]]]
        code = int(module.main(sys.argv[1:]) or 0)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


_REPLIES: Any = None
"""The zygote's own stdout, kept apart: fd 1 goes to stderr, so nothing warm() or a library
prints can be taken for a reply."""


def _answer(response: dict[str, Any]) -> None:
    _REPLIES.write(json.dumps(response) + "\n")
    _REPLIES.flush()


def serve(module: Any) -> None:
    running: dict[int, tuple[int, float, float, bool]] = {}  # pid -> (id, started, at, late)
    pending = b""
    stdin_open = True
    while stdin_open or running:
        readable, _, _ = select.select([0] if stdin_open else [], [], [], POLL_S)
        if readable:
            chunk = os.read(0, 65536)
            if not chunk:
                stdin_open = False
                for pid in running:
                    _kill_group(pid)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request, module)
                now = time.monotonic()
                running[pid] = (int(request["id"]), now, now + float(request["wall_s"]), False)
            if len(pending) > REQUEST_LIMIT:
                raise SystemExit("a request line is too long")
        now = time.monotonic()
        for pid, (rid, started, at, late) in list(running.items()):
            if not late and now >= at:
                _kill_group(pid)
                running[pid] = (rid, started, at, True)
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid not in running:
                continue
            rid, started, _, late = running.pop(pid)
            _kill_group(pid)  # what it left behind in its group goes too
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            _answer({"id": rid, "exit": code, "timed_out": late,
                     "seconds": time.monotonic() - started})


def main(argv: list[str]) -> int:
    global _REPLIES
    _non_dumpable()
    sys.stdout.flush()
    _REPLIES = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(argv[0])
    warm = getattr(module, "warm", None)
    if callable(warm):
        warm()
    _answer({"ready": True, "pid": os.getpid()})
    serve(module)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
