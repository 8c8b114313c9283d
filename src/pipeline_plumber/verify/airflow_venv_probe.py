# mypy: disable-error-code="import-not-found"
# (Airflow lives in its own virtualenv, not in the environment that type-checks the project.)
"""Load one DAG file with Airflow's own parser and, on request, run it once with ``dag.test()``.

This file is a standalone script for the separate Airflow virtualenv (``plumber setup airflow``
makes it in plumber's cache folder). It imports nothing from pipeline_plumber and needs only
the standard library and Airflow 3, because Airflow's hundreds of pins must never meet the
project's own environment. The project runs it as a subprocess::

    <airflow venv>/bin/python airflow_venv_probe.py DAG_FILE [--test] [--logical-date ISO|none]

and reads ONE JSON object from stdout (everything Airflow logs goes to stderr). Exit status 0
means the probe did its job, whatever it found in the DAG; 2 means it could not (bad usage, no
Airflow, a run longer than --timeout), and the JSON then has ``probe_error``.

Why each choice:
- A fresh temporary AIRFLOW_HOME per call, with a SQLite metadata database created in-process by
  ``airflow.utils.db.initdb()`` (what ``airflow db migrate`` does on an empty database, without
  paying for a second interpreter), so runs never share state and nothing outside is touched.
- The DAG file is parsed where it lies, so import errors and warnings name the user's path.
- ``dag.test()`` creates a run only for a DAG serialised from a bundle, so for ``--test`` the
  file is copied alone into the temporary ``dags/`` folder (the default ``dags-folder`` bundle);
  its siblings are never parsed.
- Warnings are recorded with ``simplefilter("always")``. Airflow's importer records them itself
  and re-emits them as plain UserWarning; the original category (for example
  ``airflow.utils.deprecation_tools.DeprecatedImportWarning``) is taken back from
  ``DagBag.captured_warnings``.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

# Run as a script, this file's folder comes first on sys.path, and that folder holds
# pipeline_plumber's own `verify/airflow.py`: drop it so `import airflow` finds Airflow.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

PROBE_VERSION = 1
MAX_VALUE_CHARS = 2000  # a return value longer than this is cut in the report


class ProbeError(Exception):
    """The probe could not do its job; reported as ``probe_error`` with exit status 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line; a bad one becomes a ProbeError, never argparse's own exit."""

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise ProbeError(f"usage: {message}")

    parser = _Parser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dag_file", type=Path)
    parser.add_argument("--test", action="store_true", help="run each DAG once with dag.test()")
    parser.add_argument(
        "--logical-date",
        default=None,
        help="ISO 8601 logical date for --test, or 'none' for a run without one "
        "(default: Airflow's, the current time)",
    )
    parser.add_argument("--dag-id", default=None, help="test only this DAG of the file")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before the probe gives up"
    )
    return parser.parse_args(argv)


def logical_date_arg(text: str | None) -> tuple[bool, datetime | None]:
    """Return (given, value): 'none' means an explicit run without a logical date."""
    if text is None:
        return False, None
    if text.lower() == "none":
        return True, None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise ProbeError(f"--logical-date: {text!r} is not an ISO 8601 date-time") from err
    if value.tzinfo is None:
        raise ProbeError(f"--logical-date: {text!r} needs a time zone, e.g. {text}+00:00")
    return True, value


def isolated_environment(home: Path) -> None:
    """Point Airflow at an empty home before it is imported: it reads its config at import."""
    for key in [k for k in os.environ if k.startswith("AIRFLOW__") or k == "AIRFLOW_CONFIG"]:
        del os.environ[key]
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACK_DEPTH": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__SENTRY__SENTRY_ON": "False",
            "AIRFLOW__TRACES__OTEL_ON": "False",
            "AIRFLOW__METRICS__STATSD_ON": "False",
            "NO_PROXY": "*",
        }
    )
    (home / "dags").mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[TextIO]:
    """Send everything written to fd 1 (task logs, prints in DAG code) to fd 2, for good.

    Yields a stream on the original stdout, which carries only the JSON report. fd 1 is not
    given back afterwards: whatever Airflow prints at exit must not follow the report.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    with os.fdopen(saved, "w", encoding="utf-8") as report:
        yield report


def warning_record(w: warnings.WarningMessage, captured: Iterable[str]) -> dict[str, Any]:
    """Describe one warning; restore the category Airflow's re-emission replaced.

    ``captured`` holds DagBag's lines "file:line: module.Category: message".
    """
    category = w.category.__name__
    if (module := w.category.__module__) != "builtins":
        category = f"{module}.{category}"
    message = str(w.message)
    prefix, suffix = f"{w.filename}:{w.lineno}: ", f": {message}"
    for line in captured:
        if line.startswith(prefix) and line.endswith(suffix):
            category = line[len(prefix) : len(line) - len(suffix)]
            break
    return {"category": category, "message": message, "filename": w.filename, "lineno": w.lineno}


def counted(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per distinct warning, with how often it was raised (once per task, often)."""
    seen: dict[str, dict[str, Any]] = {}
    for record in records:
        key = json.dumps(record, sort_keys=True, default=str)
        if key in seen:
            seen[key]["count"] += 1
        else:
            seen[key] = {**record, "count": 1}
    return list(seen.values())


def last_line(text: str) -> str:
    """The line of a traceback that names the exception."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def jsonable(value: Any) -> Any:
    """A value as plain JSON when it is, else its repr; long ones are cut to a string."""
    if isinstance(value, dict) and isinstance(value.get("__data__"), str):
        # Airflow's serde envelope (a DataFrame is hex-encoded Parquet): keep the class, not
        # the payload
        value = {**value, "__data__": f"<{len(value['__data__'])} characters>"}
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) > MAX_VALUE_CHARS:
        return text[:MAX_VALUE_CHARS] + "..."
    return json.loads(text)


def iso(value: Any) -> str | None:
    """ISO 8601 for a datetime-like value, None for None."""
    return None if value is None else value.isoformat()


def parse_dag_file(dag_file: Path) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """Import the file with Airflow 3's DagBag; return the bag, warnings and import errors."""
    from airflow.dag_processing.dagbag import DagBag

    kwargs: dict[str, Any] = {"dag_folder": str(dag_file), "safe_mode": False}
    # Airflow 3.0-3.2 take include_examples; 3.3 dropped it (examples come from a bundle,
    # which AIRFLOW__CORE__LOAD_EXAMPLES=False turns off).
    if "include_examples" in inspect.signature(DagBag.__init__).parameters:
        kwargs["include_examples"] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(**kwargs)
    captured = [line for lines in getattr(bag, "captured_warnings", {}).values() for line in lines]
    found = counted(warning_record(w, captured) for w in caught)
    errors = {
        "import_errors": [
            {"file": file, "message": last_line(text), "traceback": text}
            for file, text in sorted(bag.import_errors.items())
        ]
    }
    return bag, found, errors


def timetable_info(dag: Any) -> dict[str, Any]:
    """Name the timetable the way the UI does: class, summary and human description."""
    timetable = dag.timetable
    try:
        from airflow.serialization.encoders import coerce_to_core_timetable

        timetable = coerce_to_core_timetable(timetable)
    except ImportError:  # older 3.x keep core timetables on the DAG already
        pass
    cls = type(timetable)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "summary": getattr(timetable, "summary", None),
        "description": getattr(timetable, "description", None),
        "periodic": getattr(timetable, "periodic", None),
    }


def dag_info(dag: Any) -> dict[str, Any]:
    """What the knowledge base asserts about a DAG: ids, schedule, start and catchup."""
    return {
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "task_ids": sorted(dag.task_ids),
        "schedule": jsonable(getattr(dag, "schedule", None)),
        "timetable": timetable_info(dag),
        "start_date": iso(getattr(dag, "start_date", None)),
        "catchup": getattr(dag, "catchup", None),
        "max_active_runs": getattr(dag, "max_active_runs", None),
    }


def return_values(dag_run: Any) -> dict[str, Any]:
    """The ``return_value`` XCom of each task instance, keyed 'task_id' or 'task_id[i]'."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    values: dict[str, Any] = {}
    with create_session() as session:
        rows = session.query(XComModel).filter(
            XComModel.dag_id == dag_run.dag_id,
            XComModel.run_id == dag_run.run_id,
            XComModel.key == "return_value",
        )
        for row in rows:
            key = row.task_id if row.map_index < 0 else f"{row.task_id}[{row.map_index}]"
            try:
                values[key] = jsonable(XComModel.deserialize_value(row))
            except Exception as err:  # a value Airflow stored but cannot read back
                values[key] = f"<undeserialisable: {type(err).__name__}: {err}>"
    return values


@contextlib.contextmanager
def recording_task_errors() -> Iterator[dict[tuple[str, int], str]]:
    """Keep the exception of each failed task instance, which dag.test() only logs.

    Wraps dag.test()'s private per-task helper; where an Airflow release lacks it, the report
    simply has no ``error`` fields.
    """
    errors: dict[tuple[str, int], str] = {}
    try:
        import airflow.sdk.definitions.dag as sdk_dag
    except ImportError:
        yield errors
        return
    original = getattr(sdk_dag, "_run_task", None)
    if original is None:
        yield errors
        return

    def run_task(**kwargs: Any) -> Any:
        result = original(**kwargs)
        error = getattr(result, "error", None)
        if error is not None:
            ti = kwargs["ti"]
            errors[(ti.task_id, ti.map_index)] = f"{type(error).__name__}: {error}"
        return result

    sdk_dag._run_task = run_task
    try:
        yield errors
    finally:
        sdk_dag._run_task = original


def state_name(state: Any) -> str | None:
    """'success' for TaskInstanceState.SUCCESS, None for no state."""
    return None if state is None else str(getattr(state, "value", state))


def run_test(dag: Any, logical_date: tuple[bool, datetime | None], copy: Path) -> dict[str, Any]:
    """Run one DagRun with dag.test(); report run and task states, dates, values, warnings.

    Warnings from dag.test()'s own re-parse of the copied file repeat the import warnings and
    are left out.
    """
    given, value = logical_date
    started = time.perf_counter()
    with recording_task_errors() as errors, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dag_run = dag.test(logical_date=value) if given else dag.test()
    elapsed = time.perf_counter() - started
    instances = sorted(dag_run.get_task_instances(), key=lambda ti: (ti.task_id, ti.map_index))
    return {
        "dag_id": dag.dag_id,
        "state": state_name(dag_run.state),
        "run_id": dag_run.run_id,
        "logical_date": iso(dag_run.logical_date),
        "data_interval_start": iso(dag_run.data_interval_start),
        "data_interval_end": iso(dag_run.data_interval_end),
        "run_after": iso(getattr(dag_run, "run_after", None)),
        "task_instances": [
            {
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "state": state_name(ti.state),
                "try_number": ti.try_number,
                "error": errors.get((ti.task_id, ti.map_index)),
            }
            for ti in instances
        ],
        "return_values": return_values(dag_run),
        "warnings": counted(warning_record(w, ()) for w in caught if Path(w.filename) != copy),
        "seconds": round(elapsed, 3),
    }


def probe(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """Do the work of one call inside an isolated AIRFLOW_HOME (``home``); return the report."""
    dag_file = args.dag_file.resolve()
    if not dag_file.is_file():
        raise ProbeError(f"{args.dag_file}: no such file")
    logical_date = logical_date_arg(args.logical_date)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    isolated_environment(home)
    try:
        import airflow
    except ImportError as err:
        raise ProbeError(
            f"cannot import airflow ({err}); run this with .venv-airflow/bin/python "
            "(made by .ci/install-airflow)"
        ) from err
    timings["import_airflow"] = time.perf_counter() - started

    report: dict[str, Any] = {
        "probe_version": PROBE_VERSION,
        "airflow_version": airflow.__version__,
        "python_version": sys.version.split()[0],
        "dag_file": str(dag_file),
    }

    started = time.perf_counter()
    bag, found, errors = parse_dag_file(dag_file)
    timings["parse"] = time.perf_counter() - started
    report.update(errors)
    report["warnings"] = found
    report["dag_ids"] = sorted(bag.dag_ids)
    report["dags"] = [dag_info(bag.dags[dag_id]) for dag_id in sorted(bag.dag_ids)]

    if args.test:
        selected = [d for d in sorted(bag.dag_ids) if args.dag_id in (None, d)]
        if args.dag_id is not None and not selected:
            raise ProbeError(f"--dag-id {args.dag_id!r}: the file defines {sorted(bag.dag_ids)}")
        started = time.perf_counter()
        from airflow.utils import db

        db.initdb()
        timings["init_db"] = time.perf_counter() - started
        copy = home / "dags" / dag_file.name
        shutil.copy2(dag_file, copy)
        started = time.perf_counter()
        report["tests"] = [run_test(bag.dags[d], logical_date, copy) for d in selected]
        timings["test"] = time.perf_counter() - started
    report["timings"] = {name: round(seconds, 3) for name, seconds in timings.items()}
    return report


def write_report(out: TextIO, report: dict[str, Any], started: float) -> None:
    """The one JSON object on stdout."""
    report["seconds"] = round(time.perf_counter() - started, 3)
    json.dump(report, out, indent=2, sort_keys=True)
    out.write("\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    """Print one JSON report; 0 when the probe did its job, 2 when it could not.

    --timeout is enforced by a watchdog thread that reports and leaves with os._exit: SIGALRM is
    no use, since Airflow's task runner takes that signal for execution_timeout, and an
    exception could be swallowed by dag.test(), which catches Exception around each task.
    """
    started = time.perf_counter()
    with stdout_to_stderr() as out:
        home = Path(tempfile.mkdtemp(prefix="airflow-probe-"))
        writing = threading.Lock()  # the watchdog and the main thread: one report only

        def give_up(seconds: float) -> None:
            if writing.acquire(blocking=False):
                error = f"timed out after {seconds:g} s (--timeout)"
                write_report(out, {"probe_version": PROBE_VERSION, "probe_error": error}, started)
                shutil.rmtree(home, ignore_errors=True)
                os._exit(2)

        code = 0
        try:
            args = parse_args(argv)
            watchdog = threading.Timer(args.timeout, give_up, (args.timeout,))
            watchdog.daemon = True
            watchdog.start()
            report = probe(args, home)
        except ProbeError as err:
            report, code = {"probe_version": PROBE_VERSION, "probe_error": str(err)}, 2
        except Exception as err:  # Airflow itself broke: still answer with one JSON object
            message = f"{type(err).__name__}: {err}"
            report = {"probe_version": PROBE_VERSION, "probe_error": message}
            report["traceback"], code = traceback.format_exc(), 2
        writing.acquire()  # and never released: after this report, the watchdog writes nothing
        write_report(out, report, started)
        shutil.rmtree(home, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
