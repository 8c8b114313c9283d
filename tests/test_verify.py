"""`plumber verify`: the shipped examples are proven, and breaking one is caught.

Each broken case edits one example in a temporary copy of the knowledge base (the edit must
apply) and shows that `verify` fails on it with a message naming the example and what was
observed instead of what was claimed. PostgreSQL comes from a throwaway cluster and Airflow from
.venv-airflow: neither is optional, so neither is skipped.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from pipeline_plumber.pgcluster import throwaway_cluster
from support.cli import plumber

pytestmark = pytest.mark.engines  # every example on PostgreSQL, DuckDB and Airflow 3

REPO = Path(__file__).resolve().parents[1]
CASES = yaml.safe_load((REPO / "tests" / "fixtures" / "verify" / "broken.yaml").read_text())


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with throwaway_cluster() as dsn:
        yield dsn


def run_verify(*args: str) -> Result:
    return plumber("verify", *args)


def broken_kb(tmp_path: Path, file: str, old: str, new: str) -> Path:
    kb = tmp_path / "kb"
    shutil.copytree(REPO / "kb", kb)
    path = kb / file
    text = path.read_text()
    assert text.count(old) == 1, f"the edit must apply exactly once to {file}: {old!r}"
    path.write_text(text.replace(old, new))
    return kb


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_a_broken_example_fails_with_what_was_observed(
    case: dict[str, str], tmp_path: Path, pg: str
) -> None:
    kb = broken_kb(tmp_path, case["file"], case["old"], case["new"])
    result = run_verify("--kb", str(kb), "--postgres", pg, "--only", case["example"])
    assert result.exit_code == 1, result.output
    failures = [line.strip() for line in result.output.splitlines() if line.startswith("    ")]
    assert failures, result.output
    assert all(line.startswith(f"{case['example']}: ") for line in failures), result.output
    assert any(case["observed"] in line for line in failures), result.output
    assert "0 passed, 1 failed" in result.output


def test_the_shipped_examples_are_all_proven(pg: str) -> None:
    result = run_verify("--postgres", pg, "--json")
    report = json.loads(result.output)
    failed = [(o["example"], o["failures"]) for o in report["outcomes"] if not o["passed"]]
    assert failed == [] and result.exit_code == 0
    engines = {o["engine"] for o in report["outcomes"]}
    assert engines == {"postgres", "duckdb", "python", "airflow", "sqlglot"}
    assert sum(o["checks"] for o in report["outcomes"]) >= 55
    assert {o["verdict"] for o in report["outcomes"]} == {"right", "wrong"}


def test_unknown_example_is_bad_input() -> None:
    result = run_verify("--only", "no-such-example")
    assert result.exit_code == 2
    assert "--only: no example has id 'no-such-example'" in result.output


def test_a_text_example_has_nothing_to_run() -> None:
    result = run_verify("--only", "etl-diagram")
    assert result.exit_code == 2
    assert "text example with no proof" in result.output


def test_an_unreachable_server_is_one_line_not_a_failure_per_example() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_verify("--postgres", f"host=127.0.0.1 port={port} password=hunter22",
                        "--only", "cte-readability")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1, result.output
    assert "cannot connect to the PostgreSQL server given by --postgres" in result.output
    assert "hunter22" not in result.output


def test_a_missing_engine_stops_the_run_with_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUMBER_AIRFLOW_PYTHON", "/nonexistent/python")
    result = run_verify("--only", "orders-etl-dag")
    assert result.exit_code == 2, result.output
    assert "FAIL" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    assert "Airflow 3 not found at /nonexistent/python" in errors[0]
    assert "plumber setup airflow" in errors[0]


def test_list_prints_every_id_engine_and_claim() -> None:
    result = run_verify("--list")
    assert result.exit_code == 0, result.output
    rows = [line.split(maxsplit=2) for line in result.output.splitlines()]
    by_id = {row[0]: row for row in rows}
    assert by_id["orders-etl-dag"][1] == "airflow"
    assert by_id["covering-index"][1] == "postgres"
    assert all(row[2].startswith(("right", "wrong")) for row in rows), rows
    assert len(rows) >= 20


def test_an_unknown_example_gets_a_did_you_mean() -> None:
    result = run_verify("--only", "covering-indx")
    assert result.exit_code == 2
    assert "no example has id 'covering-indx' (did you mean 'covering-index'?)" in result.output
    assert "`plumber verify --list` prints every id" in result.output


def test_a_slow_example_is_announced_as_it_starts(pg: str) -> None:
    result = run_verify("--postgres", pg, "--only", "orders-etl-dag", "--only", "covering-index")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    started = next(i for i, line in enumerate(lines) if "started (Airflow 3" in line)
    ended = next(i for i, line in enumerate(lines) if line.startswith("orders-etl-dag")
                 and " ok " in line)
    assert started < ended
    assert "slowest: orders-etl-dag" in result.output
