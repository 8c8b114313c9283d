"""Defects of the pipeline, dq, airflow and governance families found by answers written from
outside the project: each test holds the property that the answer exposed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline_plumber.evals.answers import Answer
from pipeline_plumber.evals.execution.families.airflow import no_plain_insert, task_sql
from pipeline_plumber.evals.execution.properties import run_family
from pipeline_plumber.evals.scorers import Context, Resources

SQL_FILE_DAG = """\
`include/sql/load_returns.sql`:

```sql
INSERT INTO returns (return_id, amount) SELECT return_id, amount FROM stg_returns;
```

```python
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

load = SQLExecuteQueryOperator(task_id="load_returns", conn_id="dwh", sql="load_returns.sql")
check = SQLExecuteQueryOperator(task_id="check", conn_id="dwh", sql="sql/check_returns.sql")
```

```sql
-- sql/check_returns.sql
SELECT count(*) FROM returns;
```
"""


def test_an_operator_that_runs_a_sql_file_runs_the_fenced_block_of_that_file() -> None:
    found = task_sql(Answer(SQL_FILE_DAG, "file"))
    assert [(t.task, t.sql.split()[0]) for t in found] == [
        ("operator 'load_returns'", "INSERT"), ("operator 'check'", "--")]
    assert "(load_returns.sql)" in found[0].where
    verdict = no_plain_insert(found)
    assert verdict.status == "fail" and "appends to returns" in verdict.detail


def test_a_sql_file_the_answer_does_not_show_is_not_guessed() -> None:
    text = SQL_FILE_DAG.replace("`include/sql/load_returns.sql`:", "The load:")
    found = task_sql(Answer(text, "file"))
    assert [t.task for t in found] == ["operator 'check'"]


@pytest.fixture(scope="module")
def resources() -> Iterator[Resources]:
    with Resources() as shared:
        yield shared


def findings(text: str, command: str, dialect: str, resources: Resources) -> dict[str, tuple[
        str, str]]:
    ctx = Context(dialect=dialect, command=command, resources=resources)
    result = run_family(Answer(text, "file"), command, ctx, dialect)
    return {f.property: (f.status, f.detail) for f in result.findings}
