"""Prove a DAG example with Airflow 3 itself, in its own virtualenv (`plumber setup airflow`).

The example is written to `<workdir>/dags/<id>.py`, the proof's `setup` to `<workdir>/<module>.py`
(the local stand-ins for the DAG's external effects; it is on PYTHONPATH), and
`airflow_venv_probe.py` imports the file with Airflow's DagBag and runs it with `dag.test()` at the
logical date in the proof's `run`. Always checked: no import error, no deprecation warning, at
least one DAG, every task instance successful. Then the proof's checks, Python expressions over
`report` (the probe's JSON), `workdir` and `sql(query)` (rows of `<workdir>/warehouse.sqlite`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..engines.airflow_env import find_airflow_python
from ..errors import EnvironmentProblem
from ..kb import Example
from .checks import evaluate
from .core import Env

PROBE = Path(__file__).resolve().parent / "airflow_venv_probe.py"
PROBE_TIMEOUT_S = 240


def airflow_python(env: Env) -> Path:
    """The interpreter of the Airflow virtualenv; EnvironmentProblem when there is none."""
    if env.airflow_python is None:
        env.airflow_python = find_airflow_python()
    return env.airflow_python


def probe(python: Path, dag_file: Path, workdir: Path, logical_date: str | None) -> dict[str, Any]:
    """Run the probe once; its JSON report (EnvironmentProblem if it could not do its job)."""
    command = [str(python), str(PROBE), str(dag_file), "--test"]
    if logical_date:
        command += ["--logical-date", logical_date]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environ["PYTHONPATH"] = str(workdir)
    proc = subprocess.run(command, capture_output=True, text=True, env=environ, cwd=workdir,
                          timeout=PROBE_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvironmentProblem(f"airflow probe ({python}) gave no report: {tail}") from err
    if "probe_error" in report:
        raise EnvironmentProblem(f"airflow probe ({python}): {report['probe_error']}")
    return report


def report_failures(report: dict[str, Any]) -> list[str]:
    """What every DAG example must show: imports cleanly, no deprecations, all tasks succeed."""
    failures = [f"claimed it imports on Airflow {report.get('airflow_version')}; observed "
                f"{e['message']}" for e in report.get("import_errors", [])]
    warnings = list(report.get("warnings", []))
    for test in report.get("tests", []):
        warnings += test.get("warnings", [])
    for w in warnings:
        if "deprecat" in f"{w.get('category')} {w.get('message')}".lower():
            failures.append(f"claimed no deprecation warning; observed {w['category']}: "
                            f"{w['message']} (line {w.get('lineno')})")
    if not report.get("import_errors") and not report.get("dag_ids"):
        failures.append("claimed a DAG; observed the file defines none")
    for test in report.get("tests", []):
        for ti in test.get("task_instances", []):
            if ti.get("state") != "success":
                error = f" ({ti['error']})" if ti.get("error") else ""
                failures.append(f"dag.test(): claimed task '{ti['task_id']}' succeeds; observed "
                                f"{ti.get('state')}{error}")
        if test.get("state") != "success" and not failures:
            failures.append(f"dag.test(): claimed the run succeeds; observed {test.get('state')}")
    return failures


class _Session:
    def __init__(self, ex: Example, python: Path, workdir: Path) -> None:
        self.ex, self.python, self.workdir = ex, python, workdir
        self.dag_file = workdir / "dags" / f"{ex.id.replace('-', '_')}.py"
        self.report: dict[str, Any] = {}
        self.failures: list[str] = []

    def run_example(self) -> BaseException | None:
        assert self.ex.proof is not None
        self.report = probe(self.python, self.dag_file, self.workdir, self.ex.proof.run)
        self.failures += [f for f in report_failures(self.report) if f not in self.failures]
        return None

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.workdir / "warehouse.sqlite") as db:
            return db.execute(query).fetchall()

    def value(self, query: str) -> Any:
        names = {"report": self.report, "workdir": self.workdir, "sql": self.sql}
        return eval(compile(query, f"<{self.ex.id} check>", "eval"), names)

    def result(self, query: str) -> Any:
        return self.value(query)

    def returned(self) -> list[tuple[Any, ...]] | None:  # pragma: no cover - rejected by kb.py
        return None

    def plan(self, query: str, analyze: bool) -> str:  # pragma: no cover - rejected by kb.py
        raise NotImplementedError("the airflow engine has no plans")

    def statement(self, statement: str) -> BaseException | None:  # pragma: no cover
        raise NotImplementedError("the airflow engine has no statements")


def prove(ex: Example, deps: Sequence[Example], env: Env) -> list[str]:
    assert ex.proof is not None
    python = airflow_python(env)
    with tempfile.TemporaryDirectory(prefix="plumber-airflow-") as tmp:
        workdir = Path(tmp)
        (workdir / "dags").mkdir()
        session = _Session(ex, python, workdir)
        session.dag_file.write_text(ex.code + "\n", encoding="utf-8")
        module = (ex.proof.module or "harness").replace("-", "_")
        (workdir / f"{module}.py").write_text(ex.proof.setup or "", encoding="utf-8")
        session.run_example()
        if session.failures:
            return session.failures
        failures = evaluate(ex.proof, session, None)
        return session.failures + failures

