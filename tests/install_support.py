"""Helpers for the install tests: what an install writes, and how a failure reads."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result

REPO = Path(__file__).resolve().parents[1]
COMMANDS = sorted(
    ["schema", "etl", "optimize", "dq", "governance", "partition", "index", "pipeline", "airflow",
     "star"]
)
AGENT = "agents/data-engineer.md"
INSTALLED = [AGENT, *(f"commands/de/{name}.md" for name in COMMANDS)]
MANIFEST = ".pipeline-plumber.json"


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
