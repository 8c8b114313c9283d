"""Apache Airflow 3 in its own pinned virtualenv, for the knowledge base's DAG examples.

Airflow pins hundreds of packages, so it never shares plumber's environment: `setup_airflow`
creates `<cache>/airflow-<version>-py<X.Y>/` with the versions in `airflow-constraints.txt`
(the set that resolved from PyPI for apache-airflow + pandas + pyarrow and passed the probe's
tests; pinning all of it keeps a later release of any dependency from changing what the
examples see), and plumber talks to it only by running `verify/airflow_probe.py` in it.

    python = setup_airflow(report=print)      # idempotent: returns at once when it is there
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..errors import EnvironmentProblem
from .cache import cache_dir

AIRFLOW_PYTHON_ENV = "PLUMBER_AIRFLOW_PYTHON"
PINNED = ("apache-airflow", "pandas", "pyarrow")
"""What the examples import; pyarrow because Airflow's XCom writes a returned DataFrame as
Parquet."""
MARKER = "plumber-airflow.json"
SETUP_HINT = (
    "run `plumber setup airflow` (a pinned Airflow 3 virtualenv in the cache folder, about a "
    f"minute) or set {AIRFLOW_PYTHON_ENV} to the python of a virtualenv with apache-airflow 3"
)
PIP_TIMEOUT_S = 1800


def constraints() -> str:
    """The pinned versions, one `name==version` a line."""
    return resources.files(__package__).joinpath("airflow-constraints.txt").read_text("utf-8")


def pins() -> dict[str, str]:
    """The pinned version of each package in PINNED."""
    found = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", constraints(), re.M))
    return {name: found[name] for name in PINNED}


def env_dir(python_version: str | None = None) -> Path:
    """Where `setup_airflow` puts the virtualenv for this Airflow and Python version."""
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    return cache_dir() / f"airflow-{pins()['apache-airflow']}-py{version}"


def _python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def installed_python() -> Path | None:
    """The python of the provisioned virtualenv when it holds the pinned versions, else None."""
    for venv in sorted(cache_dir().glob(f"airflow-{pins()['apache-airflow']}-py*")):
        python = _python_in(venv)
        try:
            marker = json.loads((venv / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if marker == pins() and os.access(python, os.X_OK):
            return python
    return None


def setup_airflow(
    report: Callable[[str], None], *, python: str | None = None, force: bool = False
) -> Path:
    """Create (or complete) the pinned Airflow virtualenv and return its python. `report` gets
    one line per step, and one per package pip collects, so a minute of work is never silent."""
    if not force and (found := installed_python()) is not None:
        report(f"Airflow {pins()['apache-airflow']} is already set up: {found}")
        return found
    base = python or sys.executable
    version = _python_version(base)
    venv = env_dir(version)
    started = time.monotonic()
    if force and venv.exists():
        shutil.rmtree(venv)
    (venv / MARKER).unlink(missing_ok=True)
    if not _python_in(venv).exists():
        report(f"creating a virtualenv for Airflow in {venv} (Python {version})")
        venv.parent.mkdir(parents=True, exist_ok=True)
        _run([base, "-m", "venv", str(venv)], "python -m venv")
    constraint_file = venv / "constraints.txt"
    constraint_file.write_text(constraints(), encoding="utf-8")
    wanted = [f"{name}=={version}" for name, version in pins().items()]
    total = len(re.findall(r"==", constraints()))
    report(f"installing {', '.join(wanted)} and {total - len(wanted)} pinned dependencies "
           "from PyPI (about a minute and 600 MB the first time)")
    _pip_install(_python_in(venv), constraint_file, wanted, total, report)
    _check(_python_in(venv))
    (venv / MARKER).write_text(json.dumps(pins()), encoding="utf-8")
    report(f"Airflow {pins()['apache-airflow']} is set up in {venv} "
           f"({time.monotonic() - started:.0f} s)")
    return _python_in(venv)


def _python_version(python: str) -> str:
    done = _run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], python)
    return done.stdout.strip()


def _pip_install(python: Path, constraint_file: Path, wanted: list[str], total: int,
                 report: Callable[[str], None]) -> None:
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check",
               "--progress-bar", "off", "--constraint", str(constraint_file), *wanted]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        tail: list[str] = []
        collected = 0
        for line in proc.stdout:
            tail = [*tail[-4:], line.rstrip()]
            if line.startswith("Collecting "):
                collected += 1
                name = line.split()[1]
                report(f"  collecting {collected}/{total}: {name}")
            elif line.startswith("Installing collected packages"):
                report(f"  installing {collected} packages")
        code = proc.wait(timeout=PIP_TIMEOUT_S)
    if code != 0:
        last = next((t for t in reversed(tail) if t.strip()), "no output")
        raise EnvironmentProblem(f"pip could not install Airflow into {python.parent.parent}: "
                                 f"{last}")


def _check(python: Path) -> None:
    _run([str(python), "-c", "import airflow.sdk, pandas, pyarrow"],
         f"{python}: airflow.sdk, pandas or pyarrow does not import")


def _run(command: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL, timeout=PIP_TIMEOUT_S)
    except OSError as err:
        raise EnvironmentProblem(f"{what}: {err.strerror or err}") from err
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise EnvironmentProblem(f"{what} failed: {lines[-1]}")
    return done


def find_airflow_python() -> Path:
    """`$PLUMBER_AIRFLOW_PYTHON`, else the provisioned virtualenv, else a checkout's
    `.venv-airflow`; EnvironmentProblem saying how to get one when there is none."""
    override = os.environ.get(AIRFLOW_PYTHON_ENV)
    if override:
        candidates = [Path(override)]
    else:
        provisioned = installed_python()
        candidates = [provisioned] if provisioned else []
        candidates += [Path(".venv-airflow/bin/python"),
                       Path(__file__).resolve().parents[3] / ".venv-airflow" / "bin" / "python"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.absolute()
    where = override or str(env_dir())
    raise EnvironmentProblem(f"Airflow 3 not found at {where}: {SETUP_HINT}")
