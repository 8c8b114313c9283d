"""Scorer verdicts from YAML fixtures (tests/fixtures/scorers), plus what data cannot cover."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evals_support import scorer_cases
from pipeline_plumber.evals.answers import Answer
from pipeline_plumber.evals.scorers import REGISTRY, Context, Resources, build_check, load_all
from pipeline_plumber.evals.scorers.behaviour import DUCKDB_CONFIG, split_statements
from pipeline_plumber.evals.scorers.judge import (
    JudgeStore,
    judge_request,
    parse_verdict,
    request_key,
)

CASES = scorer_cases()


@pytest.fixture(scope="module")
def resources() -> Iterator[Resources]:
    with Resources() as shared:
        yield shared


@pytest.mark.parametrize("case", CASES, ids=[f"{c['file']}:{c['id']}" for c in CASES])
def test_scorer_fixture(case: dict[str, Any], resources: Resources, tmp_path: Path) -> None:
    fn = build_check(case["scorer"], case.get("args", {}))
    answer = Answer(case["answer"], "file")
    prompt = case.get("prompt", "")
    store = JudgeStore(tmp_path / "judge")
    if "votes" in case:
        request = judge_request(case["args"]["criterion"], prompt, answer.text)
        for vote, text in enumerate(case["votes"]):
            store.put(request_key(request, vote), vote, request, text)
    resources.judge_store = store
    score = fn(answer, Context(dialect=case.get("dialect"), prompt=prompt,
                               command=case.get("command"), resources=resources))
    assert score.status == case["expect"], score.explanation
    if "blocker" in case:
        assert score.blocker == case["blocker"], score
    assert case["explanation"] in score.explanation
    if score.status == "not-scored":
        assert score.value is None
    else:
        assert score.value is not None and 0 <= score.value <= 1


def test_every_scorer_has_fixtures_for_pass_and_fail() -> None:
    load_all()
    seen: dict[str, set[str]] = {}
    for case in CASES:
        seen.setdefault(case["scorer"], set()).add(case["expect"])
    for name in REGISTRY:
        assert {"pass", "fail"} <= seen.get(name, set()), f"{name} lacks a pass or fail fixture"


def test_every_scorer_documents_a_passing_and_a_failing_example() -> None:
    load_all()
    for info in REGISTRY.values():
        assert "Passes:" in info.doc and "Fails:" in info.doc, info.name


def test_duckdb_sandbox_has_no_external_access(tmp_path: Path) -> None:
    import duckdb

    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n", encoding="utf-8")
    con = duckdb.connect(":memory:", config=dict(DUCKDB_CONFIG))
    for statement in (
        f"SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"COPY (SELECT 1 AS a) TO '{tmp_path / 'out.csv'}'",
        f"ATTACH '{tmp_path / 'other.db'}'",
        "INSTALL httpfs",
    ):
        with pytest.raises(duckdb.Error):
            con.execute(statement)
    with pytest.raises(duckdb.Error):
        con.execute("SET enable_external_access = true")
    assert not (tmp_path / "out.csv").exists()


def test_behaviour_does_not_run_copy_from_answers() -> None:
    fn = build_check("sql_behaves", {"engine": "duckdb", "probes": [
        {"name": "table exists", "steps": [{"sql": "SELECT count(*) FROM t", "expect": [[0]]}]}]})
    answer = Answer("```sql\nCREATE TABLE t (a INT PRIMARY KEY);\n"
                    "COPY t FROM '/etc/passwd';\n```\n", "file")
    score = fn(answer, Context(dialect="duckdb"))
    assert score.status == "pass", score.explanation


_CHECKS_PROBE = {"engine": "duckdb", "setup": ["CREATE TABLE pay (id INT, amount INT)"],
                 "probes": [{"name": "a repeated id is flagged", "steps": [
                     {"sql": "INSERT INTO pay VALUES (1, 5), (2, 7)"},
                     {"run": "answer-checks"},
                     {"sql": "INSERT INTO pay VALUES (1, 5)"},
                     {"run": "answer-checks", "expect": "fires"}]}]}


@pytest.mark.parametrize(("checks", "status"), [
    ("SELECT id FROM pay GROUP BY id HAVING count(*) > 1", "pass"),
    ("SELECT count(*) - count(DISTINCT id) AS copies FROM pay", "pass"),
    ("SELECT id FROM (SELECT DISTINCT * FROM pay) GROUP BY id HAVING count(*) > 1", "fail"),
    ("SELECT count(*) AS staged FROM pay", "fail"),
])
def test_answer_checks_fire_on_the_defect_only(checks: str, status: str) -> None:
    fn = build_check("sql_behaves", _CHECKS_PROBE)
    # a check on a table the probe never has is left out, and DuckDB carries on after it
    answer = Answer(f"```sql\nSELECT * FROM missing_table;\n{checks};\n```\n", "file")
    score = fn(answer, Context(dialect="duckdb"))
    assert score.status == status, score.explanation
    if status == "fail":
        assert "none of the answer's 1 check queries flags it" in score.explanation


_GIVEN_TABLES = {"engine": "duckdb",
                 "setup": ["CREATE TABLE src (id INT)", "CREATE TABLE dst (id INT PRIMARY KEY)"],
                 "probes": [{"name": "a re-run keeps one row", "steps": [
                     {"sql": "INSERT INTO src VALUES (1)"},
                     {"run": "answer-dml", "into": "dst"}, {"run": "answer-dml", "into": "dst"},
                     {"sql": "SELECT count(*) FROM dst", "expect": [[1]]}]}]}


def test_a_load_into_the_prompts_tables_needs_no_ddl_of_its_own() -> None:
    fn = build_check("sql_behaves", _GIVEN_TABLES)
    load = Answer("```sql\nINSERT OR REPLACE INTO dst SELECT id FROM src;\n```\n", "file")
    score = fn(load, Context(dialect="duckdb"))
    assert score.status == "pass", score.explanation
    nothing = Answer("```sql\nSELECT 1;\n```\n", "file")
    score = fn(nothing, Context(dialect="duckdb"))
    assert score.status == "fail" and "has no DDL" in score.explanation


def test_split_statements_respects_strings_and_dollar_quotes() -> None:
    code = ("CREATE TABLE t (a text DEFAULT 'x;y');\n-- a comment; with a semicolon\n"
            "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n"
            "INSERT INTO t VALUES ('a;b');\nSELECT 1")
    parts = split_statements(code, "postgres")
    assert [kind for _, kind in parts] == ["ddl", "ddl", "dml", "other"]
    assert parts[0][0] == "CREATE TABLE t (a text DEFAULT 'x;y')"
    assert parts[2][0] == "INSERT INTO t VALUES ('a;b')"


@pytest.mark.parametrize(("text", "value"), [
    ("reasoning\nSCORE: 7", 0.7),
    ("SCORE: 2\nmore\nSCORE: 10", 1.0),
    ("SCORE: 11", None),
    ("score 7", None),
])
def test_parse_verdict(text: str, value: float | None) -> None:
    assert parse_verdict(text) == value


def test_judge_request_is_pure_and_keys_cover_the_vote() -> None:
    a = judge_request("criterion", "prompt", "answer")
    assert a == judge_request("criterion", "prompt", "answer")
    assert request_key(a, 0) != request_key(a, 1)
    assert request_key(a, 0) != request_key(judge_request("criterion", "prompt", "answer!"), 0)


def test_judge_store_miss_on_corrupt_file(tmp_path: Path) -> None:
    store = JudgeStore(tmp_path)
    (tmp_path / "abc.json").write_text("{not json", encoding="utf-8")
    assert store.get("abc") is None
    assert store.get("missing") is None


def test_a_scorer_that_raises_is_a_failed_check() -> None:
    from pipeline_plumber.evals.cases import Check
    from pipeline_plumber.evals.scoring import run_check

    def broken(answer: Answer, ctx: Context) -> Any:
        raise RuntimeError("boom")

    result = run_check(Check("x", "contains", {}, 1.0, "case", broken), Answer("", "file"),
                       Context())
    assert result.status == "fail" and "RuntimeError: boom" in result.explanation


_BY_ROLE = {"engine": "duckdb", "probes": [
    {"name": "a valid subscription is accepted", "steps": [
        {"row": {"table": "subscri", "having": ["status", "start", "end"],
                 "values": {"status": "'active'"}}}]},
    {"name": "a period that ends before it starts is rejected", "steps": [
        {"row": {"table": "subscri", "values": {"status": "'active'", "start": "'2024-02-01'",
                                                "end": "'2024-01-01'"}},
         "expect": "error"}]},
    {"name": "an unknown status is rejected", "steps": [
        {"row": {"table": "subscri", "values": {"status": "'paused'"}}, "expect": "error"}]}]}

_STATUS_LOOKUP = """```sql
CREATE TABLE customer (customer_id BIGINT PRIMARY KEY, name VARCHAR NOT NULL);
CREATE TABLE subscription_statuses (status VARCHAR PRIMARY KEY);
INSERT INTO subscription_statuses VALUES ('active'), ('canceled');
CREATE TABLE customer_subscription (
    id BIGINT PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customer (customer_id),
    status VARCHAR NOT NULL REFERENCES subscription_statuses (status),
    current_period_start DATE NOT NULL, current_period_end DATE NOT NULL%s);
```
"""


@pytest.mark.parametrize(("check", "status"), [
    (", CHECK (current_period_end > current_period_start)", "pass"),
    ("", "fail"),
])
def test_a_row_step_finds_the_table_and_its_parents_by_role(check: str, status: str,
                                                           resources: Resources) -> None:
    # no name of the probe is the answer's: the table, the columns and the parent are found in
    # its catalog, the seeded status lookup is reused and the customer row is synthesised
    fn = build_check("sql_behaves", _BY_ROLE)
    context = Context(dialect="duckdb", resources=resources)
    score = fn(Answer(_STATUS_LOOKUP % check, "file"), context)
    assert score.status == status, score.explanation
    if status == "fail":
        assert "'a period that ends before it starts is rejected': step 1 (a row into " \
               "customer_subscription) succeeded" in score.explanation
        assert "2/3 probes behave" in score.explanation


def test_a_row_step_leaves_a_generated_column_to_the_database(resources: Resources) -> None:
    fn = build_check("sql_behaves", {"engine": "duckdb", "probes": [
        {"name": "a line stores its amount", "steps": [
            {"row": {"table": "^lines$", "values": {"qty": "2", "price": "0.10",
                                                    "amount": "0.20"}}},
            {"sql": "SELECT amount FROM lines", "expect": [[0.2]]}]}]})
    answer = Answer("```sql\nCREATE TABLE orders (order_id INT PRIMARY KEY);\n"
                    "CREATE TABLE lines (order_id INT NOT NULL REFERENCES orders, qty INT, "
                    "price DECIMAL(10,2), amount DECIMAL(10,2) GENERATED ALWAYS AS "
                    "(qty * price));\n```\n", "file")
    score = fn(answer, Context(dialect="duckdb", resources=resources))
    assert score.status == "pass", score.explanation


def test_a_row_step_with_no_fitting_table_is_a_probe_that_cannot_run(resources: Resources
                                                                    ) -> None:
    fn = build_check("sql_behaves", _BY_ROLE)
    answer = Answer("```sql\nCREATE TABLE t (a INT PRIMARY KEY);\n```\n", "file")
    score = fn(answer, Context(dialect="duckdb", resources=resources))
    assert score.status == "fail" and score.blocker
    assert "could not run: no table has columns matching /status/" in score.explanation


def test_a_row_step_keeps_a_key_it_sets_even_where_the_database_generates_it(
        resources: Resources) -> None:
    # a probe that says customer 1 means customer 1, though a sequence would number it
    fn = build_check("sql_behaves", {"engine": "duckdb", "probes": [
        {"name": "customer 7 is stored", "steps": [
            {"row": {"table": "^customers$", "values": {"customer_id": "7"}}},
            {"sql": "SELECT customer_id FROM customers", "expect": [[7]]}]}]})
    answer = Answer("```sql\nCREATE SEQUENCE customer_seq;\nCREATE TABLE customers (customer_id "
                    "BIGINT PRIMARY KEY DEFAULT nextval('customer_seq'), full_name VARCHAR NOT "
                    "NULL);\n```\n", "file")
    score = fn(answer, Context(dialect="duckdb", resources=resources))
    assert score.status == "pass", score.explanation


def test_a_row_step_tries_a_columns_alternatives_in_order(resources: Resources) -> None:
    # `started_at` and `ended_at` come first, yet `period_start|start` means the period's
    # start: were they chosen, the backwards period would be stored and the probe fail
    fn = build_check("sql_behaves", {"engine": "duckdb", "probes": [
        {"name": "a period that ends before it starts is rejected", "steps": [
            {"row": {"table": "subscri", "values": {"period_start|start": "'2024-02-01'",
                                                    "period_end|end": "'2024-01-01'"}},
             "expect": "error"}]}]})
    answer = Answer("```sql\nCREATE TABLE subscription (id INT PRIMARY KEY, "
                    "started_at DATE NOT NULL, ended_at DATE, current_period_start DATE NOT "
                    "NULL, current_period_end DATE NOT NULL, "
                    "CHECK (current_period_end > current_period_start));\n```\n", "file")
    score = fn(answer, Context(dialect="duckdb", resources=resources))
    assert score.status == "pass", score.explanation
