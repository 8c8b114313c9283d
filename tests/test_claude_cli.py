"""The real Claude Code CLI against the fake API: what reaches the model, and where.

Observed on Claude Code 2.1.328 and pinned here so an upgrade that moves things fails loudly:

- the first request's `system` holds only Claude Code's own prompt (three text blocks: billing
  header, identity line, main prompt). The agent list ("Available agent types for the Agent
  tool:") and the skill list ("The following skills are available for use with the Skill
  tool:", where commands appear too) are in `messages[1]`, a message with role "system" after
  the user's message, as one text block;
- the user's prompt is the last text block of `messages[0]` (role "user"), after a
  `<system-reminder>` block;
- a command with `context: fork` + `agent:` sends ONE request, straight to the subagent: its
  `system` holds the agent body (block 2 starts with it) and `messages[0]`'s last block is the
  expanded command body (with a trailing newline);
- an `Agent` tool call runs in the background unless `run_in_background` is false; in the
  foreground the order is: main request, subagent request (agent body in `system`), main again.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import FAKE_REPLY, run_claude
from support.fake_api import FakeMessagesAPI, RecordedRequest

AGENT_BODY = "You are the probe agent. Answer every probe with one short line."
AGENT_FILE = f"""---
name: probe-agent
description: "Use for probing."
---
{AGENT_BODY}
"""
COMMAND_FILE = """---
description: "Probe one table"
argument-hint: "[table]"
context: fork
agent: probe-agent
---
#probe $ARGUMENTS
"""


def make_project(root: Path) -> Path:
    """A project with one subagent and one namespaced command that forks into it."""
    (root / ".claude" / "agents").mkdir(parents=True)
    (root / ".claude" / "commands" / "pp").mkdir(parents=True)
    (root / ".claude" / "agents" / "probe-agent.md").write_text(AGENT_FILE)
    (root / ".claude" / "commands" / "pp" / "probe.md").write_text(COMMAND_FILE)
    return root


def system_text(body: dict[str, Any]) -> str:
    """The top-level `system` blocks joined."""
    system = body["system"]
    return system if isinstance(system, str) else "\n".join(b["text"] for b in system)


def texts(message: dict[str, Any]) -> list[str]:
    """A message's text blocks (a string content counts as one)."""
    content = message["content"]
    if isinstance(content, str):
        return [content]
    return [b["text"] for b in content if b.get("type") == "text"]


def model_requests(records: list[RecordedRequest]) -> list[dict[str, Any]]:
    return [r.body for r in records if r.method == "POST" and r.route == "/v1/messages"]


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr[-2000:]!r}"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def plain_run(
    claude_cli: Path,
    module_api: FakeMessagesAPI,
    project: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], list[RecordedRequest]]:
    """`claude -p hello` in the probe project, run once and inspected by several tests."""
    module_api.reset()
    home = tmp_path_factory.mktemp("home")
    return run_claude(claude_cli, module_api, project, ["-p", "hello"], home)


def test_plain_prompt_gets_the_fake_reply(
    plain_run: tuple[subprocess.CompletedProcess[str], list[RecordedRequest]],
) -> None:
    proc, records = plain_run
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.strip() == FAKE_REPLY
    first = records[0]
    assert (first.method, first.path) == ("POST", "/v1/messages?beta=true")
    assert first.body["stream"] is True
    assert first.headers["x-api-key"] == "[redacted]"
    assert texts(first.body["messages"][0])[-1] == "hello"
    # nothing but the model call: no reachability probe, no telemetry, no token counting
    assert [r.route for r in records] == ["/v1/messages"]


def test_first_request_lists_project_agent_and_command(
    plain_run: tuple[subprocess.CompletedProcess[str], list[RecordedRequest]],
) -> None:
    proc, records = plain_run
    assert proc.returncode == 0, explain(proc)
    body = model_requests(records)[0]
    assert "Available agent types" not in system_text(body)
    assert "probe-agent" not in system_text(body)
    listing = body["messages"][1]
    assert listing["role"] == "system"
    (text,) = texts(listing)
    agents = text.split("Available agent types for the Agent tool:")[1]
    assert "\n- probe-agent: Use for probing. (Tools: All tools)\n" in agents
    skills = text.split("The following skills are available for use with the Skill tool:")[1]
    assert "\n- pp:probe: Probe one table\n" in skills


def test_forked_command_runs_in_the_agent(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, tmp_path: Path
) -> None:
    proc, records = run_claude(claude_cli, api, project, ["-p", "/pp:probe orders table"], tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.strip() == FAKE_REPLY
    (body,) = model_requests(records)
    assert body["system"][2]["text"].startswith(AGENT_BODY)
    user = body["messages"][0]
    assert user["role"] == "user"
    assert texts(user)[-1] == "#probe orders table\n"
    assert "#probe orders table" not in system_text(body)


def test_agent_tool_call_reaches_the_agent(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, tmp_path: Path
) -> None:
    api.queue_reply(
        {
            "name": "Agent",
            "input": {
                "description": "probe orders",
                "prompt": "Probe the orders table.",
                "subagent_type": "probe-agent",
                "run_in_background": False,
            },
        },
        "probe result",
        "main reply after the probe",
    )
    proc, records = run_claude(claude_cli, api, project, ["-p", "probe orders"], tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.strip() == "main reply after the probe"
    main, sub, main_again = model_requests(records)
    assert AGENT_BODY not in system_text(main)
    assert system_text(sub).count(AGENT_BODY) == 1
    assert texts(sub["messages"][0])[-1] == "Probe the orders table."
    tool_result = main_again["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result"
    assert "probe result" in str(tool_result["content"])
