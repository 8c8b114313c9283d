"""Helpers shared by the knowledge-base and build tests."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MINIMAL_KB = FIXTURES / "kb" / "minimal"
TEMPLATES = REPO / "templates"


def copy_minimal_kb(tmp_path: Path) -> Path:
    kb = tmp_path / "kb"
    shutil.copytree(MINIMAL_KB, kb)
    return kb


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes, to prove a command changed nothing."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
