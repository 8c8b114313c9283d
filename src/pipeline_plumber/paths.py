"""Where the knowledge base, templates and eval suite live: bundled in the wheel, or in a source
checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def package_data(name: str) -> Path:
    """`kb`, `templates` or `evals` as shipped: inside the wheel, else at the root of the source
    tree."""
    bundled = _PACKAGE / "_data" / name
    return bundled if bundled.is_dir() else _PACKAGE.parents[1] / name


def default_kb() -> Path:
    """`./kb` when the current folder holds a knowledge base (a checkout or fork), else bundled."""
    local = Path("kb")
    return local if (local / "agent.yaml").is_file() else package_data("kb")


def default_templates() -> Path:
    local = Path("templates")
    return local if (local / "agent.md.j2").is_file() else package_data("templates")


def default_evals() -> Path:
    """`./evals` when the current folder holds an eval suite (a checkout or a team's own), else
    the one shipped with the package."""
    local = Path("evals")
    return local if (local / "cases").is_dir() else package_data("evals")
