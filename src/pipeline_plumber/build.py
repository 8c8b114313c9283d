"""Render the pack and write it (atomically) or compare it with what is on disk."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import __version__, atomic
from .errors import CheckFailed, InputError, Problem
from .jsonsource import read_json_file
from .kb import KnowledgeBase, load_kb
from .lint import lint_pack
from .render import RenderOptions, render, render_plugin

RECORD_PATH = ".plumber-build.json"
RECORD_ABOUT = "Files written by `plumber build`; the next build deletes those it no longer makes."
_OURS = re.compile(r"(agents|commands)/[a-z0-9][a-z0-9-]*\.md|\.claude-plugin/[a-z0-9-]+\.json")

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
    for rel, text in sorted(output_files(pack).items()):
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


def output_files(pack: Pack) -> dict[str, str]:
    """The pack's files plus the record of their names, which the next build reads back."""
    record = {"about": RECORD_ABOUT, "files": sorted(pack.files)}
    return {**pack.files, RECORD_PATH: json.dumps(record, indent=1) + "\n"}


def write(out_dir: Path, pack: Pack) -> list[Change]:
    """Write every changed file: all are staged as temporary files first, then renamed into place,
    so an error while writing leaves no file half-written."""
    changes = plan(out_dir, pack)
    files = output_files(pack)
    staged: list[tuple[Path, Path]] = []
    try:
        for change in changes:
            if change.kind in ("create", "update"):
                target = out_dir / change.path
                target.parent.mkdir(parents=True, exist_ok=True)
                staged.append((atomic.stage(target, files[change.path]), target))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in staged:
        atomic.commit(tmp, target)
    for change in changes:
        if change.kind == "delete":
            (out_dir / change.path).unlink(missing_ok=True)
    return changes


def check(out_dir: Path, pack: Pack) -> list[Change]:
    """The files that differ from a fresh build; empty when the committed output is current."""
    return [c for c in plan(out_dir, pack) if c.kind != "unchanged"]


def _stale(out_dir: Path, pack: Pack) -> list[str]:
    """Files the previous build wrote (by its record) that this build would not write.

    Ownership is decided by exact name only, never by a file's content: a hand-written command
    that forks into our agent is not ours. The record is read as untrusted: only names of the
    shapes we render (`agents/<name>.md`, `commands/<name>.md`, `.claude-plugin/<name>.json`)
    that are regular files are ever deleted."""
    previous = _recorded_files(out_dir / RECORD_PATH)
    current = output_files(pack)
    return sorted(rel for rel in previous
                  if rel not in current and _OURS.fullmatch(rel)
                  and (out_dir / rel).is_file() and not (out_dir / rel).is_symlink())


def _recorded_files(path: Path) -> set[str]:
    try:
        data = read_json_file(path, limit=1 << 20)
    except (OSError, ValueError):
        return set()
    files = data.get("files") if isinstance(data, dict) else None
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()


def _lines_changed(old: str, new: str) -> int:
    diff = difflib.ndiff(old.splitlines(), new.splitlines())
    return sum(1 for line in diff if line.startswith(("+ ", "- ")))
