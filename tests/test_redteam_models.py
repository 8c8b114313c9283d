"""Model answers an outside reviewer would write for schema, star, partition, index and optimize:
each holds the one error a senior data engineer would catch, and the family names it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_plumber.evals.answers import Answer
from pipeline_plumber.evals.cases import load_checklists, load_suite
from pipeline_plumber.evals.execution.properties import Finding, run_family
from pipeline_plumber.evals.scorers import Context, Resources
from pipeline_plumber.evals.scoring import CaseResult, score_case

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


def test_a_fact_holding_an_scd2_natural_key_is_not_linked_to_a_version(
        resources: Resources) -> None:
    dimension = ("```sql\nCREATE TABLE dim_plan (plan_key int PRIMARY KEY, plan_code text);\n"
                 "CREATE TABLE dim_customer (customer_key bigint PRIMARY KEY,\n"
                 "    customer_id text NOT NULL, segment text NOT NULL,\n"
                 "    valid_from timestamptz NOT NULL, valid_to timestamptz,\n"
                 "    is_current boolean NOT NULL DEFAULT true);\n"
                 "CREATE TABLE stg_customer (customer_id text, segment text);\n")
    load = ("UPDATE dim_customer d SET is_current = false FROM stg_customer s\n"
            "    WHERE d.customer_id = s.customer_id AND d.is_current;\n"
            "INSERT INTO dim_customer SELECT 100 + row_number() OVER (), customer_id, segment,\n"
            "    now(), NULL, true FROM stg_customer;\n```\n")
    by_natural = ("CREATE TABLE fact_sale (sale_id bigint PRIMARY KEY,\n"
                  "    customer_id text NOT NULL, plan_key int NOT NULL REFERENCES dim_plan,\n"
                  "    amount numeric(12,2) NOT NULL);\n")
    by_version = by_natural.replace("customer_id text NOT NULL", "customer_key bigint NOT NULL "
                                    "REFERENCES dim_customer")
    flawed = _findings(dimension + by_natural + load, "star", "postgres", resources)
    detail = flawed["facts-reference-dimensions"].detail
    assert flawed["facts-reference-dimensions"].status == "fail", detail
    assert "natural key (customer_id)" in detail
    right = _findings(dimension + by_version + load, "star", "postgres", resources)
    assert right["facts-reference-dimensions"].status == "pass"


_TIERS = ("```sql\nCREATE TABLE stg_customer (customer_id text NOT NULL, tier text NOT NULL,\n"
          "    changed_at timestamptz NOT NULL);\n"
          "CREATE TABLE dim_customer (\n"
          "    customer_sk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
          "    customer_id text NOT NULL, tier text NOT NULL CHECK (tier IN ('bronze', 'gold')),\n"
          "    valid_from timestamptz NOT NULL, valid_to timestamptz,\n"
          "    is_current boolean NOT NULL DEFAULT true);\n```\n\n```sql\n")


def test_scd2_replay_stages_values_the_dimension_accepts_and_staging_needs_no_key(
        resources: Resources) -> None:
    close_then_insert = (
        "UPDATE dim_customer d SET valid_to = s.changed_at, is_current = false\n"
        "FROM stg_customer s WHERE d.customer_id = s.customer_id AND d.is_current\n"
        "  AND d.tier <> s.tier;\n"
        "INSERT INTO dim_customer (customer_id, tier, valid_from)\n"
        "SELECT s.customer_id, s.tier, s.changed_at FROM stg_customer s\n"
        "WHERE NOT EXISTS (SELECT 1 FROM dim_customer d\n"
        "                  WHERE d.customer_id = s.customer_id AND d.is_current);\n```\n")
    right = _findings(_TIERS + close_then_insert, "schema", "postgres", resources)
    assert right["scd2-one-current"].status == "pass", right["scd2-one-current"].detail
    assert right["primary-keys"].status == "pass", right["primary-keys"].detail
    assert "1 staging table(s) need none" in right["primary-keys"].detail
    closes_its_own = (
        "INSERT INTO dim_customer (customer_id, tier, valid_from)\n"
        "SELECT s.customer_id, s.tier, s.changed_at FROM stg_customer s;\n"
        "UPDATE dim_customer d SET valid_to = s.changed_at, is_current = false\n"
        "FROM stg_customer s WHERE d.customer_id = s.customer_id AND d.is_current;\n```\n")
    flawed = _findings(_TIERS + closes_its_own, "schema", "postgres", resources)
    assert flawed["scd2-one-current"].status == "fail"
    assert "no current row" in flawed["scd2-one-current"].detail


_DAILY = ("```sql\nCREATE TABLE samples (\n"
          "    device_id bigint NOT NULL, sampled_at timestamptz NOT NULL,\n"
          "    ingested_at timestamptz NOT NULL, reading numeric NOT NULL)\n"
          "    PARTITION BY RANGE ({key});\n"
          "CREATE TABLE samples_d1 PARTITION OF samples\n"
          "    FOR VALUES FROM ('2024-09-01 00:00+00') TO ('2024-09-02 00:00+00');\n"
          "CREATE TABLE samples_d2 PARTITION OF samples\n"
          "    FOR VALUES FROM ('2024-09-02 00:00+00') TO ('2024-09-03 00:00+00');\n"
          "CREATE TABLE samples_rest PARTITION OF samples DEFAULT;\n```\n")
_ASKED = ("Queries: `SELECT ... FROM samples WHERE sampled_at >= $1 AND sampled_at < $2 "
          "AND device_id = $3`. Partition it.")


def test_daily_partitions_from_a_first_of_month_are_not_a_month_ending_early(
        resources: Resources) -> None:
    found = _findings(_DAILY.format(key="sampled_at"), "partition", "postgres", resources,
                      prompt=_ASKED)
    assert found["boundary-dates"].status == "pass", found["boundary-dates"].detail
    assert found["pruning"].status == "pass", found["pruning"].detail


def test_a_key_the_users_queries_never_filter_on_prunes_nothing(resources: Resources) -> None:
    found = _findings(_DAILY.format(key="ingested_at"), "partition", "postgres", resources,
                      prompt=_ASKED)
    assert found["pruning"].status == "fail"
    assert "partitioned on ingested_at" in found["pruning"].detail


def test_a_quoted_mixed_case_table_is_matched_to_the_users_query(resources: Resources) -> None:
    table = ('```sql\nCREATE TABLE "Ticket" ("TicketId" bigint PRIMARY KEY,\n'
             '    "TenantId" int NOT NULL, "OpenedAt" timestamptz NOT NULL);\n'
             'CREATE INDEX "Ticket_idx" ON "Ticket" ({columns});\n```\n')
    asked = ('`SELECT "TicketId" FROM "Ticket" WHERE "TenantId" = $1 AND "OpenedAt" >= $2`')
    flawed = _findings(table.format(columns='"OpenedAt", "TenantId"'), "index", "postgres",
                       resources, prompt=asked)
    assert flawed["index-order"].status == "fail", flawed["index-order"].detail
    right = _findings(table.format(columns='"TenantId", "OpenedAt"'), "index", "postgres",
                      resources, prompt=asked)
    assert right["index-order"].status == "pass", right["index-order"].detail
    assert right["index-used"].status == "pass", right["index-used"].detail


def test_a_window_cut_at_midnight_is_not_the_rolling_window(resources: Resources) -> None:
    asked = ("```sql\nSELECT o.order_id FROM orders o\n"
             "WHERE o.created_at >= now() - interval '30 days';\n```\n")
    midnight = ("```sql\nSELECT o.order_id FROM orders o\n"
                "WHERE o.created_at >= current_date - 30;\n```\n")
    found = _findings(midnight, "optimize", "postgres", resources, prompt=asked)
    assert found["same-result"].status == "fail", found["same-result"].detail
    assert "30-day-window-edge" in found["same-result"].detail
    rolling = midnight.replace("current_date - 30", "now() - interval '30 days'")
    rolling = rolling.replace("SELECT o.order_id", "SELECT DISTINCT o.order_id")
    same = _findings(rolling, "optimize", "postgres", resources, prompt=asked)
    assert same["same-result"].status == "pass", same["same-result"].detail


def test_a_timestamp_is_an_instant_whatever_its_name(resources: Resources) -> None:
    text = ("```sql\nCREATE TABLE parcel_scans (scan_id bigint PRIMARY KEY,\n"
            "    scanned timestamp NOT NULL, opens_local timestamp,\n"
            "    sent timestamptz NOT NULL);\n```\n")
    found = _findings(text, "schema", "duckdb", resources)
    assert found["tz-aware"].status == "fail"
    assert found["tz-aware"].detail.endswith("parcel_scans.scanned")


def test_a_line_number_alone_is_not_the_key_of_a_detail_row(resources: Resources) -> None:
    text = ("```sql\nCREATE TABLE invoices (invoice_id bigint PRIMARY KEY);\n"
            "CREATE TABLE invoice_lines (line_no int {key},\n"
            "    invoice_id bigint NOT NULL REFERENCES invoices{tail});\n```\n")
    flawed = _findings(text.format(key="PRIMARY KEY", tail=""), "schema", "postgres",
                       resources)
    assert flawed["primary-keys"].status == "fail"
    assert "lacks invoice_id" in flawed["primary-keys"].detail
    right = _findings(text.format(key="NOT NULL", tail=",\n    PRIMARY KEY (invoice_id, "
                                  "line_no)"), "schema", "postgres", resources)
    assert right["primary-keys"].status == "pass", right["primary-keys"].detail


def test_a_column_the_prompt_says_is_nullable_gets_nulls_in_a_derived_schema(
        resources: Resources) -> None:
    asked = ("```sql\nSELECT c.customer_id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM "
             "orders o\n  WHERE o.customer_id = c.customer_id AND o.region = 'blocked');\n```\n"
             "Tables: customers (customer_id bigint PK), orders (order_id bigint PK, "
             "customer_id bigint NULL, region text).")
    not_in = ("```sql\nSELECT c.customer_id FROM customers c WHERE c.customer_id NOT IN "
              "(SELECT o.customer_id FROM orders o WHERE o.region = 'blocked');\n```\n")
    found = _findings(not_in, "optimize", "postgres", resources, prompt=asked)
    assert found["same-result"].status == "fail", found["same-result"].detail
    assert "dataset nulls" in found["same-result"].detail
    assert "tables the prompt describes" in found["same-result"].detail


def test_a_key_added_by_alter_under_a_migration_heading_is_setup() -> None:
    from pipeline_plumber.evals.execution.program import build_program

    text = ("```sql\nCREATE TABLE t (id INT NOT NULL, note TEXT);\n```\n\n"
            "Keys come in a second migration step:\n\n"
            "```sql\nALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY (id);\n```\n\n"
            "Evolution, later:\n\n```sql\nALTER TABLE t ADD COLUMN extra TEXT;\n```\n")
    program = build_program(Answer(text, "file"), "postgres")
    assert [s.kind for s in program.steps] == ["ddl", "ddl", "example"]


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_case_probes_find_tables_the_answer_puts_in_a_schema_of_its_own(
        engine: str, resources: Resources) -> None:
    from pipeline_plumber.evals.scorers.behaviour import Probe, sql_behaves

    text = ("```sql\nCREATE SCHEMA mart;\n"
            "CREATE TABLE mart.dim_customer (customer_key INT PRIMARY KEY,\n"
            "    customer_id TEXT NOT NULL);\n```\n")
    probe = Probe.model_validate({"name": "a customer without an id is refused", "steps": [
        {"sql": "INSERT INTO dim_customer VALUES (1, NULL)", "expect": "error"}]})
    ctx = Context(dialect=engine, resources=resources)
    score = sql_behaves(probes=[probe])(Answer(text, "file"), ctx)
    assert score.status == "pass", score.explanation


PARTITIONED_EVENTS = """```sql
CREATE TABLE events (event_id bigint NOT NULL, occurred_at timestamptz NOT NULL,
    PRIMARY KEY (event_id, occurred_at)) PARTITION BY RANGE (occurred_at);
CREATE TABLE events_2024_05 PARTITION OF events
    FOR VALUES FROM ('2024-05-01 00:00+00') TO ('2024-06-01 00:00+00');
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX CONCURRENTLY events_time ON events_2024_05 (occurred_at);
```

Retention, monthly:

```sql
ALTER TABLE events DETACH PARTITION {detached} CONCURRENTLY;
DROP TABLE {detached};
```
"""


def test_concurrent_ddl_and_retention_of_an_illustrative_month_are_not_failures(
        resources: Resources) -> None:
    illustrative = _findings(PARTITIONED_EVENTS.format(detached="events_2023_05"), "partition",
                             "postgres", resources)
    assert illustrative["maintenance-runs"].status == "n/a"
    assert "events_2023_05" in illustrative["maintenance-runs"].detail
    own = _findings(PARTITIONED_EVENTS.format(detached="events_2024_05"), "partition",
                    "postgres", resources)
    assert own["maintenance-runs"].status == "pass", own["maintenance-runs"].detail


def _score_case(case_id: str, text: str, resources: Resources) -> CaseResult:
    """Grade `text` as `plumber eval score --case` does: the case's checks and its rubric."""
    root = Path(__file__).resolve().parents[1]
    suite = load_suite(root / "evals", load_checklists(root / "kb"), with_answers=False)
    case = next(c for c in suite.cases if c.id == case_id)
    return score_case(case, Answer(text, "file"), suite.rubric_for(case), resources=resources)


def _case_check(case_id: str, check_id: str, text: str, resources: Resources) -> str:
    result = _score_case(case_id, text, resources)
    return next(r.status for r in result.checks if r.id == check_id)


def test_an_art_index_for_a_duckdb_date_range_is_refused(resources: Resources) -> None:
    point = "```sql\nCREATE UNIQUE INDEX orders_id ON orders (order_id);\n```\n"
    ranges = point + "```sql\nCREATE INDEX orders_day ON orders (order_date);\n```\n"
    assert _case_check("index-duckdb-lookups", "behaves", point, resources) == "pass"
    assert _case_check("index-duckdb-lookups", "behaves", ranges, resources) == "fail"


def test_a_spot_check_under_how_to_verify_is_not_a_proposed_select_star() -> None:
    from pipeline_plumber.evals.scorers.sql import sql_no_select_star

    rewrite = ("```sql\nCREATE VIEW leaders AS SELECT category, product_id FROM sales;\n```\n")
    check = "\n## How to verify\n\n```sql\nSELECT * FROM leaders;\n```\n"
    proposed = "\nThen read it:\n\n```sql\nSELECT * FROM leaders;\n```\n"
    score = sql_no_select_star()
    ctx = Context(dialect="duckdb")
    assert score(Answer(rewrite + check, "file"), ctx).status == "pass"
    assert score(Answer(rewrite + proposed, "file"), ctx).status == "fail"


EVENTS = """```sql
CREATE TABLE users (user_id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE events (event_id uuid NOT NULL, user_id bigint NOT NULL, event_type text NOT NULL,
    occurred_at timestamptz NOT NULL, received_at timestamptz NOT NULL DEFAULT now(),
    properties jsonb NOT NULL DEFAULT '{}');
ALTER TABLE events ADD PRIMARY KEY (event_id);
ALTER TABLE events ADD FOREIGN KEY (user_id) REFERENCES users (user_id);
ALTER TABLE events ADD CHECK (event_type IN ('app_open', 'view_item', '{cart}', 'purchase'));
```

## How to verify

```sql
SELECT conname FROM pg_constraint WHERE conrelid = 'events'::regclass;
```
"""


def _case_verdict(case_id: str, text: str, resources: Resources) -> str:
    return _score_case(case_id, text, resources).status


def test_an_undocumented_correct_table_passes_and_a_misspelt_event_type_fails(
        resources: Resources) -> None:
    assert _case_verdict("schema-events-postgres", EVENTS.replace("{cart}", "add_to_cart"),
                         resources) == "pass"
    assert _case_verdict("schema-events-postgres", EVENTS.replace("{cart}", "add_to_card"),
                         resources) == "fail"


def test_an_attribute_the_user_says_changes_is_kept_as_of_each_fact(
        resources: Resources) -> None:
    prompt = "Customers change segment occasionally; report revenue by segment, day by day."
    tables = ("```sql\nCREATE TABLE dim_customer (customer_key INT PRIMARY KEY,\n"
              "    customer_id TEXT NOT NULL, segment TEXT NOT NULL{versions});\n"
              "CREATE TABLE fact_revenue (day DATE NOT NULL, customer_key INT NOT NULL\n"
              "    REFERENCES dim_customer (customer_key), amount DECIMAL(12,2) NOT NULL,\n"
              "    PRIMARY KEY (day, customer_key));\n```\n")
    overwritten = _findings(tables.format(versions=""), "star", "duckdb", resources, prompt)
    assert overwritten["history-kept"].status == "fail"
    assert "segment (dim_customer)" in overwritten["history-kept"].detail
    versioned = _findings(tables.format(versions=", valid_from DATE NOT NULL, valid_to DATE"),
                          "star", "duckdb", resources, prompt)
    assert versioned["history-kept"].status == "pass", versioned["history-kept"].detail


def test_a_rewrite_may_keep_star_where_the_users_query_returns_the_whole_table() -> None:
    from pipeline_plumber.evals.scorers.sql import sql_no_select_star

    quoted = ("```sql\nSELECT v.* FROM versions v JOIN (SELECT customer_id, max(updated_at) AS m\n"
              "FROM versions GROUP BY customer_id) x ON x.customer_id = v.customer_id\n"
              "AND v.updated_at = x.m;\n```\n")
    rewrite = Answer("```sql\nSELECT * FROM versions QUALIFY row_number() OVER (\n"
                     "PARTITION BY customer_id ORDER BY updated_at DESC, version_id DESC) = 1;\n"
                     "```\n", "file")
    whole = Context(dialect="duckdb", prompt="Latest version per customer_id:\n\n" + quoted)
    listed = Context(dialect="duckdb", prompt="We only need customer_id and email_address:\n\n"
                     + quoted)
    assert sql_no_select_star()(rewrite, whole).status == "pass"
    assert sql_no_select_star()(rewrite, listed).status == "fail"


def test_a_how_to_verify_sketch_around_a_placeholder_is_not_a_parse_failure() -> None:
    from pipeline_plumber.evals.scorers.sql import sql_parses

    work = "```sql\nSELECT order_id FROM orders WHERE total > 5;\n```\n"
    sketch = "```sql\nSELECT count(*) FROM (<rewrite>) AS r;\n```\n"
    ctx = Context(dialect="postgres")
    assert sql_parses()(Answer(work + "\n## How to verify\n\n" + sketch, "file"), ctx).status \
        == "pass"
    assert sql_parses()(Answer(work + "\nThen:\n\n" + sketch, "file"), ctx).status == "fail"


def test_a_snowflake_clustering_key_on_a_raw_timestamp_fails_pruning(
        resources: Resources) -> None:
    table = ("```sql\nCREATE TABLE clicks (event_ts TIMESTAMP_NTZ NOT NULL, site_id NUMBER)\n"
             "    CLUSTER BY ({key}, site_id);\n```\n")
    raw = _findings(table.format(key="event_ts"), "partition", "snowflake", resources)
    assert raw["pruning"].status == "fail"
    assert "TO_DATE(event_ts)" in raw["pruning"].detail
    daily = _findings(table.format(key="TO_DATE(event_ts)"), "partition", "snowflake", resources)
    assert daily["pruning"].status == "n/a"


def test_dimension_ddl_with_an_identity_key_and_the_source_id_names_both_keys() -> None:
    from pipeline_plumber.evals.scorers.text import concept

    ddl = ("```sql\nCREATE TABLE dim_team (\n    team_key NUMBER IDENTITY NOT NULL,\n"
           "    team_id VARCHAR NOT NULL,\n"
           "    CONSTRAINT pk_dim_team PRIMARY KEY (team_key));\n```\n")
    other = ddl.replace("team_id", "region_id").replace(" IDENTITY", "")
    ctx = Context(dialect="snowflake")
    for name in ("surrogate-key", "natural-key"):
        assert concept(concepts=[name], where="all")(Answer(ddl, "file"), ctx).status == "pass"
        assert concept(concepts=[name], where="all")(Answer(other, "file"), ctx).status == "fail"


def test_a_shipments_table_numbering_its_own_ids_still_gets_the_probe_rows(
        resources: Resources) -> None:
    text = ("```sql\nCREATE TABLE shipments (shipment_id bigint GENERATED ALWAYS AS IDENTITY\n"
            "    PRIMARY KEY, carrier_id int NOT NULL, shipped_at timestamptz NOT NULL,\n"
            "    delivered_at timestamptz);\n"
            "CREATE INDEX ON shipments (carrier_id, shipped_at);\n"
            "CREATE INDEX ON shipments (shipped_at) WHERE delivered_at IS NULL;\n```\n")
    assert _case_check("index-shipments-postgres", "behaves", text, resources) == "pass"


def test_a_subscription_period_may_not_end_the_moment_it_starts(resources: Resources) -> None:
    text = ("```sql\nCREATE TABLE subscriptions (subscription_id BIGINT PRIMARY KEY,\n"
            "    account_id BIGINT NOT NULL, plan VARCHAR NOT NULL CHECK (plan IN ('starter',\n"
            "    'team', 'enterprise')), status VARCHAR NOT NULL CHECK (status IN ('trialing',\n"
            "    'active', 'past_due', 'canceled')), period_start TIMESTAMPTZ NOT NULL,\n"
            "    period_end TIMESTAMPTZ NOT NULL, monthly_amount_usd DECIMAL(12,2) NOT NULL\n"
            "    CHECK (monthly_amount_usd >= 0), CHECK (period_end {op} period_start));\n```\n")
    assert _case_check("schema-subscriptions-duckdb", "behaves", text.format(op=">"),
                       resources) == "pass"
    assert _case_check("schema-subscriptions-duckdb", "behaves", text.format(op=">="),
                       resources) == "fail"


def test_a_month_cut_a_day_short_loses_the_rows_of_its_last_day(resources: Resources) -> None:
    text = ("```sql\nSELECT user_id, event_ts, revenue FROM analytics.events\n"
            "WHERE DATE(event_ts) BETWEEN '2024-05-01' AND '{last}'\n"
            "  AND event_name = 'purchase';\n```\n")
    case = "optimize-bigquery-partition-pruning"
    assert _case_check(case, "same-result/behaves", text.format(last="2024-05-31"),
                       resources) == "pass"
    assert _case_check(case, "same-result/behaves", text.format(last="2024-05-30"),
                       resources) == "fail"


def test_an_expression_index_is_named_as_a_kind_of_index() -> None:
    from pipeline_plumber.evals.scorers.text import concept

    said = Answer("One unique expression index on lower(email) serves the login.", "file")
    unsaid = Answer("One unique index serves the login.", "file")
    ctx = Context(dialect="postgres")
    assert concept(concepts=["index-kind"], where="all")(said, ctx).status == "pass"
    assert concept(concepts=["index-kind"], where="all")(unsaid, ctx).status == "fail"


def test_star_times_carry_a_zone_when_the_prompt_speaks_of_time_zones(
        resources: Resources) -> None:
    text = ("```sql\nCREATE TABLE dim_team (team_key INT PRIMARY KEY, team_id TEXT NOT NULL);\n"
            "CREATE TABLE fact_ticket (ticket_id TEXT PRIMARY KEY, team_key INT NOT NULL\n"
            "    REFERENCES dim_team (team_key), opened_at TIMESTAMP NOT NULL);\n```\n")
    zones = _findings(text, "star", "duckdb", resources, "Agents work in 6 time zones.")
    assert zones["tz-aware"].status == "fail"
    assert "fact_ticket.opened_at" in zones["tz-aware"].detail
    one_zone = _findings(text, "star", "duckdb", resources, "Agents work in one office.")
    assert one_zone["tz-aware"].status == "n/a"
