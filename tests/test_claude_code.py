"""Proof in the real Claude Code 2.1.328: what `plumber install` and the plugin give a session.

Claude Code runs against the fake Messages API on 127.0.0.1 with HOME in a temporary folder and
a dummy key, so nothing here needs a network or an account. What each test reads is the request
Claude Code sends: the first one lists the agents and the skills (commands) the session sees; a
`/de:<name>` command forks into our agent, so its request carries the agent's body as the system
prompt and the expanded command as the user's message.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import FAKE_REPLY, claude_env, run_claude
from install_support import AGENT, COMMANDS, REPO
from pipeline_plumber import frontmatter
from pipeline_plumber.kb import load_kb
from support.cli import plumber
from support.fake_api import FakeMessagesAPI, RecordedRequest

PROMPT = "/de:schema orders for a web shop"
AGENTS_HEADER = "Available agent types for the Agent tool:"
SKILLS_HEADER = "The following skills are available for use with the Skill tool:"


def _fields(path: Path) -> dict[str, Any]:
    fields, _, _ = frontmatter.split(path.read_text())
    assert fields is not None, path
    return fields


AGENT_DESCRIPTION = _fields(REPO / AGENT)["description"]
AGENT_BODY = frontmatter.split((REPO / AGENT).read_text())[1]
KB = load_kb(REPO / "kb")
NO_ARGUMENTS = f"{KB.commands.no_arguments_label}: {KB.command('schema').no_arguments}"
COMMAND_DESCRIPTIONS = {
    name: _fields(REPO / "commands" / f"{name}.md")["description"] for name in COMMANDS
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


# --- reading the requests ------------------------------------------------------------------------


def model_requests(records: list[RecordedRequest]) -> list[dict[str, Any]]:
    return [r.body for r in records if r.method == "POST" and r.route == "/v1/messages"]


def all_texts(body: dict[str, Any]) -> list[str]:
    """Every text block of a request: the system prompt's and each message's."""
    blocks: list[Any] = []
    system = body.get("system", [])
    blocks += [system] if isinstance(system, str) else system
    for message in body["messages"]:
        content = message["content"]
        blocks += [content] if isinstance(content, str) else content
    return [b if isinstance(b, str) else b.get("text", "") for b in blocks]


def system_text(body: dict[str, Any]) -> str:
    system = body["system"]
    return system if isinstance(system, str) else "\n".join(b["text"] for b in system)


def listed(body: dict[str, Any], header: str) -> list[str]:
    """The `- name: description` lines under `header` in the request (fails if it is absent)."""
    for text in all_texts(body):
        if header in text:
            lines = text.split(header, 1)[1].strip("\n").splitlines()
            items = []
            for line in lines:
                if not line.startswith("- "):
                    break
                items.append(line[2:])
            return items
    raise AssertionError(f"{header!r} is not in the request")


def agent_lines(body: dict[str, Any], name: str) -> list[str]:
    return [line for line in listed(body, AGENTS_HEADER) if line.startswith(f"{name}: ")]


def our_skills(body: dict[str, Any]) -> dict[str, str]:
    """{'de:schema': description, ...} among the listed skills."""
    skills = {}
    for line in listed(body, SKILLS_HEADER):
        name, _, description = line.partition(": ")
        if name.startswith("de:"):
            skills[name] = description
    return skills


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr[-2000:]!r}"


def claude(
    claude_cli: Path, api: FakeMessagesAPI, cwd: Path, home: Path, *args: str
) -> list[dict[str, Any]]:
    """`claude ARGS`; the model requests it made. Fails unless it ran cleanly."""
    proc, records = run_claude(claude_cli, api, cwd, list(args), home)
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.strip() == FAKE_REPLY, explain(proc)
    requests = model_requests(records)
    assert requests, explain(proc)
    return requests


# --- what the session sees -----------------------------------------------------------------------


def assert_sees_the_pack(body: dict[str, Any], agent: str) -> None:
    """The agent is listed with our description, and the ten /de: commands with theirs."""
    (line,) = agent_lines(body, agent)
    assert line.startswith(f"{agent}: {AGENT_DESCRIPTION} (Tools: "), line
    assert our_skills(body) == {f"de:{name}": COMMAND_DESCRIPTIONS[name] for name in COMMANDS}


def assert_sees_nothing_of_ours(body: dict[str, Any]) -> None:
    agents = listed(body, AGENTS_HEADER)
    assert any(line.startswith("general-purpose: ") for line in agents), agents  # list is real
    assert not [line for line in agents if "data-engineer" in line.partition(": ")[0]], agents
    assert our_skills(body) == {}


def assert_schema_runs_in_the_agent(requests: list[dict[str, Any]]) -> None:
    """`/de:schema ...` forks: one request, straight to the agent, with the command as the
    user's message."""
    (body,) = requests
    assert AGENT_BODY.strip() in system_text(body)
    user = body["messages"][0]
    assert user["role"] == "user"
    assert all_texts({"messages": [user]})[-1].startswith("#schema orders for a web shop\n")


def test_de_schema_without_arguments_forks_with_the_new_body(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, home: Path
) -> None:
    """`/de:schema` typed alone still forks into the agent, whose system prompt carries How you
    work, Never and How to verify, and the command tells it what to do with nothing to go on."""
    install(project)
    (body,) = claude(claude_cli, api, project, home, "-p", "/de:schema")
    system = system_text(body)
    assert AGENT_BODY.strip() in system
    for heading in ("## How you work", "## Never", "## How to verify"):
        assert f"\n{heading}\n" in system, heading
    message = all_texts({"messages": [body["messages"][0]]})[-1]
    assert message.split("\n", 1)[0].strip() == "#schema", message[:80]
    assert f"{NO_ARGUMENTS}\n" in message, message
    assert "ARGUMENTS:" not in message


def install(project: Path, *args: str, home: Path | None = None) -> None:
    result = plumber("install", *args, cwd=project, home=home)
    assert result.exit_code == 0, result.output


# --- 1, 2, 4: project install, then uninstall ----------------------------------------------------


def test_project_install_runs_de_schema_in_the_agent(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, home: Path
) -> None:
    install(project)
    assert_schema_runs_in_the_agent(claude(claude_cli, api, project, home, "-p", PROMPT))


def test_project_install_lists_the_agent_and_the_commands(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, home: Path
) -> None:
    install(project)
    first = claude(claude_cli, api, project, home, "-p", "hello")[0]
    assert_sees_the_pack(first, "data-engineer")


def test_after_uninstall_the_session_sees_none_of_it(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, home: Path
) -> None:
    install(project)
    assert agent_lines(claude(claude_cli, api, project, home, "-p", "hello")[0], "data-engineer")
    result = plumber("uninstall", cwd=project)
    assert result.exit_code == 0, result.output
    api.reset()
    assert_sees_nothing_of_ours(claude(claude_cli, api, project, home, "-p", "hello")[0])


# --- 3: user scope, and the plugin ----------------------------------------------------------------


def test_kept_files_are_loaded_and_their_new_versions_are_not(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, home: Path
) -> None:
    """An edited command and agent are kept, their package versions written beside them as
    `.new`: the session sees the user's versions, once each, and nothing from a `.new` file."""
    install(project)
    schema = project / ".claude" / "commands" / "de" / "schema.md"
    agent = project / ".claude" / AGENT
    for path, description in ((schema, "Our team's schema review"), (agent, "Our data engineer")):
        text = path.read_text()
        edited = re.sub(r"^description: .*$", f"description: {description}", text, count=1,
                        flags=re.M)
        assert edited != text
        path.write_text(edited)
    result = plumber("install", cwd=project)
    assert result.exit_code == 0, result.output
    assert schema.with_name("schema.md.new").is_file()
    assert agent.with_name(f"{agent.name}.new").is_file()

    body = claude(claude_cli, api, project, home, "-p", "hello")[0]
    assert [line.partition(" (Tools:")[0] for line in agent_lines(body, "data-engineer")] == [
        "data-engineer: Our data engineer"]
    skills = our_skills(body)
    assert skills.pop("de:schema") == "Our team's schema review"
    assert skills == {f"de:{name}": COMMAND_DESCRIPTIONS[name]
                      for name in COMMANDS if name != "schema"}


def test_user_scope_install_is_seen_from_any_project(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, home: Path
) -> None:
    install(project, "--scope", "user", home=home)
    assert (home / ".claude" / AGENT).is_file()
    assert not (project / ".claude").exists()
    assert_sees_the_pack(claude(claude_cli, api, project, home, "-p", "hello")[0], "data-engineer")
    api.reset()
    assert_schema_runs_in_the_agent(claude(claude_cli, api, project, home, "-p", PROMPT))
    assert plumber("uninstall", "--scope", "user", cwd=project, home=home).exit_code == 0
    api.reset()
    assert_sees_nothing_of_ours(claude(claude_cli, api, project, home, "-p", "hello")[0])


def test_plugin_dir_lists_the_plugin_agent_and_the_same_commands(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, home: Path
) -> None:
    first = claude(claude_cli, api, project, home, "--plugin-dir", str(REPO), "-p", "hello")[0]
    assert_sees_the_pack(first, "de:data-engineer")
    assert not agent_lines(first, "data-engineer")


def test_plugin_dir_runs_de_schema_in_the_plugin_agent(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, home: Path
) -> None:
    assert_schema_runs_in_the_agent(
        claude(claude_cli, api, project, home, "--plugin-dir", str(REPO), "-p", PROMPT)
    )


def test_in_a_plugin_a_bare_agent_name_does_not_reach_the_agent(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, home: Path, tmp_path: Path
) -> None:
    """Why the repository's commands say `agent: de:data-engineer` where a project install says
    `agent: data-engineer`: the same plugin with the bare name runs the command elsewhere."""
    plugin = tmp_path / "plugin"
    for folder in (".claude-plugin", "agents", "commands"):
        shutil.copytree(REPO / folder, plugin / folder)
    schema = plugin / "commands" / "schema.md"
    text = schema.read_text()
    assert "\nagent: de:data-engineer\n" in text
    schema.write_text(text.replace("\nagent: de:data-engineer\n", "\nagent: data-engineer\n"))
    (body,) = claude(claude_cli, api, project, home, "--plugin-dir", str(plugin), "-p", PROMPT)
    assert AGENT_BODY.strip() not in system_text(body)


def test_marketplace_add_then_plugin_install(
    claude_cli: Path, api: FakeMessagesAPI, project: Path, home: Path
) -> None:
    env = claude_env(api, home)
    for args in (
        ["plugin", "marketplace", "add", str(REPO)],
        ["plugin", "install", "de@pipeline-plumber"],
    ):
        proc = subprocess.run(
            [str(claude_cli), *args], cwd=project, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )
        assert proc.returncode == 0, explain(proc)
    first = claude(claude_cli, api, project, home, "-p", "hello")[0]
    assert_sees_the_pack(first, "de:data-engineer")
    api.reset()
    assert_schema_runs_in_the_agent(claude(claude_cli, api, project, home, "-p", PROMPT))


# --- the validator --------------------------------------------------------------------------------


def validate(claude_cli: Path, folder: Path, home: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [str(claude_cli), "plugin", "validate", "--strict", "--json", str(folder)],
        capture_output=True, text=True, timeout=120, check=False,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "DISABLE_TELEMETRY": "1",
             "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
    )
    assert proc.returncode == 0, explain(proc)
    report = json.loads(proc.stdout)
    assert isinstance(report, dict) and report["success"] is True, proc.stdout
    return report


def test_strict_validation_of_the_repository_marketplace_and_plugin(
    claude_cli: Path, home: Path
) -> None:
    marketplace = validate(claude_cli, REPO, home)
    assert marketplace["manifest"]["type"] == "marketplace"
    plugin = validate(claude_cli, REPO / ".claude-plugin" / "plugin.json", home)
    assert plugin["manifest"]["type"] == "plugin"
    for report in (marketplace, plugin):
        assert sorted(report["provides"]["commands"]) == [f"de:{name}" for name in COMMANDS]
        assert report["provides"]["agents"] == ["de:data-engineer"]


def test_strict_validation_of_a_project_after_install(
    claude_cli: Path, project: Path, home: Path
) -> None:
    install(project, "--model", "sonnet")
    report = validate(claude_cli, project, home)
    assert report["success"] is True
