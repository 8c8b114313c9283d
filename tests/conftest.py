"""Shared fixtures: a fake Messages API, and the real Claude Code CLI pointed at it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from support.fake_api import FakeMessagesAPI, RecordedRequest

REPO = Path(__file__).resolve().parents[1]
CLAUDE_BIN = REPO / ".tools" / "claude" / "node_modules" / ".bin" / "claude"
CLAUDE_VERSION = "2.1.328"
DUMMY_API_KEY = "sk-ant-test-not-a-real-key"

QUIET_ENV = {
    # The one that matters: without it Claude Code 2.1.328 resolves api.anthropic.com and sends
    # HEAD /api/hello to the base URL before the first message.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    # Without it, failed telemetry events are written under ~/.claude/telemetry.
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
}
"""Keeps Claude Code talking to the fake API only (checked with strace on 2.1.328)."""

PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
"""The only variables taken from the caller's environment, so no real key or session leaks in."""


@pytest.fixture
def fake_api() -> Iterator[FakeMessagesAPI]:
    """A running fake Messages API on 127.0.0.1, stopped after the test."""
    with FakeMessagesAPI() as api:
        yield api


FAKE_REPLY = "pong from the fake"
"""What `module_api` answers when a test queues nothing."""


@pytest.fixture(scope="module")
def module_api() -> Iterator[FakeMessagesAPI]:
    """One server for a module (Claude Code runs are many); use `api`, which resets it."""
    with FakeMessagesAPI(default_reply=FAKE_REPLY) as api:
        yield api


@pytest.fixture
def api(module_api: FakeMessagesAPI) -> FakeMessagesAPI:
    """The module's server, reset: a test sees only its own run's records."""
    module_api.reset()
    return module_api


@pytest.fixture(scope="session")
def claude_cli() -> Path:
    """The Claude Code binary: `$PLUMBER_CLAUDE_BIN`, else the one `.ci/install-claude` puts in
    `.tools/`. Missing is a failure, never a skip: CI installs it, so its absence is a bug."""
    override = os.environ.get("PLUMBER_CLAUDE_BIN")
    path = Path(override) if override else CLAUDE_BIN
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"Claude Code CLI not found at {path}: run `bash .ci/install-claude` "
            f"(installs @anthropic-ai/claude-code@{CLAUDE_VERSION} into .tools/claude) "
            "or set PLUMBER_CLAUDE_BIN to a claude binary",
            pytrace=False,
        )
    if not override:
        version = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
        if not version.startswith(CLAUDE_VERSION + " "):
            pytest.fail(
                f"{path} is {version.strip()!r}, the tests pin {CLAUDE_VERSION}: "
                "run `bash .ci/install-claude`",
                pytrace=False,
            )
    return path


def claude_env(
    fake_api: FakeMessagesAPI, home: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for one Claude Code run against `fake_api` with `home` as its HOME."""
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        CLAUDE_CODE_TMPDIR=str(tmp),
        ANTHROPIC_BASE_URL=fake_api.base_url,
        ANTHROPIC_API_KEY=DUMMY_API_KEY,
        **QUIET_ENV,
    )
    env.update(extra or {})
    return env


def run_claude(
    claude_cli: Path,
    fake_api: FakeMessagesAPI,
    cwd: Path,
    args: Sequence[str],
    home: Path,
    *,
    timeout: float = 120,
    permission_mode: str | None = "acceptEdits",
    env: Mapping[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], list[RecordedRequest]]:
    """Run `claude ARGS` in `cwd` against `fake_api`; return the process and the requests the
    fake recorded during this run (so a shared server works, as long as runs don't overlap).

    `--dangerously-skip-permissions` is refused as root, so edits are allowed with
    `--permission-mode acceptEdits` unless `permission_mode` is None or `args` sets one.
    """
    command = [str(claude_cli), *args]
    if permission_mode and "--permission-mode" not in args:
        command += ["--permission-mode", permission_mode]
    before = len(fake_api.requests())
    proc = subprocess.run(
        command,
        cwd=cwd,
        env=claude_env(fake_api, home, env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc, fake_api.requests()[before:]
