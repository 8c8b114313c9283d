"""The execution model: programs, catalogs, synthetic rows, setup, families, blockers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from evals_support import EVALS
from pipeline_plumber.evals.answers import Answer
from pipeline_plumber.evals.execution.catalog import Catalog, Table, read_catalog
from pipeline_plumber.evals.execution.engine import Rejected, open_session
from pipeline_plumber.evals.execution.program import _parse, _split, build_program
from pipeline_plumber.evals.execution.properties import known_properties, run_family
from pipeline_plumber.evals.execution.run import setup
from pipeline_plumber.evals.execution.synth import insert_sql, populate, rows
from pipeline_plumber.evals.scorers import Context, Resources
from pipeline_plumber.evals.scoring import CheckResult, combine

pytestmark = pytest.mark.engines  # answers run on PostgreSQL and DuckDB

SCHEMA = """\
```sql
CREATE TABLE plans (plan_code TEXT PRIMARY KEY,
    tier TEXT NOT NULL CHECK (tier IN ('starter', 'team', 'enterprise')));
INSERT INTO plans VALUES ('s', 'starter');
CREATE TABLE subscriptions (
    subscription_id BIGINT PRIMARY KEY,
    plan_code TEXT NOT NULL REFERENCES plans (plan_code),
    period_start TIMESTAMPTZ NOT NULL,
    period_end TIMESTAMPTZ NOT NULL,
    monthly_amount NUMERIC(10,2) NOT NULL CHECK (monthly_amount >= 0),
    CHECK (period_end > period_start));
CREATE INDEX subscriptions_plan_idx ON subscriptions (plan_code, period_start);
INSERT INTO subscriptions SELECT * FROM staging_subscriptions
  ON CONFLICT (subscription_id) DO UPDATE SET plan_code = excluded.plan_code;
DELETE FROM subscriptions WHERE period_end < now() - INTERVAL '2 years';
SELECT count(*) FROM subscriptions;
GRANT SELECT ON subscriptions TO analyst;
```
"""


@pytest.fixture(scope="module")
def resources() -> Iterator[Resources]:
    with Resources() as shared:
        yield shared


def test_program_classifies_every_statement_in_order() -> None:
    program = build_program(Answer(SCHEMA, "file"), "postgres")
    kinds = [(s.kind, s.statement, s.target) for s in program.steps]
    assert kinds == [
        ("ddl", "CREATE TABLE", "plans"), ("seed", "INSERT", "plans"),
        ("ddl", "CREATE TABLE", "subscriptions"), ("ddl", "CREATE INDEX", "subscriptions"),
        ("load", "INSERT", "subscriptions"), ("maintenance", "DELETE", "subscriptions"),
        ("query", "SELECT", None), ("skip", "GRANT", None)]
    assert program.writes("SUBSCRIPTIONS", kinds=("load",))[0].statement == "INSERT"
    assert program.created == {"plans", "subscriptions"}


def test_program_marks_examples_and_objects_never_created() -> None:
    text = ("```sql\nCREATE TABLE t (id INT PRIMARY KEY);\n```\n\nFor example, later:\n\n"
            "```sql\nALTER TABLE t ADD COLUMN note TEXT;\nINSERT INTO other VALUES (1);\n```\n")
    program = build_program(Answer(text, "file"), "duckdb")
    assert [s.kind for s in program.steps] == ["ddl", "example", "example"]
    assert "never creates" in program.steps[2].note


def test_a_run_stamp_after_the_load_is_part_of_the_load_not_the_setup() -> None:
    text = ("```sql\nCREATE TABLE etl_watermark (last_run_at TIMESTAMPTZ NOT NULL);\n"
            "INSERT INTO etl_watermark VALUES (TIMESTAMPTZ '1970-01-01 00:00:00+00');\n"
            "CREATE TABLE etl_run_log (started_at TIMESTAMPTZ NOT NULL);\n"
            "CREATE TABLE src (id INT PRIMARY KEY, at TIMESTAMPTZ);\n"
            "CREATE TABLE dst (id INT PRIMARY KEY, at TIMESTAMPTZ);\n"
            "INSERT INTO etl_run_log VALUES (now());\n"
            "INSERT INTO dst SELECT * FROM src WHERE at > (SELECT max(last_run_at) FROM "
            "etl_watermark) ON CONFLICT (id) DO NOTHING;\n"
            "INSERT INTO etl_watermark VALUES (now());\n"
            "INSERT INTO dst VALUES (0, NULL);\n```\n")
    program = build_program(Answer(text, "file"), "duckdb")
    inserts = [(s.kind, s.target) for s in program.steps if s.statement == "INSERT"]
    assert inserts == [("seed", "etl_watermark"), ("load", "etl_run_log"), ("load", "dst"),
                       ("load", "etl_watermark"), ("load", "dst")]
    assert [s.target for s in program.setup if s.kind == "seed"] == ["etl_watermark"]


def test_setup_keeps_a_schema_made_by_the_answer_a_table_swap_and_the_case_setup(
        resources: Resources) -> None:
    text = ("```sql\nCREATE SCHEMA crm;\nCREATE TABLE crm.contacts (id INT PRIMARY KEY);\n"
            "CREATE TABLE orders_sorted AS SELECT * FROM orders ORDER BY order_date;\n"
            "DROP TABLE orders;\nALTER TABLE orders_sorted RENAME TO orders;\n"
            "CREATE INDEX orders_date ON orders (order_date);\n```\n")
    given = ("CREATE TABLE orders (order_id INT, order_date DATE)",
             "INSERT INTO orders SELECT i, DATE '2024-01-01' + CAST(i AS INTEGER) "
             "FROM range(5) AS t(i)")
    program = build_program(Answer(text, "file"), "duckdb", given=given)
    assert [s.kind for s in program.steps] == ["ddl", "seed", "ddl", "ddl", "ddl", "ddl", "ddl",
                                               "ddl"]
    with open_session(resources, "duckdb") as session:
        execution = setup(session, program)
        assert execution.ok, execution.failures
        assert session.execute("SELECT count(*) FROM orders") == [(5,)]


def test_warehouse_program_is_translated_or_not_executed() -> None:
    ok = build_program(Answer("```sql\nCREATE TABLE ds.t (id INT64 NOT NULL, ts TIMESTAMP) "
                              "PARTITION BY DATE(ts) OPTIONS (description = 'x');\n```", "file"),
                       "bigquery")
    assert ok.runnable and ok.engine == "duckdb"
    assert ok.steps[0].sql == "CREATE SCHEMA IF NOT EXISTS ds"
    assert "PARTITION" not in ok.steps[1].sql.upper()
    geo = build_program(Answer("```sql\nCREATE TABLE t (g GEOGRAPHY);\n```", "file"),
                        "snowflake")
    assert geo.not_executed is not None and "GEOGRAPHY" in geo.not_executed


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_catalog_synth_and_setup_on_both_engines(engine: str, resources: Resources) -> None:
    text = SCHEMA if engine == "postgres" else SCHEMA.replace("TIMESTAMPTZ", "TIMESTAMPTZ")
    program = build_program(Answer(text, "file"), engine)
    with open_session(resources, engine) as session:  # type: ignore[arg-type]
        execution = setup(session, program)
        assert execution.ok, execution.failures
        assert any("GRANT not run" in note for note in execution.reported)
        catalog = execution.catalog
        subs = catalog.table("subscriptions")
        assert subs is not None and subs.primary_key == ("subscription_id",)
        assert catalog.table("billing.analytics.subscriptions") is subs  # one by that name
        assert subs.foreign_keys[0].table == "plans"
        assert [c.name for t, c in catalog.money_columns()] == ["monthly_amount"]
        assert {c.name for _, c in catalog.time_columns()} == {"period_start", "period_end"}
        assert [t.name for t in catalog.tables_in_fk_order()] == ["plans", "subscriptions"]
        assert any(i.columns[:1] == ("plan_code",) for i in subs.indexes)
        with session.savepoint(undo=True):
            stored = populate(session, catalog, 3)
            assert len(stored["subscriptions"]) == 3  # CHECKs and foreign keys respected
            duplicate = rows(subs, 1, stored)[0]
            with pytest.raises(Rejected):
                session.execute(insert_sql(subs, [duplicate]))
        assert read_catalog(session).tables.keys() == catalog.tables.keys()


SHARED_NAME = """\
```sql
CREATE SCHEMA IF NOT EXISTS staging;
CREATE TABLE staging.contacts (contact_id BIGINT, email TEXT, modified_at TIMESTAMPTZ);
CREATE TABLE contacts (contact_id BIGINT PRIMARY KEY, email TEXT NOT NULL,
    modified_at TIMESTAMPTZ NOT NULL);
```

Each run:

```sql
INSERT INTO contacts SELECT contact_id, email, modified_at FROM staging.contacts
ON CONFLICT (contact_id) DO UPDATE SET email = excluded.email, modified_at = excluded.modified_at;
```
"""


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_tables_of_one_name_in_two_schemas_stay_two(engine: str, resources: Resources) -> None:
    program = build_program(Answer(SHARED_NAME, "file"), engine)
    load = program.writes("public.contacts", kinds=("load",))[0]
    assert load.target == "contacts"
    assert program.tables_in(load) == {"contacts", "staging.contacts"}
    assert program.created == {"staging", "staging.contacts", "contacts"}
    with open_session(resources, engine) as session:  # type: ignore[arg-type]
        catalog = setup(session, program).catalog
        assert set(catalog.tables) == {"contacts", "staging.contacts"}
        landing, target = catalog.table("staging.contacts"), catalog.table("contacts")
        assert landing is not None and target is not None
        assert landing.qualified == "staging.contacts" and landing.primary_key == ()
        assert target.qualified == "contacts" and target.primary_key == ("contact_id",)
        assert catalog.table_in("staging", "contacts") is landing
        assert catalog.table("main.contacts") is target is catalog.table("public.contacts")
        assert catalog.table("crm.staging.contacts") is landing
        with session.savepoint(undo=True):
            stored = populate(session, catalog, 2)
            assert len(stored["staging.contacts"]) == len(stored["contacts"]) == 2
    ctx = Context(dialect=engine, command="etl", resources=resources)
    result = run_family(Answer(SHARED_NAME, "file"), "etl", ctx, engine)
    change = result.finding("change-applied")
    assert change is not None and change.status == "pass", result


def test_a_bare_name_in_two_other_schemas_resolves_only_by_preference() -> None:
    raw, clean = (Table(schema, "orders", (), relation="orders") for schema in ("raw", "clean"))
    catalog = Catalog("postgres", {"raw.orders": replace(raw, name="raw.orders"),
                                   "clean.orders": replace(clean, name="clean.orders")})
    assert catalog.table("orders") is None and catalog.table("other.orders") is None
    assert catalog.table("warehouse.raw.orders") is catalog.tables["raw.orders"]
    found = catalog.table("orders", prefer="clean.orders_daily")
    assert found is not None and found.qualified == "clean.orders"


CHECKED = """\
```sql
CREATE TABLE stg_rates (rate_date DATE, currency VARCHAR(3), sku TEXT, rate NUMERIC(18, 8));
CREATE TABLE rates (
    rate_date DATE NOT NULL,
    currency VARCHAR(3) NOT NULL CHECK ({regex}),
    sku TEXT NOT NULL CHECK (sku LIKE 'SKU-%' AND length(sku) <= 12),
    rate NUMERIC(18, 8) NOT NULL CHECK (rate > 0 AND rate < 5),
    PRIMARY KEY (rate_date, currency));
CREATE TABLE never (code TEXT CHECK (code <> code));
```
"""
REGEX = {"postgres": "currency ~ '^[A-Z]{3}$'",
         "duckdb": "regexp_matches(currency, '^[A-Z]{3}$')"}


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_synthetic_rows_follow_check_shapes_and_report_refusals(engine: str,
                                                                 resources: Resources) -> None:
    program = build_program(Answer(CHECKED.format(regex=REGEX[engine]), "file"), engine)
    with open_session(resources, engine) as session:  # type: ignore[arg-type]
        catalog = setup(session, program).catalog
        with session.savepoint(undo=True):
            stored = populate(session, catalog, 3)
            assert len(stored["rates"]) == 3 and len(stored["stg_rates"]) == 3
            # the staging rows borrow the target's checks: the load accepts them
            session.execute("DELETE FROM rates")
            session.execute("INSERT INTO rates SELECT * FROM stg_rates")
            assert stored["never"] == [] and stored.refused[0].startswith("never: ")


def test_the_catalog_is_read_once_per_program_and_setup_outcome(resources: Resources) -> None:
    program = build_program(Answer(SCHEMA, "file"), "duckdb")
    with open_session(resources, "duckdb") as one, open_session(resources, "duckdb") as two:
        first, second = setup(one, program), setup(two, program)
        assert first.catalog is second.catalog and len(program.catalogs) == 1
        assert read_catalog(two).tables == first.catalog.tables


def test_setup_stops_at_the_first_refusal_in_the_engines_words(resources: Resources) -> None:
    text = ("```sql\nCREATE TABLE fact (d INT REFERENCES dim_date (d));\n"
            "CREATE TABLE dim_date (d INT PRIMARY KEY);\n```\n")
    program = build_program(Answer(text, "file"), "duckdb")
    with open_session(resources, "duckdb") as session:
        execution = setup(session, program)
    assert not execution.ok and execution.ran == 0
    assert execution.failures[0].startswith("DDL does not run: ")
    assert "dim_date" in execution.failures[0]


def test_setup_stubs_a_parent_the_answer_never_creates(resources: Resources) -> None:
    text = "```sql\nCREATE TABLE events (id UUID PRIMARY KEY, user_id BIGINT NOT NULL " \
           "REFERENCES users (user_id));\n```\n"
    program = build_program(Answer(text, "file"), "postgres")
    with open_session(resources, "postgres") as session:
        execution = setup(session, program)
    assert execution.ok, execution.failures
    assert any("a stub with its key was created" in r for r in execution.reported)


def test_family_runs_once_per_answer(resources: Resources) -> None:
    answer = Answer(SCHEMA, "file")
    ctx = Context(dialect="postgres", command="schema", resources=resources)
    first = run_family(answer, "schema", ctx, "postgres")
    assert run_family(answer, "schema", ctx, "postgres") is first
    assert {f.property for f in first.findings} >= {"primary-keys", "exact-money"}
    assert "scd2-one-current" in known_properties()


def _result(status: str, value: float, blocker: bool, weight: float = 1) -> CheckResult:
    return CheckResult("c", "s", "case", weight, status, value, "", 0.0, blocker)  # type: ignore[arg-type]


def test_a_failed_blocker_fails_the_case_whatever_the_mean() -> None:
    passing = tuple(_result("pass", 1.0, False, 10) for _ in range(5))
    assert combine((*passing, _result("fail", 0.0, False)), 0.8)[1] == "pass"
    value, status = combine((*passing, _result("fail", 0.0, True)), 0.8)
    assert status == "fail" and value is not None and value > 0.95


def test_parallel_scoring_keeps_the_order() -> None:
    import time

    from pipeline_plumber.evals.runner import in_order

    def slow(n: int) -> int:
        time.sleep(0.01 * (5 - n))  # the first items finish last
        return n * n

    seen: list[int] = []
    assert in_order(slow, [0, 1, 2, 3, 4], 3, seen.append) == [0, 1, 4, 9, 16]
    assert len(seen) == 5


IDENTITY_ONLY = {
    "postgres": "CREATE TABLE customers (customer_id BIGINT GENERATED ALWAYS AS IDENTITY "
                "PRIMARY KEY);",
    "duckdb": "CREATE SEQUENCE customer_seq;\nCREATE TABLE customers (customer_id BIGINT "
              "PRIMARY KEY DEFAULT nextval('customer_seq'));"}


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_a_table_whose_only_column_is_generated_gets_default_rows(engine: str,
                                                                  resources: Resources) -> None:
    program = build_program(Answer(f"```sql\n{IDENTITY_ONLY[engine]}\n```\n", "file"), engine)
    with open_session(resources, engine) as session:  # type: ignore[arg-type]
        catalog = setup(session, program).catalog
        stored = populate(session, catalog, 3)
        assert stored.refused == [] and len(stored["customers"]) == 3
        session.execute(insert_sql(catalog.tables["customers"], [{}]))
        assert session.execute("SELECT count(DISTINCT customer_id) FROM customers") == [(4,)]


REFUSED_ROWS = """\
```sql
CREATE TABLE plans (plan_code TEXT PRIMARY KEY);
CREATE TABLE subscriptions (id INT PRIMARY KEY, plan_code TEXT NOT NULL REFERENCES plans);
INSERT INTO plans VALUES ('team');
INSERT INTO plans VALUES (NULL);  -- rejected: a plan needs a code
INSERT INTO plans VALUES ('starter');
```

This one must fail, the plan does not exist:

```sql
INSERT INTO subscriptions VALUES (1, 'gold');
```

## How to verify

```sql
INSERT INTO subscriptions VALUES (2, 'team'), (2, 'team');
SELECT count(*) FROM subscriptions;
```
"""


def test_rows_the_answer_says_are_refused_are_checks_not_setup(resources: Resources) -> None:
    program = build_program(Answer(REFUSED_ROWS, "file"), "duckdb")
    inserts = [(s.kind, s.target) for s in program.steps if s.statement == "INSERT"]
    assert inserts == [("seed", "plans"), ("example", "plans"), ("seed", "plans"),
                       ("example", "subscriptions"), ("example", "subscriptions")]
    assert "How to verify" in program.steps[-2].note
    with open_session(resources, "duckdb") as session:
        execution = setup(session, program)
        assert execution.ok, execution.failures
        assert session.execute("SELECT count(*) FROM plans") == [(2,)]


def test_a_view_with_options_over_a_table_never_created_is_an_example(
        resources: Resources) -> None:
    text = ("```sql\nCREATE TABLE tokens (id INT PRIMARY KEY, token TEXT);\n"
            "CREATE VIEW partner_signups WITH (security_barrier) AS\n"
            "  SELECT ns.signup_id, t.token FROM newsletter_signups AS ns JOIN tokens AS t "
            "ON t.id = ns.signup_id;\n"
            "CREATE VIEW token_view WITH (security_barrier = true) AS SELECT id FROM tokens\n"
            "  WITH LOCAL CHECK OPTION;\n```\n")
    program = build_program(Answer(text, "file"), "postgres")
    assert [(s.kind, s.target) for s in program.steps] == [
        ("ddl", "tokens"), ("example", "partner_signups"), ("ddl", "token_view")]
    assert "newsletter_signups" in program.steps[1].note
    with open_session(resources, "postgres") as session:
        execution = setup(session, program)
        assert execution.ok, execution.failures
        assert session.execute("SELECT count(*) FROM token_view") == [(0,)]


def test_a_view_named_like_a_table_it_reads_in_another_schema_does_not_create_it() -> None:
    text = ("```sql\nCREATE SCHEMA reporting;\n"
            "CREATE VIEW reporting.orders AS SELECT order_id, amount FROM orders;\n"
            "CREATE INDEX orders_amount_idx ON orders (amount);\n"
            "INSERT INTO orders VALUES (1, 2.50);\n```\n")
    program = build_program(Answer(text, "file"), "postgres")
    assert [(s.kind, s.statement) for s in program.steps] == [
        ("ddl", "CREATE SCHEMA"), ("example", "CREATE VIEW"), ("example", "CREATE INDEX"),
        ("example", "INSERT")]
    assert program.created == {"reporting"}
    both = text.replace("CREATE SCHEMA reporting;",
                        "CREATE TABLE orders (order_id INT PRIMARY KEY, amount NUMERIC);\n"
                        "CREATE SCHEMA reporting;")
    program = build_program(Answer(both, "file"), "postgres")
    assert [(s.kind, s.target) for s in program.steps] == [
        ("ddl", "orders"), ("ddl", "reporting"), ("ddl", "reporting.orders"),
        ("ddl", "orders"), ("seed", "orders")]


def test_a_table_the_case_gives_restated_by_the_answer_keeps_the_case_rows(
        resources: Resources) -> None:
    given = ("CREATE TABLE customers (customer_id bigint PRIMARY KEY, email text NOT NULL)",
             "INSERT INTO customers VALUES (1, 'ada@example.com')")
    text = ("```sql\nCREATE TABLE customers (customer_id bigint PRIMARY KEY, email text);\n"
            "CREATE VIEW customers_masked AS SELECT customer_id, md5(email) AS email_hash "
            "FROM customers;\n```\n")
    program = build_program(Answer(text, "file"), "postgres", given=given)
    assert [s.kind for s in program.steps] == ["ddl", "seed", "example", "ddl"]
    with open_session(resources, "postgres") as session:
        execution = setup(session, program)
        assert execution.ok, execution.failures
        assert session.execute("SELECT count(*) FROM customers_masked") == [(1,)]


def test_a_custom_setting_the_answer_reads_gets_a_placeholder_on_postgres(
        resources: Resources) -> None:
    text = ("```sql\nCREATE TABLE customers (customer_id bigint PRIMARY KEY, email text);\n"
            "INSERT INTO customers VALUES (1, 'ada@example.com');\n"
            "CREATE VIEW customers_masked AS SELECT customer_id, md5(current_setting('pii.salt')"
            " || email) AS email_token FROM customers;\n```\n")
    program = build_program(Answer(text, "file"), "postgres")
    with open_session(resources, "postgres") as session:
        execution = setup(session, program)
        assert execution.ok, execution.failures
        assert any("pii.salt" in note for note in execution.reported)
        assert session.execute("SELECT count(*) FROM customers_masked") == [(1,)]


@pytest.mark.parametrize("dialect", ["postgres", "duckdb", "snowflake", "bigquery"])
def test_a_statement_parsed_from_the_split_tokens_is_the_tree_of_its_text(
        dialect: str) -> None:
    """The Program parses each statement from the tokens splitting its block gave (no second
    tokenizing): over every labelled answer, the tree, and the SQL it gives back, are those of
    parsing the statement's text alone, lead comments and opaque commands included."""
    compared = 0
    for path in sorted((EVALS / "answers").glob("*/*.md")):
        for block in Answer(path.read_text(encoding="utf-8"), "file").sql_blocks:
            for sql, _, _, tokens in _split(block.code, dialect):
                from_text, from_tokens = _parse(sql, dialect), _parse(sql, dialect, tokens)
                assert repr(from_tokens) == repr(from_text), f"{path.name}: {sql[:60]}"
                if from_text is not None:
                    assert from_tokens.sql(dialect) == from_text.sql(dialect)
                compared += 1
    assert compared > 1000
