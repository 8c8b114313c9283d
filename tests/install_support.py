"""Helpers for the install tests: run `plumber` as a user would, in a chosen folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner, Result

from pipeline_plumber.cli import cli

REPO = Path(__file__).resolve().parents[1]
COMMANDS = sorted(
    ["schema", "etl", "optimize", "dq", "governance", "partition", "index", "pipeline", "airflow",
     "star"]
)
AGENT = "agents/data-engineer.md"
INSTALLED = [AGENT, *(f"commands/de/{name}.md" for name in COMMANDS)]
MANIFEST = ".pipeline-plumber.json"


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def plumber_in(cwd: Path, *args: str, home: Path | None = None) -> Result:
    """`plumber ARGS` run in-process from `cwd` (and with HOME=`home`, if given)."""
    env = {"HOME": str(home)} if home else None
    with working_directory(cwd):
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def one_error(result: Result) -> str:
    """The single `error: ...` line a failed command printed on stderr (and nothing else)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under `folder`: equal trees mean nothing changed."""
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }
