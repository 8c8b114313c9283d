"""Temporary folders that name the process that made them, so a later run can remove the ones
whose maker was killed before it could clean up (SIGKILL runs no `finally`).

A folder is marked with a file holding its maker's pid and start time; it is stale only when
no process with that pid and start time runs (a reused pid has another start time). Folders
without the mark, ours or not, are never touched. Linux only (it reads /proc); elsewhere no
folder is ever stale.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

OWNER_MARKER = "plumber-owner"
"""A file in each marked folder: the pid and start time of the process that made it."""


def owner_mark(pid: int) -> str | None:
    """'<pid> <start time in clock ticks since boot>' of a running process, None if gone."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat_line.rsplit(")", 1)[-1].split()
    return f"{pid} {fields[19]}" if len(fields) > 19 else None


def mark_owner(folder: Path) -> None:
    """Name this process as the maker of `folder`."""
    (folder / OWNER_MARKER).write_text(owner_mark(os.getpid()) or "", encoding="utf-8")


def stale_folders(base_dir: Path, prefix: str) -> list[Path]:
    """The marked folders `base_dir/<prefix>*` whose maker no longer runs."""
    if not Path("/proc/self/stat").exists():
        return []
    stale = []
    for folder in base_dir.glob(prefix + "*"):
        try:
            mark = (folder / OWNER_MARKER).read_text(encoding="utf-8").strip()
            pid = int(mark.split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if owner_mark(pid) != mark:
            stale.append(folder)
    return stale


def remove_stale_folders(base_dir: Path, prefix: str) -> list[Path]:
    """Delete `stale_folders(base_dir, prefix)`; return them."""
    stale = stale_folders(base_dir, prefix)
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale
