"""Read YAML while remembering where each value came from, so errors can name file and line.

Every YAML file we read may come from someone else (a knowledge base, eval cases, an answer's
front matter), so parsing has limits, checked on the event stream before any node is composed:
the file's size, how deeply it nests, how many aliases it holds and how many nodes those aliases
would add if expanded. A "billion laughs" file is refused after one linear pass over its events,
before anything (our line index, the constructor, a template) walks the expanded tree.
"""

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

MAX_YAML_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_ALIAS_EXPANSION = 10_000


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
    return parse_yaml(read_limited(path, name, MAX_YAML_BYTES), name)


def read_limited(path: Path, name: str, limit: int) -> str:
    """A UTF-8 text file of at most `limit` bytes; a larger file is refused before it is read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise InputError([Problem(f"file is larger than {_size(limit)}", file=name)])
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError([Problem(f"cannot read: {err}", file=name)]) from err


def parse_yaml(text: str, name: str) -> SourceDoc:
    """Parse YAML text within the limits above; every problem is an InputError naming the line."""
    if len(text) > MAX_YAML_BYTES:
        raise InputError([Problem(f"YAML is larger than {_size(MAX_YAML_BYTES)}", file=name)])
    loader = _BaseLoader(text)
    try:
        check_limits(text, name)
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


def load_bounded(text: str) -> Any:
    """`yaml.safe_load` within the same limits; raises InputError or yaml.YAMLError."""
    check_limits(text, "<front matter>")
    return yaml.load(text, Loader=_BaseLoader)


@dataclass
class _Frame:
    anchor: str | None
    nodes: int = 1
    height: int = 0


def check_limits(text: str, name: str) -> None:
    """Refuse YAML that nests deeper than MAX_DEPTH (aliases included), holds more than
    MAX_ALIASES aliases, or whose aliases would add more than MAX_ALIAS_EXPANSION nodes.

    One pass over the parser's events; each anchor's node count and height is known when its
    collection ends, so an alias is priced without expanding it."""
    anchors: dict[str, _Frame] = {}
    stack: list[_Frame] = []
    aliases = expanded = 0

    def refuse(message: str, event: yaml.Event) -> None:
        line = event.start_mark.line + 1 if event.start_mark else None
        raise InputError([Problem(message, file=name, line=line)])

    def close(done: _Frame) -> None:
        if stack:
            stack[-1].nodes += done.nodes
            stack[-1].height = max(stack[-1].height, done.height + 1)

    loader = _BaseLoader(text)
    try:
        while (event := loader.get_event()) is not None:  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append(_Frame(event.anchor))
                if len(stack) > MAX_DEPTH:
                    refuse(f"YAML nests deeper than {MAX_DEPTH} levels", event)
            elif isinstance(event, yaml.CollectionEndEvent):
                done = stack.pop()
                if done.anchor is not None:
                    anchors[done.anchor] = done
                close(done)
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    anchors[event.anchor] = _Frame(event.anchor)
                close(_Frame(None))
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    refuse(f"YAML has more than {MAX_ALIASES} aliases", event)
                target = anchors.get(str(event.anchor), _Frame(None))
                expanded += target.nodes
                if expanded > MAX_ALIAS_EXPANSION:
                    refuse(f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION} nodes", event)
                if len(stack) + target.height > MAX_DEPTH:
                    refuse(f"YAML nests deeper than {MAX_DEPTH} levels through an alias", event)
                close(target)
    finally:
        loader.dispose()


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"


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
