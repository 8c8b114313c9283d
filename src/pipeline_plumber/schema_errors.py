"""Turn pydantic validation errors into one-line problems naming file, line and field.

Shared by every reader of our own YAML (the knowledge base, eval cases, rubrics, answer labels),
so a bad key reads the same wherever it is: `evals/cases/schema.yaml:12: cases[0].cheks: unknown
key (did you mean 'checks'?)`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Problem
from .yamlsource import PathKey, SourceDoc, format_path

_MISSING = {"missing", "missing_keyword_argument", "missing_keyword_only_argument",
            "missing_argument"}
_UNKNOWN = {"extra_forbidden", "unexpected_keyword_argument"}


def field_names(models: Iterable[type[BaseModel]]) -> set[str]:
    """Every field name of `models`: the vocabulary 'did you mean' suggests from."""
    names: set[str] = set()
    for model in models:
        names.update(model.model_fields)
    return names


def schema_problems(
    err: ValidationError, doc: SourceDoc, known_fields: Iterable[str] = (), base: PathKey = ()
) -> list[Problem]:
    """One Problem per pydantic error, located in `doc` (the data validated sits at `base`)."""
    data = doc.data
    for part in base:  # the node validated; None when the YAML leaves it out
        ok = (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data))
        data = data[part] if ok else None
    known = set(known_fields)
    problems = []
    for error in err.errors():
        path = (*base, *data_path(data, error["loc"], error["type"]))
        problems.append(
            Problem(
                message(error, path, known),
                file=doc.file,
                line=doc.line_of(path),
                field=format_path(path) or None,
            )
        )
    return problems


def data_path(data: Any, loc: tuple[int | str, ...], kind: str) -> PathKey:
    """Map pydantic's location (which includes union tags) onto the path inside the YAML data."""
    path: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            current = current[part]  # type: ignore[index]
            path.append(part)
        elif last and kind in _MISSING | _UNKNOWN:
            path.append(part)
    return tuple(path)


def message(error: Any, path: PathKey, known_fields: Iterable[str] = ()) -> str:
    """A short, actionable sentence for one pydantic error."""
    kind = error["type"]
    given = error.get("input")
    if kind in _UNKNOWN:
        key = str(path[-1]) if path else "?"
        return f"unknown key{suggest(key, known_fields)}"
    if kind in _MISSING:
        return "required field is missing"
    if kind == "string_pattern_mismatch":
        return f"must be lowercase kebab-case (a-z, 0-9, '-'), 1 to 64 characters; got {given!r}"
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    if kind in ("model_type", "dict_type"):
        return f"must be a mapping, got {type_name(given)}"
    if kind == "list_type":
        return f"must be a list, got {type_name(given)}"
    if kind == "string_type":
        return f"must be a string, got {type_name(given)} (quote it in YAML)"
    text = str(error["msg"])
    return f"{text[0].lower()}{text[1:]}; got {given!r}" if given is not None else text


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
