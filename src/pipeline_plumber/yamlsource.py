"""Read YAML while remembering where each value came from, so errors can name file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, Problem

try:  # the C parser is several times faster; the pure-Python one gives the same tree
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader

PathKey = tuple[str | int, ...]


@dataclass
class SourceDoc:
    """A parsed YAML document and the line of every mapping key and sequence item in it."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey) -> int | None:
        """The line of the deepest known node on `path` (the value itself or its nearest parent)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def format_path(path: PathKey) -> str:
    """('commands', 3, 'name') -> 'commands[3].name'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def load_yaml(path: Path, display: str | None = None) -> SourceDoc:
    """Parse one YAML file. Syntax errors and duplicate keys raise InputError naming the line."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError([Problem(f"cannot read: {err}", file=name)]) from err
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> SourceDoc:
    loader = _BaseLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return SourceDoc(name, None)
        doc = SourceDoc(name, None)
        problems: list[Problem] = []
        _index(node, (), doc, problems)
        if problems:
            raise InputError(problems)
        doc.data = loader.construct_document(node)
        return doc
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        reason = err.problem or err.context or "invalid YAML"
        raise InputError([Problem(f"YAML syntax error: {reason}", file=name, line=line)]) from err
    except yaml.YAMLError as err:
        raise InputError([Problem(f"YAML error: {err}", file=name)]) from err
    finally:
        loader.dispose()


def _index(node: yaml.Node, path: PathKey, doc: SourceDoc, problems: list[Problem]) -> None:
    """Record the line of every node, keyed by its path; report duplicate mapping keys."""
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(
                        f"duplicate key (first defined on line {seen[key]})",
                        file=doc.file,
                        line=line,
                        field=format_path((*path, key)),
                    )
                )
                continue
            seen[key] = line
            doc.lines[(*path, key)] = line
            _index(value_node, (*path, key), doc, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), doc, problems)
