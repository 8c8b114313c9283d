"""Airflow's python for the tests that run Airflow: found the way `plumber verify` finds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_plumber.engines.airflow_env import find_airflow_python
from pipeline_plumber.errors import EnvironmentProblem


def airflow_python() -> Path:
    """`find_airflow_python()`, or a failure with the product's own hint: CI provides Airflow,
    so its absence is a bug, never a skip."""
    try:
        return find_airflow_python()
    except EnvironmentProblem as err:
        pytest.fail(str(err), pytrace=False)
