"""Apache Airflow 3 in its own pinned virtualenv, for the knowledge base's DAG examples.

Airflow pins hundreds of packages, so it never shares plumber's environment: `setup_airflow`
creates `<engine cache>/airflow-<version>-py<X.Y>/` with the versions in `airflow-constraints.txt`
(the set that resolved from PyPI for apache-airflow + pandas + pyarrow and passed the probe's
tests; pinning all of it keeps a later release of any dependency from changing what the
examples see), and plumber talks to it only by running `verify/airflow_venv_probe.py` in it.

As root, answers' DAG files are imported by the sandbox account (`nobody`), which must run the
virtualenv's interpreter: the engine cache is then a folder it can reach (`cache`), and the
virtualenv is made from a Python it can run (plumber's own when it can, else the system's
python3.X), checked by running it as that account. `find_airflow_python` is the one lookup
that `verify`, the airflow property family and the tests use.

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
from .cache import engine_cache_dir, make_engine_folder

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
    return engine_cache_dir() / f"airflow-{pins()['apache-airflow']}-py{version}"


def _python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def installed_python() -> Path | None:
    """The python of the provisioned virtualenv when it holds the pinned versions, else None."""
    for venv in sorted(engine_cache_dir().glob(f"airflow-{pins()['apache-airflow']}-py*")):
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
    base = _base_python(python)
    version = _python_version(base)
    venv = env_dir(version)
    started = time.monotonic()
    if force and venv.exists():
        shutil.rmtree(venv)
    (venv / MARKER).unlink(missing_ok=True)
    if not _python_in(venv).exists():
        report(f"creating a virtualenv for Airflow in {venv} (Python {version})")
        make_engine_folder(venv)
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


def _base_python(requested: str | None) -> str:
    """The Python the virtualenv is made from: `requested`, else plumber's own. As root it
    must be one the sandbox account can run (a pyenv under /root is not): else the system's
    python3.X of the same version, then its python3."""
    if requested or not _is_root():
        base = requested or sys.executable
        if _is_root() and not _sandbox_can_run(base):
            raise EnvironmentProblem(f"{base} cannot be run by the sandbox account: pass a "
                                     "Python outside /root, e.g. --python /usr/bin/python3")
        return base
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}",
                  "/usr/bin/python3", "/usr/local/bin/python3"]
    for candidate in candidates:
        if Path(candidate).is_file() and _sandbox_can_run(candidate):
            return candidate
    raise EnvironmentProblem(
        "as root, Airflow's virtualenv must be made from a Python the sandbox account can run, "
        f"and none of {', '.join(candidates)} is: install python3 and python3-venv, or pass "
        "--python")


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _sandbox_can_run(python: str) -> bool:
    """Whether the sandbox account can run `python` and make a virtualenv with it."""
    from ..sandbox.process import Limits, run_sandboxed

    try:
        return run_sandboxed([python, "-c", "import venv, ensurepip"],
                             limits=Limits(wall_s=30)).ok
    except OSError:
        return False


def _python_version(python: str) -> str:
    done = _run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], python)
    version = done.stdout.strip()
    if not re.fullmatch(r"3\.\d+", version):  # checked before any folder is made for it
        raise EnvironmentProblem(f"--python {python} is not a Python 3 interpreter (asked for "
                                 f"its version, it printed {version[:40]!r})")
    return version


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
    """`$PLUMBER_AIRFLOW_PYTHON`, else the virtualenv `plumber setup airflow` made in the engine
    cache; EnvironmentProblem saying how to get one when there is none."""
    override = os.environ.get(AIRFLOW_PYTHON_ENV)
    candidate = Path(override) if override else installed_python()
    if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate.absolute()
    where = override or str(env_dir())
    raise EnvironmentProblem(f"Airflow 3 not found at {where}: {SETUP_HINT}")
