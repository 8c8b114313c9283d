"""The user's cache folder for what plumber provisions (the Airflow virtualenv, PostgreSQL binaries
copied where an unprivileged account can run them). `PLUMBER_CACHE_DIR` moves it."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "PLUMBER_CACHE_DIR"


def cache_dir() -> Path:
    """`$PLUMBER_CACHE_DIR`, else the platform's user cache folder (~/.cache/pipeline-plumber on
    Linux, ~/Library/Caches/pipeline-plumber on macOS)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("pipeline-plumber", appauthor=False))
