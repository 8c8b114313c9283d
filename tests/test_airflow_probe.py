# ruff: noqa: E501 - SEED_DAG is quoted verbatim, long lines included
"""verify/airflow_venv_probe.py against a real Airflow 3, found as `plumber verify` finds it.

These tests also pin what the knowledge base says about Airflow 3, so an upgrade that changes
the behaviour fails here first. No skips: without Airflow they fail and say how to get it.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from support.airflow import airflow_python

pytestmark = pytest.mark.engines  # Airflow 3 imports and test-runs each DAG

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "src" / "pipeline_plumber" / "verify" / "airflow_venv_probe.py"

TASKFLOW_DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(schedule="0 2 * * *", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def nightly_orders():
    @task
    def extract() -> int:
        return 21

    @task
    def double(n: int) -> int:
        return n * 2

    double(extract())


nightly_orders()
"""

SEED_DAG = """
from airflow import DAG
from airflow.operators.python import PythonOperator
from datetime import datetime, timedelta

# Define DAG
default_args = {
    'owner': 'data-team',
    'retries': 3,  # Retry failed tasks 3 times
    'retry_delay': timedelta(minutes=5),
    'email_on_failure': True,
    'email': ['alerts@company.com']
}

dag = DAG(
    'orders_etl',
    default_args=default_args,
    description='Daily ETL for orders data',
    schedule_interval='0 2 * * *',  # Daily at 2 AM UTC
    start_date=datetime(2024, 1, 1),
    catchup=False,  # Don't backfill historical runs on deploy
    tags=['etl', 'orders'],
)

# Task 1: Extract
def extract_orders(**context):
    date = context['ds']  # Execution date (YYYY-MM-DD)
    orders = fetch_orders_from_api(date)
    context['task_instance'].xcom_push(key='orders', value=orders)

extract_task = PythonOperator(
    task_id='extract_orders',
    python_callable=extract_orders,
    dag=dag,
)

# Task 2: Transform
def transform_orders(**context):
    orders = context['task_instance'].xcom_pull(key='orders', task_ids='extract_orders')
    transformed = clean_and_enrich(orders)
    context['task_instance'].xcom_push(key='transformed_orders', value=transformed)

transform_task = PythonOperator(
    task_id='transform_orders',
    python_callable=transform_orders,
    dag=dag,
)

# Task 3: Load
def load_orders(**context):
    orders = context['task_instance'].xcom_pull(key='transformed_orders', task_ids='transform_orders')
    load_to_warehouse(orders)

load_task = PythonOperator(
    task_id='load_orders',
    python_callable=load_orders,
    dag=dag,
)

# Task 4: Data Quality Check
def quality_check(**context):
    date = context['ds']
    row_count = db.query("SELECT COUNT(*) FROM orders WHERE DATE(created_at) = %s", date)[0]

    if row_count == 0:
        raise DataQualityError(f"No orders loaded for {date}")

quality_task = PythonOperator(
    task_id='quality_check',
    python_callable=quality_check,
    dag=dag,
)

# Define dependencies
extract_task >> transform_task >> load_task >> quality_task
"""
"""Section 5.1 of the seed persona, verbatim."""

PYTHON_OPERATOR_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow.operators.python import PythonOperator


def extract(**context):
    return {"has_ds": "ds" in context, "ds": context.get("ds")}


with DAG("legacy_import", schedule="0 2 * * *", start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    PythonOperator(task_id="extract", python_callable=extract)
"""

FACTS_DAGS = """
from datetime import timedelta

import pandas as pd
import pendulum
from airflow.sdk import (
    CronDataIntervalTimetable, CronTriggerTimetable, dag, get_current_context, task,
)

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def dates_dag(dag_id, schedule):
    @dag(dag_id=dag_id, schedule=schedule, start_date=START)
    def build():
        @task
        def dates() -> dict:
            context = get_current_context()
            keys = ("ds", "logical_date", "data_interval_start", "data_interval_end")
            return {key: str(context.get(key)) for key in keys}

        dates()

    return build()


dates_dag("cron_string", "0 2 * * *")
one_day = timedelta(days=1)
dates_dag("cron_trigger_one_day", CronTriggerTimetable("0 2 * * *", timezone="UTC", interval=one_day))
dates_dag("cron_data_interval", CronDataIntervalTimetable("0 2 * * *", timezone="UTC"))


@dag(schedule=None, start_date=START)
def dataframe_xcom():
    @task
    def extract() -> pd.DataFrame:
        return pd.DataFrame({"order_id": [1, 2], "amount": [9.5, 3.0]})

    @task
    def count(frame: pd.DataFrame) -> int:
        return len(frame)

    count(extract())


dataframe_xcom()


@dag(schedule=None, start_date=START, default_args={"retries": 0})
def failing():
    @task
    def check() -> None:
        raise ValueError("no orders loaded")

    @task
    def publish() -> None:
        pass

    check() >> publish()


failing()
"""


def probe(tmp_path: Path, source: str, *args: str) -> dict[str, Any]:
    """Run the probe in Airflow's virtualenv on ``source``; return its one JSON object."""
    dag_file = tmp_path / "dag_under_test.py"
    dag_file.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    done = subprocess.run(
        [str(airflow_python()), str(PROBE), str(dag_file), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr (end):\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert isinstance(report, dict)
    assert report["dag_file"] == str(dag_file)
    return report


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["dag_id"]: item for item in items}


def test_taskflow_dag_imports_cleanly_and_runs(tmp_path: Path) -> None:
    report = probe(tmp_path, TASKFLOW_DAG, "--test")

    assert report["airflow_version"].startswith("3.")
    assert report["import_errors"] == []
    assert report["warnings"] == []
    assert report["dag_ids"] == ["nightly_orders"]
    [info] = report["dags"]
    assert info["task_ids"] == ["double", "extract"]
    assert info["schedule"] == "0 2 * * *"
    assert info["timetable"]["class"] == "airflow.timetables.trigger.CronTriggerTimetable"
    assert info["timetable"]["description"] == "At 02:00"

    [run] = report["tests"]
    assert run["state"] == "success"
    assert {ti["task_id"]: ti["state"] for ti in run["task_instances"]} == {
        "extract": "success",
        "double": "success",
    }
    assert run["return_values"] == {"extract": 21, "double": 42}
    assert run["warnings"] == []


def test_seed_dag_with_schedule_interval_does_not_import(tmp_path: Path) -> None:
    report = probe(tmp_path, SEED_DAG)

    assert report["dag_ids"] == []
    [error] = report["import_errors"]
    assert "schedule_interval" in error["message"]
    assert error["message"].startswith("TypeError:")


def test_seed_dag_with_schedule_imports_with_deprecation_warnings(tmp_path: Path) -> None:
    report = probe(tmp_path, SEED_DAG.replace("schedule_interval=", "schedule="))

    assert report["import_errors"] == []
    assert report["dag_ids"] == ["orders_etl"]
    categories = {w["message"].split(" on a task")[0]: w["category"] for w in report["warnings"]}
    removed_in_4 = "airflow.sdk.exceptions.RemovedInAirflow4Warning"
    assert categories["Setting email_on_failure"] == removed_in_4
    assert categories["Setting email"] == removed_in_4
    assert "airflow.utils.deprecation_tools.DeprecatedImportWarning" in categories.values()


def test_python_operator_import_warns_and_still_runs(tmp_path: Path) -> None:
    report = probe(tmp_path, PYTHON_OPERATOR_DAG, "--test", "--logical-date", "none")

    assert report["import_errors"] == []
    [warning] = report["warnings"]
    assert warning["category"] == "airflow.utils.deprecation_tools.DeprecatedImportWarning"
    assert "airflow.providers.standard.operators.python.PythonOperator" in warning["message"]
    assert warning["filename"] == report["dag_file"]
    assert warning["lineno"] == 3

    [run] = report["tests"]
    assert run["state"] == "success"
    # A run without a logical date (Airflow 3 allows it) has no `ds` at all.
    assert run["logical_date"] is None
    assert run["return_values"] == {"extract": {"has_ds": False, "ds": None}}


def test_dates_dataframe_xcom_and_task_errors(tmp_path: Path) -> None:
    report = probe(tmp_path, FACTS_DAGS, "--test", "--logical-date", "2024-01-02T02:00:00+00:00")
    assert report["import_errors"] == []
    runs = by_id(report["tests"])

    # A cron string gets CronTriggerTimetable: the run fired at 2024-01-02 02:00 has that as
    # its logical date, so `ds` is the day it fires, and the data interval is empty.
    assert by_id(report["dags"])["cron_string"]["timetable"]["class"].endswith(
        ".CronTriggerTimetable"
    )
    assert runs["cron_string"]["return_values"]["dates"] == {
        "ds": "2024-01-02",
        "logical_date": "2024-01-02 02:00:00+00:00",
        "data_interval_start": "2024-01-02 02:00:00+00:00",
        "data_interval_end": "2024-01-02 02:00:00+00:00",
    }
    # A one-day interval (or CronDataIntervalTimetable) gives the window to load.
    for dag_id in ("cron_trigger_one_day", "cron_data_interval"):
        dates = runs[dag_id]["return_values"]["dates"]
        assert dates["data_interval_start"] == "2024-01-01 02:00:00+00:00", dag_id
        assert dates["data_interval_end"] == "2024-01-02 02:00:00+00:00", dag_id

    # A DataFrame crosses XCom (Parquet, needs pyarrow), stored whole in the metadata database.
    frame = runs["dataframe_xcom"]
    assert frame["state"] == "success"
    assert frame["return_values"]["count"] == 2
    assert frame["return_values"]["extract"]["__classname__"].endswith("DataFrame")

    failed = runs["failing"]
    assert failed["state"] == "failed"
    states = {ti["task_id"]: (ti["state"], ti["error"]) for ti in failed["task_instances"]}
    assert states == {
        "check": ("failed", "ValueError: no orders loaded"),
        "publish": ("upstream_failed", None),
    }


def test_bad_usage_is_reported_as_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(airflow_python()), str(PROBE), str(tmp_path / "missing.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no such file" in json.loads(done.stdout)["probe_error"]
