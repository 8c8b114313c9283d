"""Shared fixtures: every test as a fresh user in a fresh folder, a fake Messages API, the real
Claude Code CLI pointed at it, and the markers of the tests that need engines or Claude Code."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from pipeline_plumber.engines import airflow_env
from pipeline_plumber.engines.cache import CACHE_ENV, cache_dir
from pipeline_plumber.errors import EnvironmentProblem
from support.fake_api import FakeMessagesAPI, RecordedRequest

REPO = Path(__file__).resolve().parents[1]


def _airflow_python() -> str | None:
    try:
        return str(airflow_env.find_airflow_python())
    except (EnvironmentProblem, OSError):  # OSError: an account that may not look (nobody)
        return None  # the tests that need Airflow fail with the product's own hint


USER_CACHE = cache_dir()
"""The real user's cache folder (`plumber setup airflow` put Airflow there), resolved at session
start, before `isolated_user` moves HOME; only the test of `setup airflow` itself looks in it."""
AIRFLOW_PYTHON = _airflow_python()
"""Airflow's python, found the way `verify` finds it before HOME moves, and then handed to every
test through PLUMBER_AIRFLOW_PYTHON."""

ENGINE_FIXTURES = frozenset({"pg", "dsn", "resources", "sandbox"})
"""Fixtures that start PostgreSQL (or a sandbox over PostgreSQL and DuckDB): a test using one is
marked `engines`, and one using `claude_cli` is marked `claude`, without being told to."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & ENGINE_FIXTURES:
            item.add_marker(pytest.mark.engines)
        if "claude_cli" in fixtures:
            item.add_marker(pytest.mark.claude)


USER_FOLDERS = {
    "XDG_CACHE_HOME": ".cache",
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
}


@pytest.fixture(autouse=True)
def isolated_user(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                  ) -> Path:
    """Each test runs as a new user (HOME, the XDG folders and plumber's cache in a temporary
    folder) from a new working folder, where plumber's `.plumber/` run folders land: nothing a
    test does reaches the developer's home or the checkout, and nothing there changes a result.
    Airflow and Claude Code are still found (PLUMBER_AIRFLOW_PYTHON; `.tools/` by full path)."""
    root = tmp_path_factory.mktemp("user")
    home = root / "home"
    work = root / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for variable, folder in USER_FOLDERS.items():
        monkeypatch.setenv(variable, str(home / folder))
    monkeypatch.setenv(CACHE_ENV, str(home / ".cache" / "pipeline-plumber"))
    if AIRFLOW_PYTHON and not os.environ.get(airflow_env.AIRFLOW_PYTHON_ENV):
        monkeypatch.setenv(airflow_env.AIRFLOW_PYTHON_ENV, AIRFLOW_PYTHON)
    monkeypatch.chdir(work)
    return work
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
