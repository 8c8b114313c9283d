"""Grading one answer: labelled correct answers, `eval score --case/--prompt`, scoring workers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from evals_support import EVALS, KB
from support.cli import plumber

CASE = "schema-subscriptions-duckdb"  # DuckDB: no cluster to start


def invoke(*args: str) -> Any:
    return plumber(*args, "--kb", str(KB))


def _suite_with(tmp_path: Path, name: str, text: str) -> Path:
    root = tmp_path / "evals"
    shutil.copytree(EVALS, root, ignore=shutil.ignore_patterns("recordings"))
    (root / "answers" / CASE / name).write_text(text, encoding="utf-8")
    return root


def _body(kind: str) -> str:
    text = (EVALS / "answers" / CASE / f"{kind}.md").read_text(encoding="utf-8")
    return text.split("\n---\n", 1)[1]


@pytest.mark.engines
def test_a_correct_answer_is_held_to_every_check_and_counted() -> None:
    root = EVALS
    result = invoke("eval", "calibrate", "--evals", str(root), "--case", CASE, "--json",
                    "-j", "2")
    data = json.loads(result.stdout)
    assert data["false_passes"] == [] and data["false_fails"] == []
    assert data["by_kind"]["reference"] == 1


@pytest.mark.engines
def test_a_correct_answer_that_fails_its_case_is_a_false_fail(tmp_path: Path) -> None:
    flawed = (EVALS / "answers" / CASE).glob("flawed-*.md")
    wrong = _body(next(iter(sorted(flawed))).stem)
    root = _suite_with(tmp_path, "correct-mislabelled.md",
                       "---\nprovenance: hand-written correct\n---\n" + wrong)
    result = invoke("eval", "calibrate", "--evals", str(root), "--case", CASE, "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 1
    already = len(list((EVALS / "answers" / CASE).glob("correct-*.md")))
    assert data["by_kind"] == {"correct": already + 1, "flawed": data["by_kind"]["flawed"],
                               "reference": 1}
    assert [Path(p).name for p in data["false_fails"]] == ["correct-mislabelled.md"]
    assert data["false_passes"] == []
    text = invoke("eval", "calibrate", "--evals", str(root), "--case", CASE).stdout
    assert "false passes: 0 (flawed answers whose case passed); false fails: 1" in text


@pytest.mark.engines
def test_a_correct_answer_file_must_say_so(tmp_path: Path) -> None:
    root = _suite_with(tmp_path, "correct-other-words.md",
                       "---\nprovenance: hand-written reference\n---\n" + _body("reference"))
    result = invoke("eval", "calibrate", "--evals", str(root), "--case", CASE)
    assert result.exit_code == 2
    assert "correct-other-words.md:2: provenance: a correct-*.md file must be labelled " \
           "'hand-written correct'" in result.output


@pytest.mark.engines
def test_score_case_grades_by_the_cases_probes_and_rubric(tmp_path: Path) -> None:
    answers = EVALS / "answers" / CASE
    good = invoke("eval", "score", "--case", CASE, "--answer", str(answers / "reference.md"),
                  "--json")
    assert good.exit_code == 0, good.output
    data = json.loads(good.stdout)
    assert data["case_id"] == CASE and data["command"] == "schema"
    origins = {c["origin"] for c in data["checks"]}
    assert "case" in origins and any(o.startswith("rubric:") for o in origins)
    flawed = sorted(answers.glob("flawed-*.md"))[0]
    bad = invoke("eval", "score", "--case", CASE, "--command", "schema", "--answer", str(flawed))
    assert bad.exit_code == 1
    assert bad.stdout.splitlines()[-1].startswith("fail: score ")


def test_score_case_refuses_a_command_or_prompt_that_disagrees(tmp_path: Path) -> None:
    answer = str(EVALS / "answers" / CASE / "reference.md")
    other = invoke("eval", "score", "--case", CASE, "--command", "star", "--answer", answer)
    assert other.exit_code == 2
    assert f"--command: case '{CASE}' is for command 'schema', not 'star'" in other.output
    prompt = tmp_path / "prompt.md"
    prompt.write_text("anything", encoding="utf-8")
    both = invoke("eval", "score", "--case", CASE, "--prompt", str(prompt), "--answer", answer)
    assert both.exit_code == 2 and "has its own prompt" in both.output
    neither = invoke("eval", "score", "--answer", answer)
    assert neither.exit_code == 2 and "--command NAME, or a golden case with --case" in \
        neither.output
    unknown = invoke("eval", "score", "--case", "no-such-case", "--answer", answer)
    assert unknown.exit_code == 2 and "no case 'no-such-case'" in unknown.output


PROMPT = """Our dashboard query is slow on PostgreSQL 16:

SELECT * FROM orders o JOIN customers c ON c.customer_id = o.customer_id
WHERE o.placed_at >= now() - interval '7 days';
"""

QUOTING = """Your query, as it stands:

```sql
SELECT *
FROM orders o JOIN customers c ON c.customer_id = o.customer_id
WHERE o.placed_at >= now() - interval '7 days';
```

The rewrite names its columns:

```sql
SELECT o.order_id, o.total_amount, c.name
FROM orders o JOIN customers c ON c.customer_id = o.customer_id
WHERE o.placed_at >= now() - interval '7 days';
```
"""


def _check(scorer: str, args: dict[str, Any]) -> Any:
    from pipeline_plumber.evals.cases import Check
    from pipeline_plumber.evals.scorers import build_check

    return Check(scorer, scorer, args, 1.0, "case", build_check(scorer, args))


def test_code_quoted_from_the_prompt_never_counts_against_the_answer() -> None:
    from pipeline_plumber.evals.answers import Answer
    from pipeline_plumber.evals.scorers import Context
    from pipeline_plumber.evals.scoring import run_check

    answer = Answer(QUOTING, "file")
    no_star = _check("regex", {"pattern": r"SELECT\s+\*", "negate": True, "where": "code"})
    blind = run_check(no_star, answer, Context(dialect="postgres"))
    assert blind.status == "fail"
    told = run_check(no_star, answer, Context(dialect="postgres", prompt=PROMPT))
    assert told.status == "pass"
    assert told.explanation.endswith("(code quoted from the prompt left out)")
    own_star = Answer(QUOTING.replace("o.order_id, o.total_amount, c.name", "*, c.name"), "file")
    assert run_check(no_star, own_star, Context(prompt=PROMPT)).status == "fail"


@pytest.mark.engines
def test_score_prompt_option_reads_the_request(tmp_path: Path) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text(QUOTING, encoding="utf-8")
    prompt = tmp_path / "prompt.md"
    prompt.write_text(PROMPT, encoding="utf-8")

    def star_check(*extra: str) -> dict[str, Any]:
        out = invoke("eval", "score", "--command", "optimize", "--answer", str(answer),
                     "--dialect", "postgres", "--json", *extra)
        return next(c for c in json.loads(out.stdout)["checks"]
                    if c["scorer"] == "sql_no_select_star")

    assert star_check()["status"] == "fail"
    assert star_check("--prompt", str(prompt))["status"] == "pass"


def test_a_quoted_statement_the_answer_rewrites_is_an_example_not_run() -> None:
    from pipeline_plumber.evals.answers import Answer
    from pipeline_plumber.evals.execution.program import build_program

    prompt = ("Review this DDL:\n\nCREATE TABLE orders (order_id bigint, placed_at timestamptz, "
              "PRIMARY KEY (order_id)) PARTITION BY RANGE (placed_at);\n")
    answer = Answer("""The key lacks the partition column:

```sql
CREATE TABLE orders (order_id bigint, placed_at timestamptz,
    PRIMARY KEY (order_id)) PARTITION BY RANGE (placed_at);
```

Fixed:

```sql
CREATE TABLE orders (order_id bigint, placed_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, placed_at)) PARTITION BY RANGE (placed_at);
```
""", "file")
    kinds = [(s.kind, s.note) for s in build_program(answer, "postgres", prompt).steps]
    assert kinds[0] == ("example", "quoted from the prompt; the answer gives its own version")
    assert kinds[1][0] == "ddl"
    assert [s.kind for s in build_program(answer, "postgres").steps] == ["ddl", "ddl"]
    kept = Answer(answer.text.split("Fixed:")[0], "file")
    assert [s.kind for s in build_program(kept, "postgres", prompt).steps] == ["ddl"]


FAILING_EXECUTION = {
    "executes": ({}, "```sql\nCREATE TABLE fact (d INT REFERENCES dim_date (d));\n"
                     "CREATE TABLE dim_date (d INT PRIMARY KEY);\n```\n"),
    "behaves": ({"properties": ["exact-money"]},
                "```sql\nCREATE TABLE orders (order_id INT PRIMARY KEY, total DOUBLE);\n```\n"),
    "sql_behaves": ({"probes": [{"name": "a NULL total is refused", "steps": [
        {"sql": "INSERT INTO orders VALUES (1, NULL)", "expect": "error"}]}]},
        "```sql\nCREATE TABLE orders (order_id INT PRIMARY KEY, total DECIMAL(12, 2));\n```\n"),
}


@pytest.mark.parametrize("scorer", sorted(FAILING_EXECUTION))
def test_no_keyword_outweighs_a_failed_execution_check(scorer: str) -> None:
    from pipeline_plumber.evals.answers import Answer
    from pipeline_plumber.evals.scorers import Context, Resources
    from pipeline_plumber.evals.scoring import combine, run_check

    args, text = FAILING_EXECUTION[scorer]
    answer = Answer(text + "\nIdempotent, exact money, keys everywhere: a reviewed schema.\n",
                    "file")
    keyword = _check("concept", {"concepts": ["idempotent"]})
    heavy = type(keyword)("words", "concept", keyword.args, 1000.0, "case", keyword.fn)
    with Resources() as resources:
        ctx = Context(dialect="duckdb", command="schema", resources=resources)
        executed = run_check(_check(scorer, args), answer, ctx)
        worded = run_check(heavy, answer, ctx)
    assert executed.status == "fail" and executed.blocks, executed.explanation
    assert worded.status == "pass"
    score, status = combine((executed, worded), threshold=0.5)
    assert score is not None and score > 0.99 and status == "fail"
