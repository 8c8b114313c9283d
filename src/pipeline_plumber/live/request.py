"""Build the Messages API request for a case, the way Claude Code sends a `context: fork` command.

Pure: no network, no file written. Claude Code runs `/de:schema orders ...` inside the Data
Engineer subagent: the agent file's body is the system prompt, and the command file's body, with
its placeholders expanded, is the first user message. We build exactly that, add the run's
model and parameters, and mark the system prompt for prompt caching.

`request_key` hashes everything that changes the output (model, system prompt, messages, every
other parameter, the repeat index) and nothing that does not (`stream`, `cache_control`), so a
recorded answer is found again whenever the same request would be sent.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import frontmatter
from ..claude_code import PLACEHOLDER
from ..errors import InputError, Problem

DEFAULT_MODEL = "claude-sonnet-5"
DEFAULT_MAX_TOKENS = 4096
KEY_VERSION = 1
"""Bump when the key's recipe changes: every stored answer then misses, none is misread."""

Arm = Literal["agent", "baseline", "judge"]
"""`agent`: the agent body is the system prompt; `baseline`: the same message, no system prompt;
`judge`: a vote of the judge model on an answer."""

RESERVED = frozenset({"model", "max_tokens", "system", "messages", "stream"})


@dataclass(frozen=True)
class LiveConfig:
    """What the run sends besides the prompts: model, max tokens, extra Messages API parameters
    (`top_p`, `stop_sequences`, `thinking`, ...), and prompt caching."""

    model: str = DEFAULT_MODEL
    max_tokens: int = DEFAULT_MAX_TOKENS
    params: Mapping[str, Any] = field(default_factory=dict)
    prompt_cache: bool = True
    cache_ttl: Literal["5m", "1h"] = "5m"

    def __post_init__(self) -> None:
        clash = sorted(RESERVED & set(self.params))
        if clash:
            raise InputError([Problem(f"'{name}' is set by the run itself; remove it",
                                      field=f"params.{name}") for name in clash])
        if self.max_tokens < 1:
            raise InputError([Problem("must be at least 1", field="max_tokens")])

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": self.max_tokens, "params": dict(self.params),
                "prompt_cache": self.prompt_cache, "cache_ttl": self.cache_ttl}


@dataclass(frozen=True)
class PackPrompts:
    """The texts Claude Code would send: the agent's body and each command's body template."""

    agent_body: str
    commands: Mapping[str, str]

    @classmethod
    def from_files(cls, files: Mapping[str, str], agent_name: str) -> PackPrompts:
        """From rendered files (`agents/<name>.md`, `commands/<name>.md`)."""
        agent_path = f"agents/{agent_name}.md"
        if agent_path not in files:
            raise InputError([Problem("the built pack has no agent file", file=agent_path)])
        commands = {}
        for path, text in files.items():
            if path.startswith("commands/") and path.endswith(".md"):
                commands[Path(path).stem] = body_of(text)
        return cls(body_of(files[agent_path]), commands)

    def user_message(self, command: str | None, arguments: str) -> str:
        """What the user message says for `/<command> <arguments>`, or the free text itself."""
        if command is None:
            return arguments
        if command not in self.commands:
            known = ", ".join(sorted(self.commands))
            raise InputError([Problem(f"no command '{command}' in the built pack; it has "
                                      f"{known}", field="command")])
        return expand_arguments(self.commands[command], arguments)


def body_of(text: str) -> str:
    """A Markdown file's body after its front matter, trimmed as Claude Code trims it."""
    _, body, _ = frontmatter.split(text)
    return body.strip()


def split_arguments(arguments: str) -> list[str]:
    """Positional arguments, split like a shell would; unbalanced quotes split on whitespace."""
    try:
        return shlex.split(arguments)
    except ValueError:
        return arguments.split()


def expand_arguments(body: str, arguments: str) -> str:
    """Expand a command body as Claude Code 2.1.328 does: `$ARGUMENTS` is the whole argument
    string, `$0` the first argument, `$1` the second, an out-of-range `$N` stays literal; with
    arguments but no placeholder, `ARGUMENTS: <args>` is appended. One pass, so a `$1` inside
    the arguments themselves is never expanded again.

    >>> expand_arguments("#schema $ARGUMENTS", "orders by day")
    '#schema orders by day'
    >>> expand_arguments("table $0, grain $1, $7", "orders day")
    'table orders, grain day, $7'
    >>> expand_arguments("Design it.", "orders")
    'Design it.\\n\\nARGUMENTS: orders'
    """
    positional = split_arguments(arguments)
    found = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal found
        name = match.group(1)
        if name == "ARGUMENTS":
            found = True
            return arguments
        index = int(name)
        if index < len(positional):
            found = True
            return positional[index]
        return match.group(0)

    expanded = PLACEHOLDER.sub(substitute, body)
    if arguments and not found:
        expanded = f"{expanded}\n\nARGUMENTS: {arguments}"
    return expanded


def build_request(system: str | None, user: str, config: LiveConfig) -> dict[str, Any]:
    """The Messages API request body (without `stream`): the system prompt as one text block
    marked for caching, the user message, the model, max tokens and extra parameters."""
    request: dict[str, Any] = {"model": config.model, "max_tokens": config.max_tokens}
    if system:
        block: dict[str, Any] = {"type": "text", "text": system}
        if config.prompt_cache:
            control: dict[str, Any] = {"type": "ephemeral"}
            if config.cache_ttl != "5m":
                control["ttl"] = config.cache_ttl
            block["cache_control"] = control
        request["system"] = [block]
    request["messages"] = [{"role": "user", "content": user}]
    request.update(config.params)
    return request


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_parts(request: Mapping[str, Any], repeat: int) -> dict[str, str]:
    """The key's ingredients, each hashed on its own, so a miss can say what changed."""
    plain = _without_cache_control({k: v for k, v in request.items() if k != "stream"})
    params = {k: v for k, v in plain.items() if k not in ("model", "system", "messages")}
    return {
        "version": str(KEY_VERSION),
        "model": str(plain.get("model", "")),
        "system": _sha(plain.get("system")),
        "messages": _sha(plain.get("messages")),
        "params": _sha(params),
        "repeat": str(repeat),
    }


def request_key(request: Mapping[str, Any], repeat: int) -> str:
    """sha256 over everything that changes the output, and the repeat index."""
    return hashlib.sha256(_canonical(key_parts(request, repeat))).hexdigest()


def explain_difference(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """Which of the key's ingredients differ, e.g. 'system prompt, params'."""
    names = {"version": "key version", "model": "model", "system": "system prompt",
             "messages": "user message", "params": "parameters", "repeat": "repeat index"}
    changed = [names[k] for k in names if old.get(k) != new.get(k)]
    return ", ".join(changed) if changed else "nothing"


def _sha(value: Any) -> str:
    return hashlib.sha256(_canonical(value)).hexdigest()


@dataclass(frozen=True)
class CaseInput:
    """What the runner needs of an eval case: its id, the command and the text typed after it
    (a free prompt when `command` is None), and the digest recordings are checked against."""

    id: str
    command: str | None
    prompt: str
    prompt_sha256: str


@dataclass(frozen=True)
class WorkItem:
    """One request to make: a case, an arm and a repeat, its body and its key."""

    key: str
    case_id: str
    arm: Arm
    repeat: int
    request: Mapping[str, Any]
    prompt_sha256: str

    @property
    def cacheable(self) -> bool:
        system = self.request.get("system")
        return isinstance(system, list) and any(
            isinstance(b, Mapping) and "cache_control" in b for b in system)


def plan_items(cases: list[CaseInput], prompts: PackPrompts, config: LiveConfig, *,
               repeats: int = 1, baseline: bool = False) -> list[WorkItem]:
    """Every request of a run, repeat by repeat, so a run stopped by its budget has covered as
    many cases as it could; each case's baseline request follows its agent request."""
    if repeats < 1:
        raise InputError([Problem("must be at least 1", field="--repeat")])
    items = []
    messages = {case.id: prompts.user_message(case.command, case.prompt) for case in cases}
    for repeat in range(repeats):
        for case in cases:
            arms: tuple[Arm, ...] = ("agent", "baseline") if baseline else ("agent",)
            for arm in arms:
                system = prompts.agent_body if arm == "agent" else None
                request = build_request(system, messages[case.id], config)
                items.append(WorkItem(request_key(request, repeat), case.id, arm, repeat,
                                      request, case.prompt_sha256))
    return items
