"""Write files whole or not at all: a temporary file beside the target, then a rename.

Every file the project writes goes through here, so three things hold everywhere:

- A reader never sees half a file: the content lands in `.<name>.<random>.plumber-tmp` in the
  target's folder (same file system, so the rename is atomic) and is renamed over the target.
- The final file has the mode any other tool would give it, 0666 minus the umask: the temporary
  file is created with `os.open(..., 0o666)` and the kernel applies the umask (mkstemp's 0600
  would make build output unreadable to the rest of a team).
- A temporary file left by a killed process is recognisable by its name (`is_temp_name`), so a
  later run can find and delete the ones it owns (`stale_temp_files`).

`durable=True` also fsyncs the file before the rename and the folder after it, for records that
must survive a crash (run specs); reports and caches skip the cost.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TEMP_SUFFIX = ".plumber-tmp"
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def temp_path(target: Path) -> Path:
    """A fresh temporary name beside `target`: `.<name>.<12 hex>.plumber-tmp`."""
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our temporary files (of any target)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def stale_temp_files(folder: Path) -> list[Path]:
    """Our temporary files directly in `folder`: what a killed writer left behind."""
    try:
        return sorted(p for p in folder.iterdir() if is_temp_name(p.name) and p.is_file())
    except OSError:
        return []


def stage(target: Path, content: str | bytes, *, durable: bool = False) -> Path:
    """Write `content` to a new temporary file beside `target` and return its path; the caller
    renames it into place (with `commit`) or deletes it. Text is written as UTF-8, byte for byte
    (no newline translation)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    while True:
        tmp = temp_path(target)
        try:
            fd = os.open(tmp, _CREATE_FLAGS, 0o666)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:  # a full disk names no file
            raise OSError(err.errno, err.strerror, str(target)) from err
        raise
    return tmp


def commit(tmp: Path, target: Path, *, durable: bool = False) -> None:
    """Rename a staged file over `target`; with `durable`, fsync the folder so the rename lasts."""
    os.replace(tmp, target)
    if durable:
        _fsync_folder(target.parent)


def write_atomic(target: Path, content: str | bytes, *, durable: bool = False) -> None:
    """Replace `target` with `content` in one step, creating its folder if needed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = stage(target, content, durable=durable)
    try:
        commit(tmp, target, durable=durable)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself still happened
    finally:
        os.close(fd)
