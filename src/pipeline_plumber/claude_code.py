"""What Claude Code accepts and acts on, in one place: the vocabulary the pack is written for.

The knowledge base validates against it (colours, shell triggers), the linter checks the rendered
files against it (front-matter keys, models, limits, placeholders) and `install` checks `--model`
against it. When Claude Code changes, this module is the one to change.
"""

from __future__ import annotations

import re

MODEL_ALIASES = ("inherit", "sonnet", "opus", "haiku", "sonnet[1m]", "opusplan")
"""The `model:` values Claude Code resolves itself; anything else must be a full model id."""
FULL_MODEL_ID = re.compile(r"^claude-[a-z0-9.-]+$")

AGENT_COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "pink", "cyan")
"""The colours a subagent's `color:` may name."""

AGENT_KEYS = (
    "name",
    "description",
    "tools",
    "disallowedTools",
    "model",
    "permissionMode",
    "effort",
    "maxTurns",
    "skills",
    "hooks",
    "mcpServers",
    "color",
    "memory",
    "background",
    "isolation",
    "initialPrompt",
)
"""The front-matter keys Claude Code reads in `agents/<name>.md`."""

COMMAND_KEYS = (
    "description",
    "argument-hint",
    "allowed-tools",
    "disallowed-tools",
    "model",
    "disable-model-invocation",
    "user-invocable",
    "effort",
    "context",
    "agent",
)
"""The front-matter keys Claude Code reads in `commands/**/<name>.md`."""

DESCRIPTION_MAX_CHARS = 1024
COMMAND_DESCRIPTION_MAX_CHARS = 250

AGENT_REF = re.compile(r"^([a-z0-9][a-z0-9-]{0,63}:)?[a-z0-9][a-z0-9-]{0,63}$")
"""A command's `agent:`: `[plugin:]name`."""
PLACEHOLDER = re.compile(r"\$(ARGUMENTS|\d+)")
"""What Claude Code substitutes in a command body: `$ARGUMENTS` (all arguments), or `$0`, `$1`, ...
positionally (`$0` is the first argument)."""

SHELL_TRIGGERS = ("!`",)
"""Inline `` !`cmd` ``, which Claude Code runs as shell when a command is invoked (so do fences
opened with ```! or ~~~!, found line by line)."""


def accepts_model(model: str) -> bool:
    """Whether Claude Code takes `model` as a `model:` value: an alias or a full model id."""
    return model in MODEL_ALIASES or bool(FULL_MODEL_ID.match(model))


def shell_trigger(text: str) -> str | None:
    """The first sequence in `text` that Claude Code would execute as shell, if any."""
    for trigger in SHELL_TRIGGERS:
        if trigger in text:
            return trigger
    for line in text.splitlines():
        if line.lstrip().startswith(("```!", "~~~!")):
            return line.lstrip()[:4]
    return None
