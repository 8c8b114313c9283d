"""Read JSON that someone else may have written (recordings, judge votes, run folders) within
limits: a size cap checked before the bytes are read, and a nesting cap.

Python's decoder would otherwise read a file of any size into memory and raise RecursionError (not
ValueError) on deep nesting; here both are a ValueError, which every reader already treats as "not
a file of ours"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 8 << 20  # a recording is the request (system prompt) plus one reply: ~100 KiB
MAX_JSON_DEPTH = 64


def read_json_file(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file. Raises OSError when unreadable, ValueError when too large, too deep or
    not JSON."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name} is larger than {limit} bytes")
    return loads_bounded(data)


def loads_bounded(data: str | bytes) -> Any:
    """`json.loads`, refusing documents nested deeper than MAX_JSON_DEPTH (ValueError)."""
    try:
        value = json.loads(data)
    except RecursionError as err:
        raise ValueError("JSON nests too deeply") from err
    if depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def depth(value: Any) -> int:
    """How many arrays and objects deep `value` goes (iterative: no recursion limit to hit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest
