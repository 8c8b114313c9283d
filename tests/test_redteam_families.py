"""Defects of the pipeline, dq, airflow and governance families found by answers written from
outside the project: each test holds the property that the answer exposed."""

from __future__ import annotations

import re
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


@pytest.mark.parametrize("reads", [
    'PostgresHook("dwh").run(LOAD.read_text())',
    'PostgresHook("dwh").run(open("include/sql/load_returns.sql").read())',
    'PostgresHook("dwh").run((Path(__file__).parent / "sql" / "load_returns.sql").read_text())',
    'PostgresHook("dwh").run(Path("load_returns.sql").read_text(encoding="utf-8"))',
])
def test_a_task_that_reads_a_sql_file_runs_the_fenced_block_of_that_file(reads: str) -> None:
    dag = SQL_FILE_DAG.split("```python")[0] + (
        "```python\nfrom pathlib import Path\n"
        'LOAD = Path(__file__).with_name("load_returns.sql")\n\n'
        f"@task\ndef load():\n    {reads}\n```\n")
    found = task_sql(Answer(dag, "file"))
    assert [(t.task, t.sql.split()[0]) for t in found] == [("task load()", "INSERT")]
    assert no_plain_insert(found).status == "fail"


def test_a_file_read_that_names_no_shown_sql_file_is_not_sql() -> None:
    dag = ("```python\nfrom pathlib import Path\n@task\ndef load():\n"
           '    hook.run(Path("notes.txt").read_text())\n```\n')
    assert task_sql(Answer(dag, "file")) == []


@pytest.fixture(scope="module")
def resources() -> Iterator[Resources]:
    with Resources() as shared:
        yield shared


def findings(text: str, command: str, dialect: str, resources: Resources) -> dict[str, tuple[
        str, str]]:
    ctx = Context(dialect=dialect, command=command, resources=resources)
    result = run_family(Answer(text, "file"), command, ctx, dialect)
    return {f.property: (f.status, f.detail) for f in result.findings}


STATE_TARGET = """\
```sql
CREATE TABLE events_src (event_id bigint PRIMARY KEY, shipment_id bigint NOT NULL,
                         state text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE shipment_state (shipment_id bigint PRIMARY KEY, state text NOT NULL,
                             updated_at timestamptz NOT NULL);
CREATE TABLE sync_watermark (last_synced timestamptz NOT NULL);
INSERT INTO sync_watermark VALUES ('1970-01-01 00:00+00');
INSERT INTO shipment_state (shipment_id, state, updated_at)
SELECT DISTINCT ON (shipment_id) shipment_id, state, updated_at FROM events_src
WHERE updated_at > (SELECT last_synced FROM sync_watermark)
ORDER BY shipment_id, updated_at DESC
ON CONFLICT (shipment_id) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at;
UPDATE sync_watermark SET last_synced = now();
```
"""


def test_a_data_table_named_like_bookkeeping_is_still_the_target(resources: Resources) -> None:
    found = findings(STATE_TARGET, "pipeline", "postgres", resources)
    assert found["change-applied"][0] == "fail", found["change-applied"]
    assert "clock" in found["retry-separate-transactions"][1]


IMMUTABLE_CLICKS = """\
```sql
CREATE TABLE landing_clicks (event_id VARCHAR, url VARCHAR, event_time TIMESTAMPTZ);
CREATE TABLE clicks (event_id VARCHAR PRIMARY KEY, url VARCHAR, event_time TIMESTAMPTZ);
INSERT INTO clicks SELECT DISTINCT ON (event_id) event_id, url, event_time FROM landing_clicks l
WHERE NOT EXISTS (SELECT 1 FROM clicks c WHERE c.event_id = l.event_id)
ORDER BY event_id, event_time;
```
"""


def test_insert_if_new_is_right_for_immutable_events_and_wrong_for_versioned_rows(
        resources: Resources) -> None:
    found = findings(IMMUTABLE_CLICKS, "etl", "duckdb", resources)
    assert found["change-applied"][0] == "n/a" and "immutable" in found["change-applied"][1]
    assert found["idempotent-rerun"][0] == "pass"
    versioned = IMMUTABLE_CLICKS.replace("event_time", "updated_at")
    assert findings(versioned, "etl", "duckdb", resources)["change-applied"][0] == "fail"


MEMBERS = """\
```sql
CREATE TABLE members (member_id bigint PRIMARY KEY, email text, phone text, city text,
                      tier text);
CREATE VIEW members_report AS
SELECT member_id, city, tier, left(email, 1) || '***' AS email_masked FROM members;
GRANT SELECT ON members_report TO reporting;
{extra}
```
"""


@pytest.mark.parametrize(("extra", "status", "words"), [
    ("GRANT SELECT (member_id, city, tier) ON members TO reporting;", "pass", "granted"),
    ("GRANT SELECT (member_id, email, city) ON members TO reporting;", "fail", "email of members"),
    ("GRANT SELECT ON members_report, members TO reporting;", "fail", "grants members itself"),
])
def test_column_grants_and_grant_lists_beside_a_masking_view(
        extra: str, status: str, words: str, resources: Resources) -> None:
    found = findings(MEMBERS.format(extra=extra), "governance", "postgres", resources)
    assert found["no-broad-grant"][0] == status and words in found["no-broad-grant"][1]


def test_a_masking_view_that_returns_another_pii_column_bare_fails(resources: Resources) -> None:
    leaky = MEMBERS.format(extra="").replace("tier, left", "tier, phone, left")
    found = findings(leaky, "governance", "postgres", resources)
    assert found["no-broad-grant"][0] == "fail" and "passes phone" in found["no-broad-grant"][1]


def test_column_grants_alone_leave_pii_out_and_a_view_of_a_namesake_is_not_the_table(
        resources: Resources) -> None:
    only_columns = """\
```sql
CREATE TABLE staff (staff_id bigint PRIMARY KEY, email text, department text);
GRANT SELECT (staff_id, department) ON staff TO bi;
```
"""
    assert findings(only_columns, "governance", "postgres", resources)["grants-name-pii"][0] \
        == "pass"
    namesake = """\
```sql
CREATE SCHEMA reporting;
CREATE VIEW reporting.companies AS SELECT company_id, name FROM crm.companies;
CREATE VIEW reporting.people AS SELECT company_id, count(*) AS n FROM crm.contacts
GROUP BY company_id;
GRANT SELECT ON reporting.companies, reporting.people TO analyst;
```
"""
    found = findings(namesake, "governance", "postgres", resources)
    assert found.get("no-broad-grant", ("n/a", ""))[0] != "fail", found
    from pipeline_plumber.evals.execution.program import build_program

    program = build_program(Answer(namesake, "file"), "postgres")
    assert [s.kind for s in program.steps if s.statement == "CREATE VIEW"] == [
        "example", "example"]


DQ_TABLES = """\
```sql
CREATE TABLE customers (customer_id bigint PRIMARY KEY);
CREATE TABLE orders_in (order_id bigint, customer_id bigint, currency text,
                        amount numeric(12,2), placed_at timestamptz);
```
"""

DQ_GATE = DQ_TABLES + """
```sql
DO $$
DECLARE n bigint;
BEGIN
    SELECT count(*) INTO n FROM orders_in;
    IF n = 0 THEN RAISE {level} 'empty batch'; END IF;
    SELECT count(*) INTO n FROM orders_in
    WHERE order_id IS NULL OR amount IS NULL OR amount <= 0 OR placed_at > now()
       OR currency IS NULL OR currency NOT IN ('EUR', 'USD');
    IF n > 0 THEN RAISE {level} 'bad rows: %', n; END IF;
    SELECT count(*) INTO n FROM (SELECT order_id FROM orders_in GROUP BY order_id
                                 HAVING count(*) > 1) d;
    IF n > 0 THEN RAISE {level} 'duplicates: %', n; END IF;
    SELECT count(*) INTO n FROM orders_in o
    WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = o.customer_id);
    IF n > 0 THEN RAISE {level} 'orphans: %', n; END IF;
END $$;
```
"""


def test_a_do_gate_that_refuses_an_empty_batch_is_a_check_not_setup(
        resources: Resources) -> None:
    found = findings(DQ_GATE.format(level="EXCEPTION"), "dq", "postgres", resources)
    assert {p: s for p, (s, _) in found.items() if s != "pass"} == {}, found


def test_a_do_gate_that_only_warns_fails_each_defect_it_notices(resources: Resources) -> None:
    found = findings(DQ_GATE.format(level="WARNING"), "dq", "postgres", resources)
    assert found["catches-duplicate-key"] == ("fail", "only a warning fires; the run goes on")
    assert found["gate-fails-run"][0] == "fail"


def test_null_in_a_column_checked_against_a_list_must_be_caught(resources: Resources) -> None:
    query = DQ_TABLES + """
```sql
SELECT order_id FROM orders_in
WHERE order_id IS NULL OR amount IS NULL OR amount <= 0 OR currency NOT IN ('EUR', 'USD');
```
"""
    found = findings(query, "dq", "postgres", resources)
    assert found["catches-null-in-range"][0] == "fail"
    assert "NULL in currency" in found["catches-null-in-range"][1]
    fixed = query.replace("OR currency NOT IN", "OR currency IS NULL OR currency NOT IN")
    assert findings(fixed, "dq", "postgres", resources)["catches-null-in-range"][0] == "pass"


DAY_SLICE = """\
```sql
CREATE TABLE views_raw (view_id bigint PRIMARY KEY, page text NOT NULL,
                        viewed_at timestamptz NOT NULL);
CREATE TABLE run_date (run_date date NOT NULL);
CREATE TABLE views_daily (view_day date NOT NULL, page text NOT NULL, views bigint NOT NULL,
                          PRIMARY KEY (view_day, page));
DELETE FROM views_daily WHERE view_day = (SELECT run_date FROM run_date);
INSERT INTO views_daily (view_day, page, views)
SELECT viewed_at::date, page, count(*) FROM views_raw
WHERE {window}
GROUP BY viewed_at::date, page;
```
"""


@pytest.mark.parametrize(("window", "status"), [
    ("viewed_at >= (SELECT run_date FROM run_date) "
     "AND viewed_at < (SELECT run_date FROM run_date) + 1", "pass"),
    ("viewed_at BETWEEN (SELECT run_date FROM run_date) AND (SELECT run_date FROM run_date) + 1",
     "fail"),
])
def test_a_day_window_that_takes_the_next_midnight_is_not_rerunnable(
        window: str, status: str, resources: Resources) -> None:
    found = findings(DAY_SLICE.format(window=window), "pipeline", "postgres", resources)
    assert found["idempotent-rerun"][0] == status, found["idempotent-rerun"]


def test_default_privileges_on_future_tables_beside_a_masking_view_fail(
        resources: Resources) -> None:
    text = MEMBERS.format(extra="ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON "
                          "TABLES TO reporting;")
    found = findings(text, "governance", "postgres", resources)
    assert found["no-broad-grant"][0] == "fail" and "later created" in found["no-broad-grant"][1]


def test_a_duplicate_query_under_how_to_verify_is_not_one_of_the_checks(
        resources: Resources) -> None:
    text = DQ_TABLES + """
```sql
SELECT order_id, count(*) FROM orders_in GROUP BY order_id, ctid HAVING count(*) > 1;
SELECT * FROM orders_in WHERE order_id IS NULL;
```

## How to verify

```sql
SELECT order_id, count(*) FROM orders_in GROUP BY order_id HAVING count(*) > 1;
```
"""
    assert findings(text, "dq", "postgres", resources)["catches-duplicate-key"][0] == "fail"
    shown = text.replace("## How to verify", "## The duplicate check")
    assert findings(shown, "dq", "postgres", resources)["catches-duplicate-key"][0] == "pass"


@pytest.mark.parametrize(("key", "status"), [
    ("'Partner-Key-2024'", "fail"),
    ("current_setting('app.partner_key')", "pass"),
])
def test_an_hmac_keyed_by_a_literal_in_the_sql_is_not_keyed(
        key: str, status: str, resources: Resources) -> None:
    text = f"""We share pseudonymised tokens.

```sql
CREATE TABLE members (member_id bigint PRIMARY KEY, email text NOT NULL, points int);
CREATE VIEW partner_members AS
SELECT encode(hmac(lower(email), {key}, 'sha256'), 'hex') AS token, points FROM members;
GRANT SELECT ON partner_members TO partner;
```
"""
    found = findings(text, "governance", "postgres", resources)
    assert found["pii-hash-salted"][0] == status, found["pii-hash-salted"]


SCRATCH_TABLE_LOAD = """\
```sql
CREATE TABLE stg_orders (order_id BIGINT, status VARCHAR, updated_at TIMESTAMPTZ);
CREATE TABLE orders (order_id BIGINT PRIMARY KEY, status VARCHAR, updated_at TIMESTAMPTZ);
```

```sql
BEGIN TRANSACTION;
{drop_first}CREATE {temp}TABLE order_batch AS
SELECT order_id, status, updated_at FROM stg_orders;
INSERT INTO orders SELECT * FROM order_batch ON CONFLICT (order_id) DO UPDATE
    SET status = excluded.status, updated_at = excluded.updated_at;
{drop_last}COMMIT;
```
"""


@pytest.mark.parametrize(("temp", "drop_first", "drop_last"), [
    ("OR REPLACE TEMP ", "", "DROP TABLE order_batch;\n"),
    ("TEMPORARY ", "DROP TABLE IF EXISTS order_batch;\n", ""),
    ("", "", "DROP TABLE order_batch;\n"),
])
def test_a_scratch_table_filled_by_each_run_belongs_to_the_load(
        temp: str, drop_first: str, drop_last: str) -> None:
    from pipeline_plumber.evals.execution.program import build_program

    text = SCRATCH_TABLE_LOAD.format(temp=temp, drop_first=drop_first, drop_last=drop_last)
    program = build_program(Answer(text, "file"), "duckdb")
    kinds = {(s.statement, s.target): s.kind for s in program.steps}
    assert kinds[("CREATE TABLE", "order_batch")] == "load"
    assert kinds[("CREATE TABLE", "orders")] == "ddl"
    assert all(kind == "load" for (statement, target), kind in kinds.items()
               if statement == "DROP")


def test_a_table_filled_once_by_the_setup_stays_setup() -> None:
    from pipeline_plumber.evals.execution.program import build_program

    text = SCRATCH_TABLE_LOAD.format(temp="", drop_first="", drop_last="")
    program = build_program(Answer(text, "file"), "duckdb")
    assert {s.target: s.kind for s in program.steps if s.statement == "CREATE TABLE"}[
        "order_batch"] != "load"


def test_an_airflow_template_in_a_literal_is_rendered_for_a_sample_run() -> None:
    from pipeline_plumber.evals.execution.program import build_program

    text = ("```sql\nCREATE TABLE sales (sale_id bigint PRIMARY KEY, run_date date);\n"
            "CREATE TABLE stg_sales (sale_id bigint);\n```\n\n```sql\n"
            "DELETE FROM sales WHERE run_date = '{{ ds }}'\n"
            "  AND run_date < '{{ data_interval_end | ds }}';\n"
            "INSERT INTO sales SELECT sale_id, DATE '{{ ds }}' FROM stg_sales;\n```\n")
    loads = [s.sql for s in build_program(Answer(text, "file"), "postgres").steps
             if s.kind == "load"]
    assert "'2024-06-01'" in loads[0] and "'2024-06-02'" in loads[0]
    assert "DATE '2024-06-01'" in loads[1]
    assert not any("jinja" in sql for sql in loads)


@pytest.mark.parametrize("format_check", [
    "currency !~ '^[A-Z]{3}$'",
    "NOT (currency ~ '^[A-Z]{3}$')",
    "NOT regexp_matches(currency, '^[A-Z]{3}$')",
])
def test_a_format_check_written_as_a_negated_match_is_quiet_on_a_clean_batch(
        format_check: str) -> None:
    from pipeline_plumber.evals.execution.catalog import Column, Table
    from pipeline_plumber.evals.execution.families.dq import (
        Check,
        _clean_rows,
        _with_stated_formats,
    )

    table = Table("public", "stg_payments", (Column("payment_id", "bigint", True),
                                             Column("currency", "text", True)))
    check = Check("SQL block 1, statement 1",
                  f"SELECT * FROM stg_payments WHERE currency IS NULL OR {format_check}", "rows")
    clean = _clean_rows(_with_stated_formats([check], table), {})
    assert all(re.fullmatch(r"'[A-Z]{3}'", row["currency"]) for row in clean)
    assert _clean_rows(table, {})[0]["currency"] == "'currency_1'"


AUDITED_LOAD = """\
```sql
CREATE TABLE stg_rates (rate_date date, currency text, rate numeric(18,8));
CREATE TABLE rates (rate_date date, currency text, rate numeric(18,8),
                    PRIMARY KEY (rate_date, currency));
CREATE TABLE rates_replaced_values (rate_date date, currency text, rate numeric(18,8),
                                    replaced_at timestamptz DEFAULT now(), note text);
```

```sql
INSERT INTO rates_replaced_values (rate_date, currency, rate)
SELECT r.rate_date, r.currency, r.rate FROM rates r
JOIN stg_rates s USING (rate_date, currency) WHERE r.rate <> s.rate;
INSERT INTO rates SELECT rate_date, currency, rate FROM stg_rates
ON CONFLICT (rate_date, currency) DO UPDATE SET rate = EXCLUDED.rate;
```
"""


def test_the_table_the_prompt_names_is_the_target_not_an_audit_copy_fed_from_it(
        resources: Resources) -> None:
    from pipeline_plumber.evals.execution.engine import open_session
    from pipeline_plumber.evals.execution.families.pipeline import find_flow
    from pipeline_plumber.evals.execution.program import build_program
    from pipeline_plumber.evals.execution.run import setup

    answer = Answer(AUDITED_LOAD, "file")
    program = build_program(answer, "duckdb")
    with open_session(resources, "duckdb") as session:
        catalog = setup(session, program).catalog
        unnamed = find_flow(program, catalog, answer.prose)
        named = find_flow(program, catalog, answer.prose, "Load `stg_rates` into `rates`.")
    assert not isinstance(unnamed, str) and unnamed.target.name == "rates_replaced_values"
    assert not isinstance(named, str) and named.target.name == "rates"


STAGED_PAYMENTS = """\
```sql
CREATE SCHEMA staging;
CREATE TABLE staging.payments (payment_id text, amount numeric(12,2), paid_at timestamptz);
CREATE TABLE payments (payment_id text PRIMARY KEY, amount numeric(12,2) NOT NULL,
                       paid_at timestamptz NOT NULL);
```

Checks, before the insert into `payments`:

```sql
SELECT payment_id FROM staging.payments GROUP BY payment_id HAVING count(*) > 1;
SELECT s.payment_id FROM staging.payments s JOIN payments p USING (payment_id);
SELECT * FROM staging.payments WHERE payment_id IS NULL OR amount IS NULL OR amount <= 0;
SELECT CASE WHEN count(*) = 0 THEN 'empty batch' END FROM staging.payments HAVING count(*) = 0;
SELECT * FROM staging.payments
WHERE paid_at < date_trunc('month', now() - interval '1 month')
   OR paid_at >= date_trunc('month', now());
```
"""


def test_checks_on_a_staging_copy_are_tried_on_it_and_a_clock_window_is_no_false_alarm(
        resources: Resources) -> None:
    found = findings(STAGED_PAYMENTS, "dq", "postgres", resources)
    status = {p: s for p, (s, _) in found.items()}
    assert status["no-false-alarm"] == "pass", found["no-false-alarm"]
    assert "compare with the clock" in found["no-false-alarm"][1]
    # the batch's own key is no reference to the target it is loaded into
    assert status["catches-orphan"] == "n/a", found["catches-orphan"]
    assert status["catches-duplicate-key"] == "pass", found["catches-duplicate-key"]
    assert status["catches-future-timestamp"] == "pass", found["catches-future-timestamp"]
    assert status["catches-empty-batch"] == "pass", found["catches-empty-batch"]
    without_dupes = STAGED_PAYMENTS.replace(
        "SELECT payment_id FROM staging.payments GROUP BY payment_id HAVING count(*) > 1;\n", "")
    assert findings(without_dupes, "dq", "postgres", resources)[
        "catches-duplicate-key"][0] == "fail"


def test_a_table_of_the_case_setup_is_restated_only_in_the_same_schema() -> None:
    from pipeline_plumber.evals.execution.program import build_program

    text = ("```sql\nCREATE TABLE staging.payments (payment_id text, amount numeric);\n"
            "CREATE TABLE payments (payment_id text PRIMARY KEY, amount numeric);\n```\n")
    given = ("CREATE SCHEMA staging",
             "CREATE TABLE staging.payments (payment_id bigint, amount numeric)")
    program = build_program(Answer(text, "file"), "postgres", given=given)
    kinds = [(s.original.split("(")[0].strip(), s.kind) for s in program.steps
             if s.statement == "CREATE TABLE" and s.where.startswith("SQL block")]
    assert kinds == [("CREATE TABLE staging.payments", "example"),
                     ("CREATE TABLE payments", "ddl")]
