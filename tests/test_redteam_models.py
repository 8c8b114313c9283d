"""Model answers an outside reviewer would write for schema, star, partition, index and optimize:
each holds the one error a senior data engineer would catch, and the family names it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline_plumber.evals.answers import Answer
from pipeline_plumber.evals.execution.properties import Finding, run_family
from pipeline_plumber.evals.scorers import Context, Resources

pytestmark = pytest.mark.engines  # answers run on PostgreSQL and DuckDB


@pytest.fixture(scope="module")
def resources() -> Iterator[Resources]:
    with Resources() as shared:
        yield shared


def _findings(text: str, command: str, dialect: str, resources: Resources,
              prompt: str = "") -> dict[str, Finding]:
    ctx = Context(dialect=dialect, command=command, resources=resources, prompt=prompt)
    result = run_family(Answer(text, "file"), command, ctx, dialect)
    assert not result.setup_failures and not result.error, (result.setup_failures, result.error)
    return {f.property: f for f in result.findings}


def test_money_in_a_domain_over_a_float_is_inexact(resources: Resources) -> None:
    text = ("```sql\nCREATE DOMAIN amount_t AS double precision CHECK (VALUE >= 0);\n"
            "CREATE DOMAIN exact_t AS numeric(12,2);\n"
            "CREATE TABLE payments (payment_id bigint PRIMARY KEY, amount amount_t NOT NULL,\n"
            "    fee exact_t NOT NULL);\n```\n")
    found = _findings(text, "schema", "postgres", resources)
    assert found["exact-money"].status == "fail"
    assert "payments.amount (double precision)" in found["exact-money"].detail
    assert "fee" not in found["exact-money"].detail
