"""YAML front matter, emitted with a dumper and read back the same way Claude Code does."""

from __future__ import annotations

from typing import Any

import yaml

from .errors import InputError
from .yamlsource import load_bounded


class Quoted(str):
    """Free text that must be double-quoted in YAML (a `#` or `[` must never change its meaning)."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_quoted(dumper: yaml.SafeDumper, value: Quoted) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style='"')


_Dumper.add_representer(Quoted, _represent_quoted)


def dump(fields: dict[str, Any]) -> str:
    """The YAML between the `---` lines, keys in the given order, one line per scalar."""
    return yaml.dump(
        fields, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 20
    )


def split(text: str) -> tuple[dict[str, Any] | None, str, int]:
    """(front matter, body, line where the body starts). Front matter is None if absent or bad,
    including YAML past the parser's limits (see yamlsource)."""
    if not text.startswith("---\n"):
        return None, text, 1
    end = text.find("\n---\n", 3)
    if end == -1:
        return None, text, 1
    raw = text[4 : end + 1]
    body = text[end + 5 :]
    body_line = raw.count("\n") + 3
    try:
        data = load_bounded(raw)
    except (yaml.YAMLError, InputError):
        return None, body, body_line
    return (data if isinstance(data, dict) else None), body, body_line
