"""Knowledge base -> {relative path: text}. Pure: no file is read or written here but templates."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2

from . import frontmatter
from .errors import InputError, Problem
from .frontmatter import Quoted
from .kb import Command, KnowledgeBase, Person, Plugin


@dataclass(frozen=True)
class RenderOptions:
    """Choices made at render time rather than by editing files afterwards."""

    model: str | None = None  # overrides the knowledge base's `model`
    tools: tuple[str, ...] | None = None  # overrides the knowledge base's `tools`
    agent_ref: str | None = None  # what commands put in `agent:`; a plugin needs `<plugin>:<name>`


AGENT_PATH = "agents/{name}.md"
COMMAND_PATH = "commands/{name}.md"

# Claude Code loads an agent's whole file into every session it runs in; far past this size a
# knowledge base is repeating itself (aliases, pasted text), and rendering more only wastes memory.
MAX_RENDERED_CHARS = 512 * 1024


def render(
    kb: KnowledgeBase, templates: Path, options: RenderOptions = RenderOptions()
) -> dict[str, str]:
    """Every file of the pack, keyed by its path relative to the output folder."""
    env = _environment(templates)
    files = {AGENT_PATH.format(name=kb.agent.name): _render_agent(env, kb, options)}
    for command in kb.commands.commands:
        files[COMMAND_PATH.format(name=command.name)] = _render_command(env, kb, command, options)
    return files


PLUGIN_MANIFEST = ".claude-plugin/plugin.json"
MARKETPLACE_MANIFEST = ".claude-plugin/marketplace.json"


def render_plugin(
    kb: KnowledgeBase, templates: Path, version: str, options: RenderOptions = RenderOptions()
) -> dict[str, str]:
    """The pack as a Claude Code plugin and one-plugin marketplace rooted at the output folder.

    Plugin agents are named `<plugin>:<agent>`, so the commands fork into `de:data-engineer`
    there, where a project install needs the bare name. Without a `plugin` section in the
    knowledge base this is `render` alone."""
    plugin = kb.agent.plugin
    if plugin is None:
        return render(kb, templates, options)
    agent_ref = options.agent_ref or plugin_agent_ref(kb)
    files = render(kb, templates, replace(options, agent_ref=agent_ref))
    files[PLUGIN_MANIFEST] = _json(plugin_manifest(plugin, version))
    files[MARKETPLACE_MANIFEST] = _json(marketplace_manifest(plugin, version))
    return files


def plugin_agent_ref(kb: KnowledgeBase) -> str:
    """How the plugin's commands name its agent: `<plugin>:<agent>`."""
    return f"{kb.agent.namespace}:{kb.agent.name}"


def plugin_manifest(plugin: Plugin, version: str) -> dict[str, Any]:
    """`.claude-plugin/plugin.json`. Component paths are left to the defaults (agents/,
    commands/): setting them would turn off the scan of the default folders."""
    fields: dict[str, Any] = {
        "name": plugin.name,
        "version": version,
        "description": " ".join(plugin.description.split()),
        "author": _person(plugin.author),
    }
    for key in ("license", "homepage", "repository"):
        value = getattr(plugin, key)
        if value:
            fields[key] = value
    if plugin.keywords:
        fields["keywords"] = list(plugin.keywords)
    return fields


def marketplace_manifest(plugin: Plugin, version: str) -> dict[str, Any]:
    """`.claude-plugin/marketplace.json`: a marketplace whose one plugin is this folder."""
    return {
        "name": plugin.marketplace,
        "description": f"The {plugin.name} plugin: " + " ".join(plugin.description.split()),
        "owner": _person(plugin.author),
        "plugins": [
            {
                "name": plugin.name,
                "source": "./",
                "description": " ".join(plugin.description.split()),
                "version": version,
            }
        ],
    }


def _person(person: Person) -> dict[str, str]:
    return {key: value for key, value in person.model_dump().items() if value}


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def agent_front_matter(kb: KnowledgeBase, options: RenderOptions) -> dict[str, Any]:
    agent = kb.agent
    fields: dict[str, Any] = {
        "name": agent.name,
        "description": Quoted(" ".join(agent.description.split())),
        "model": options.model or agent.model,
    }
    tools = options.tools if options.tools is not None else agent.tools
    if tools is not None:
        fields["tools"] = list(tools)
    if agent.color:
        fields["color"] = agent.color
    return fields


def command_front_matter(
    kb: KnowledgeBase, command: Command, options: RenderOptions
) -> dict[str, Any]:
    return {
        "description": Quoted(command.description),
        "argument-hint": Quoted(command.argument_hint),
        "context": "fork",
        "agent": options.agent_ref or kb.agent.name,
    }


def _render_agent(env: jinja2.Environment, kb: KnowledgeBase, options: RenderOptions) -> str:
    return _render(
        env,
        "agent.md.j2",
        front_matter=frontmatter.dump(agent_front_matter(kb, options)),
        agent=kb.agent,
        practice=kb.practice,
        principles=kb.principles,
        persona=kb.persona,
        topics=kb.topics,
        commands=kb.commands,
        mantras=kb.mantras,
    )


def _render_command(
    env: jinja2.Environment, kb: KnowledgeBase, command: Command, options: RenderOptions
) -> str:
    by_id = {p.id: p for p in kb.principles.principles}
    return _render(
        env,
        "command.md.j2",
        front_matter=frontmatter.dump(command_front_matter(kb, command, options)),
        command=command,
        commands=kb.commands,
        principles=[by_id[ref] for ref in command.principles],
        examples=kb.example_places(command.examples),
    )


# --- Jinja ---------------------------------------------------------------------------------------


def _environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["fence"] = fence
    env.filters["blockquote"] = blockquote
    return env


def _render(env: jinja2.Environment, name: str, **context: Any) -> str:
    try:
        return tidy(_bounded(env.get_template(name).generate(**context), name))
    except jinja2.TemplateSyntaxError as err:
        raise InputError([_template_problem(err, err.filename or name, err.lineno)]) from err
    except jinja2.TemplateNotFound as err:
        folders = getattr(env.loader, "searchpath", None) or ["."]
        raise InputError([Problem("template not found", file=f"{folders[0]}/{err.name}")]) from err
    except jinja2.TemplateError as err:
        filename, line = _template_frame(err, name)
        raise InputError([_template_problem(err, filename, line)]) from err
    except (ArithmeticError, LookupError, TypeError, ValueError) as err:  # `{{ 1/0 }}` and kin
        filename, line = _template_frame(err, name)
        raise InputError([Problem(f"template error: {type(err).__name__}: {err}",
                                  file=filename, line=line)]) from err


def _bounded(chunks: Iterator[str], name: str) -> str:
    """Join rendered chunks, stopping as soon as the output passes MAX_RENDERED_CHARS."""
    out: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            message = (f"rendered output is larger than {MAX_RENDERED_CHARS // 1024} KiB; "
                       "the knowledge base repeats itself (aliases or pasted text)")
            raise InputError([Problem(message, file=name)])
        out.append(chunk)
    return "".join(out)


def _template_problem(err: jinja2.TemplateError, filename: str, line: int | None) -> Problem:
    return Problem(f"template error: {err.message or err}", file=filename, line=line)


def _template_frame(err: BaseException, default: str) -> tuple[str, int | None]:
    """The innermost template file and line in the traceback (Jinja maps frames onto templates)."""
    found: tuple[str, int | None] = (default, None)
    tb = err.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def fence(code: str, language: str) -> str:
    """A fenced block whose backtick run is longer than any inside the code."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{code.rstrip()}\n{ticks}"


def blockquote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines())


_FENCE = re.compile(r"^(`{3,}|~{3,})")


def tidy(markdown: str) -> str:
    """One blank line between blocks and no trailing spaces, leaving fenced code untouched."""
    out: list[str] = []
    open_fence: str | None = None
    for line in markdown.split("\n"):
        if open_fence is None:
            line = line.rstrip()
            match = _FENCE.match(line)
            if match:
                open_fence = match.group(1)
            elif not line and out and not out[-1]:
                continue
        elif _closes(line, open_fence):
            open_fence = None
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def _closes(line: str, open_fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(open_fence) and set(stripped) == {open_fence[0]}
