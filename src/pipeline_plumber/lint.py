"""Checks on the rendered files: what Claude Code would read, as strictly as we hold ourselves.

`claude plugin validate` does not check names, unknown keys, enum values or `#` truncation; these
checks do, and they check Markdown structure with markdown-it-py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from markdown_it import MarkdownIt

from . import frontmatter
from .claude_code import (
    AGENT_COLORS,
    AGENT_KEYS,
    AGENT_REF,
    COMMAND_DESCRIPTION_MAX_CHARS,
    COMMAND_KEYS,
    DESCRIPTION_MAX_CHARS,
    MODEL_ALIASES,
    PLACEHOLDER,
    accepts_model,
    shell_trigger,
)
from .errors import Problem
from .kb import SLUG_PATTERN

AGENT_DESCRIPTION_MAX_WORDS = 60
# The H2 sections every agent keeps: how it works in a repository, what it never does to a
# database, and what every answer ends with (`practice.yaml` in the knowledge base).
AGENT_REQUIRED_SECTIONS = ("How you work", "Never", "How to verify")
_NAME = re.compile(SLUG_PATTERN)

_markdown = MarkdownIt("commonmark")


def lint_pack(files: dict[str, str]) -> list[Problem]:
    """Problems in a rendered pack; empty when every file is what Claude Code should read."""
    problems: list[Problem] = []
    for path, text in sorted(files.items()):
        if path.startswith("agents/") and path.endswith(".md"):
            problems += lint_markdown_file(path, text, _check_agent, h1=True)
        elif path.startswith("commands/") and path.endswith(".md"):
            problems += lint_markdown_file(path, text, _check_command, h1=False)
    return problems


Checker = Callable[[str, dict[str, Any], str, int], list[Problem]]


def lint_markdown_file(path: str, text: str, check: Checker, *, h1: bool) -> list[Problem]:
    fields, body, body_line = frontmatter.split(text)
    if fields is None:
        return [
            Problem(
                "front matter is missing or does not parse as a YAML mapping", file=path, line=1
            )
        ]
    problems = check(path, fields, body, body_line)
    problems += _markdown_structure(path, body, body_line, require_h1=h1)
    return problems


def _check_agent(path: str, fields: dict[str, Any], body: str, body_line: int) -> list[Problem]:
    problems = _unknown_keys(path, fields, AGENT_KEYS)
    name = fields.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(_field(path, "name", f"must match {SLUG_PATTERN}; got {name!r}"))
    elif path != f"agents/{name}.md":
        problems.append(_field(path, "name", f"'{name}' does not match the file name"))
    problems += _description(path, fields, max_words=AGENT_DESCRIPTION_MAX_WORDS)
    model = fields.get("model")
    if model is not None and (not isinstance(model, str) or not accepts_model(model)):
        problems.append(
            _field(
                path,
                "model",
                f"{model!r} is not a model Claude Code accepts "
                f"({', '.join(MODEL_ALIASES)} or a full claude-... id)",
            )
        )
    color = fields.get("color")
    if color is not None and color not in AGENT_COLORS:
        problems.append(_field(path, "color", f"{color!r} is not one of {', '.join(AGENT_COLORS)}"))
    tools = fields.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, str) and t for t in tools)
    ):
        problems.append(_field(path, "tools", "must be a list of tool names"))
    if body.strip() == "":
        problems.append(
            Problem("the agent has no body (its system prompt)", file=path, line=body_line)
        )
    else:
        problems += _required_sections(path, body, body_line)
    return problems


def _required_sections(path: str, body: str, body_line: int) -> list[Problem]:
    """Every section of AGENT_REQUIRED_SECTIONS is an H2 of the body, so none is dropped."""
    titles = set(_h2_titles(body))
    return [
        Problem(
            f"the agent has no '## {title}' section; every agent keeps "
            f"{', '.join(AGENT_REQUIRED_SECTIONS)} (practice.yaml)",
            file=path,
            line=body_line,
        )
        for title in AGENT_REQUIRED_SECTIONS
        if title not in titles
    ]


def _h2_titles(body: str) -> list[str]:
    tokens = _markdown.parse(body)
    return [
        tokens[i + 1].content.strip()
        for i, token in enumerate(tokens)
        if token.type == "heading_open" and token.tag == "h2"
    ]


def _check_command(path: str, fields: dict[str, Any], body: str, body_line: int) -> list[Problem]:
    problems = _unknown_keys(path, fields, COMMAND_KEYS)
    problems += _description(path, fields, max_chars=COMMAND_DESCRIPTION_MAX_CHARS)
    hint = fields.get("argument-hint")
    if not isinstance(hint, str) or not hint.strip():
        problems.append(_field(path, "argument-hint", "must be a non-empty string (quote it)"))
    if fields.get("context") != "fork":
        problems.append(_field(path, "context", f"must be 'fork'; got {fields.get('context')!r}"))
    agent = fields.get("agent")
    if not isinstance(agent, str) or not AGENT_REF.match(agent):
        problems.append(_field(path, "agent", f"must name an agent ([plugin:]name); got {agent!r}"))
    arguments = 0
    for match in PLACEHOLDER.finditer(body):
        if match.group(1) == "ARGUMENTS":
            arguments += 1
            continue
        line = body_line + body.count("\n", 0, match.start())
        problems.append(
            Problem(
                f"{match.group(0)} is a positional placeholder Claude Code would substitute; "
                "reword it",
                file=path,
                line=line,
            )
        )
    if arguments != 1:
        problems.append(
            Problem(
                f"the body must use $ARGUMENTS exactly once; found {arguments}",
                file=path,
                line=body_line,
            )
        )
    return problems


def _description(
    path: str,
    fields: dict[str, Any],
    *,
    max_words: int | None = None,
    max_chars: int = DESCRIPTION_MAX_CHARS,
) -> list[Problem]:
    description = fields.get("description")
    if not isinstance(description, str) or not description.strip():
        return [_field(path, "description", "is missing; Claude Code drops an agent without one")]
    problems = []
    if len(description) > max_chars:
        problems.append(
            _field(path, "description", f"is {len(description)} characters; at most {max_chars}")
        )
    words = len(description.split())
    if max_words is not None and words > max_words:
        problems.append(
            _field(
                path,
                "description",
                f"is {words} words; at most {max_words} (it is sent in every session)",
            )
        )
    return problems


def _unknown_keys(path: str, fields: dict[str, Any], known: tuple[str, ...]) -> list[Problem]:
    return [
        _field(path, str(key), "is not a field Claude Code reads here")
        for key in fields
        if key not in known
    ]


def _field(path: str, field: str, message: str) -> Problem:
    return Problem(message, file=path, line=None, field=field)


def _markdown_structure(path: str, body: str, body_line: int, *, require_h1: bool) -> list[Problem]:
    """One H1 (agents) or none required (commands), no skipped levels, a language on every fence."""
    problems: list[Problem] = []
    h1_count = 0
    previous_level = 0
    for token in _markdown.parse(body):
        line = body_line + token.map[0] if token.map else None
        if token.type == "heading_open":
            level = int(token.tag[1])
            h1_count += level == 1
            if level > previous_level + 1:
                problems.append(
                    Problem(
                        f"heading level skips from H{previous_level} to H{level}",
                        file=path,
                        line=line,
                    )
                )
            previous_level = level
        elif token.type == "fence":
            info = token.info.strip()
            if not info:
                problems.append(Problem("code fence has no language", file=path, line=line))
            elif info.startswith("!"):
                problems.append(
                    Problem(
                        "fence opened with '!' runs as shell in Claude Code", file=path, line=line
                    )
                )
    if require_h1 and h1_count != 1:
        problems.append(
            Problem(f"must have exactly one H1; found {h1_count}", file=path, line=body_line)
        )
    if not require_h1 and h1_count > 1:
        problems.append(
            Problem(f"must have at most one H1; found {h1_count}", file=path, line=body_line)
        )
    trigger = shell_trigger(body)
    if trigger:
        line = body_line + body[: body.find(trigger)].count("\n") if trigger in body else body_line
        problems.append(
            Problem(
                f"contains {trigger!r}, which Claude Code would execute as shell",
                file=path,
                line=line,
            )
        )
    return problems
