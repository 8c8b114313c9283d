"""Render the pack and write it (atomically) or compare it with what is on disk."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import __version__, atomic, frontmatter
from .errors import CheckFailed, InputError, Problem
from .kb import KnowledgeBase, load_kb
from .lint import lint_pack
from .render import RenderOptions, render, render_plugin

OWNED_DIRS = ("agents", "commands")

ChangeKind = Literal["create", "update", "delete", "unchanged"]


@dataclass(frozen=True)
class Change:
    path: str
    kind: ChangeKind
    lines_changed: int = 0

    def __str__(self) -> str:
        detail = f" ({self.lines_changed} lines differ)" if self.kind == "update" else ""
        return f"{self.kind:9} {self.path}{detail}"


@dataclass(frozen=True)
class Pack:
    kb: KnowledgeBase
    files: dict[str, str]


def build_pack(
    kb_dir: Path, templates: Path, options: RenderOptions | None = None, *, plugin: bool = True
) -> Pack:
    """Load, render and lint. Raises InputError (bad input) or CheckFailed (lint findings).

    `plugin`: the repository's own layout, a Claude Code plugin with its manifests (what
    `plumber build` writes); otherwise the plain pack, whose commands name the agent bare."""
    kb = load_kb(kb_dir)
    if not templates.is_dir():
        raise InputError([Problem("templates folder not found", file=str(templates))])
    options = options or RenderOptions()
    if plugin:
        files = render_plugin(kb, templates, __version__, options)
    else:
        files = render(kb, templates, options)
    problems = lint_pack(files)
    if problems:
        raise CheckFailed(problems)
    return Pack(kb, files)


def plan(out_dir: Path, pack: Pack) -> list[Change]:
    """What writing `pack` into `out_dir` would change, including stale files of ours to delete."""
    changes: list[Change] = []
    for rel, text in sorted(pack.files.items()):
        target = out_dir / rel
        if not target.is_file():
            changes.append(Change(rel, "create"))
            continue
        current = target.read_text(encoding="utf-8", errors="replace")
        if current == text:
            changes.append(Change(rel, "unchanged"))
        else:
            changes.append(Change(rel, "update", _lines_changed(current, text)))
    for rel in _stale(out_dir, pack):
        changes.append(Change(rel, "delete"))
    return changes


def write(out_dir: Path, pack: Pack) -> list[Change]:
    """Write every changed file: all are staged as temporary files first, then renamed into place,
    so an error while writing leaves no file half-written."""
    changes = plan(out_dir, pack)
    staged: list[tuple[Path, Path]] = []
    try:
        for change in changes:
            if change.kind in ("create", "update"):
                target = out_dir / change.path
                target.parent.mkdir(parents=True, exist_ok=True)
                staged.append((atomic.stage(target, pack.files[change.path]), target))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in staged:
        atomic.commit(tmp, target)
    for change in changes:
        if change.kind == "delete":
            (out_dir / change.path).unlink()
    return changes


def check(out_dir: Path, pack: Pack) -> list[Change]:
    """The files that differ from a fresh build; empty when the committed output is current."""
    return [c for c in plan(out_dir, pack) if c.kind != "unchanged"]


def _stale(out_dir: Path, pack: Pack) -> list[str]:
    """Files in the output folders that the build made once but would not make now.

    A file is ours if it is an agent of our name, or a command that forks into our agent; other
    files in those folders are left alone."""
    agent = pack.kb.agent.name
    stale = []
    for folder in OWNED_DIRS:
        for path in sorted((out_dir / folder).glob("*.md")):
            rel = path.relative_to(out_dir).as_posix()
            if rel in pack.files:
                continue
            fields, _, _ = frontmatter.split(path.read_text(encoding="utf-8", errors="replace"))
            forks_into_agent = fields is not None and fields.get("context") == "fork" and str(
                fields.get("agent", "")
            ).endswith(agent)
            ours = fields is not None and (fields.get("name") == agent or forks_into_agent)
            if ours:
                stale.append(rel)
    return stale


def _lines_changed(old: str, new: str) -> int:
    diff = difflib.ndiff(old.splitlines(), new.splitlines())
    return sum(1 for line in diff if line.startswith(("+ ", "- ")))
