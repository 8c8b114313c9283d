"""`plumber eval`: the shipped suite, exit codes, reports, bad input and recordings."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals_support import EVALS, FIXTURES, KB
from pipeline_plumber.evals.cases import load_checklists, load_suite
from pipeline_plumber.evals.runner import LOG_FORMAT, LOG_VERSION, write_recording
from support.cli import plumber

BAD = yaml.safe_load((FIXTURES / "evals" / "bad_input.yaml").read_text(encoding="utf-8"))
COMMANDS = ("schema", "etl", "optimize", "dq", "governance", "partition", "index", "pipeline",
            "airflow", "star")


def invoke(*args: str) -> Any:
    return plumber(*args, "--kb", str(KB))


def test_shipped_suite_covers_every_command() -> None:
    suite = load_suite(EVALS, load_checklists(KB))
    per_command = {name: 0 for name in COMMANDS}
    for case in suite.cases:
        assert case.command is not None
        per_command[case.command] += 1
    assert all(count >= 3 for count in per_command.values()), per_command
    assert len(suite.cases) >= 30
    dialects = {case.spec.dialect for case in suite.cases}
    assert {"postgres", "snowflake", "bigquery", "duckdb"} <= dialects
    for case in suite.cases:
        pair = suite.answers[case.id]
        assert pair.reference.label and pair.reference.label.provenance == "hand-written reference"
        assert pair.flawed and all(a.label and a.label.reason for a in pair.flawed)


@pytest.mark.engines
def test_calibrate_agrees_fully_on_the_shipped_set() -> None:
    result = invoke("eval", "calibrate", "--evals", str(EVALS), "--json")
    data = json.loads(result.stdout)
    assert data["disagreements"] == []
    assert data["full_agreement"] is True and result.exit_code == 0
    assert data["cases"]["false_pass"] == data["cases"]["false_fail"] == 0
    assert data["cases"]["true_fail"] >= 30  # every flawed answer fails its case
    assert data["scorers"]["judge"]["not_scored"] > 0  # offline: never counted as passes
    assert data["scorers"]["judge"]["true_pass"] == 0


@pytest.mark.engines
def test_run_references_passes_and_writes_reports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke("eval", "run", "--evals", str(EVALS), "--answers", "references",
                    "--command", "schema", "--command", "etl", "--out", str(out), "--html")
    assert result.exit_code == 0, result.output
    log = json.loads((out / "eval-log.json").read_text(encoding="utf-8"))
    assert (log["format"], log["version"]) == (LOG_FORMAT, LOG_VERSION)
    spec = log["spec"]
    assert len(spec["kb_digest"]) == 64 and spec["answers"] == "references"
    assert set(spec["cases"]) == {r["case_id"] for r in log["results"]}
    assert spec["scorers"]["sql_parses"] >= 1 and spec["judge_model"].startswith("claude-")
    assert all(r["status"] == "pass" for r in log["results"])
    judged = [c for r in log["results"] for c in r["checks"] if c["scorer"] == "judge"]
    assert judged and all(c["status"] == "not-scored" and c["value"] is None for c in judged)
    junit = ET.parse(out / "junit.xml").getroot()
    assert junit.get("tests") == str(len(log["results"])) and junit.get("failures") == "0"
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("## plumber eval: passed") and "never counted as passes" in summary
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html and "schema-events-postgres" in html


@pytest.mark.engines
def test_run_flawed_answers_exits_1_with_actionable_reasons(tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    result = plumber("eval", "run", "--evals", str(EVALS), "--answers", "flawed", "--case",
                     "schema-events-postgres", "--kb", str(KB), "-v", "--out", str(tmp_path / "o"),
                     env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1, result.output
    assert "events.user_id is nullable; add NOT NULL" in result.output
    assert "step 1 (a row into events) succeeded; the database should have rejected it" \
        in result.output
    junit = ET.parse(tmp_path / "o" / "junit.xml").getroot()
    failures = junit.findall(".//failure")
    assert len(failures) == len(list((EVALS / "answers" / "schema-events-postgres").glob(
        "flawed-*.md")))
    assert any("not-null-columns (sql_not_null)" in (f.text or "") for f in failures)
    assert "did not pass" in summary.read_text(encoding="utf-8")


def test_run_without_any_recordings_says_what_to_pass_in_one_line(tmp_path: Path) -> None:
    result = invoke("eval", "run", "--evals", str(EVALS), "--recordings", str(tmp_path),
                    "--out", str(tmp_path / "report"))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"error: --answers: no recorded answers in {tmp_path}/answers:"
                                    " pass --answers references")
    assert not (tmp_path / "report").exists()


def test_run_recorded_with_a_case_missing_exits_2(tmp_path: Path) -> None:
    suite = load_suite(EVALS, load_checklists(KB))
    case = next(c for c in suite.cases if c.id == "schema-orders-snowflake")
    write_recording(tmp_path, case, key="a" * 64, repeat=0, model="fixture-not-a-model",
                    request={"messages": []}, response={"text": "an answer"})
    result = invoke("eval", "run", "--evals", str(EVALS), "--recordings", str(tmp_path),
                    "--case", "schema-events-postgres", "--case", "schema-orders-snowflake")
    assert result.exit_code == 2
    assert "no recorded answer for case 'schema-events-postgres'" in result.output
    assert "schema-orders-snowflake" not in result.output


@pytest.mark.engines
def test_the_shipped_suite_is_used_outside_a_checkout_and_named(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("eval", "calibrate", "--case", "schema-events-postgres")
    assert result.exit_code == 0, result.output
    assert "eval suite: the one shipped with plumber (" in result.output
    assert "pass --evals DIR for your own" in result.output
    missing = invoke("eval", "calibrate", "--evals", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2
    assert "eval cases folder not found: pass --evals DIR" in missing.output


@pytest.mark.engines
def test_run_scores_recordings_and_ignores_stale_ones(tmp_path: Path) -> None:
    suite = load_suite(EVALS, load_checklists(KB))
    case = next(c for c in suite.cases if c.id == "schema-orders-snowflake")
    text = suite.answers[case.id].reference.text  # a test double of a model reply
    write_recording(tmp_path, case, key="a" * 64, repeat=0, model="fixture-not-a-model",
                    request={"messages": []}, response={"text": text})
    stale = write_recording(tmp_path, case, key="b" * 64, repeat=1, model="fixture-not-a-model",
                            request={"messages": []}, response={"text": "stale"})
    data = json.loads(stale.read_text(encoding="utf-8"))
    data["prompt_sha256"] = "0" * 64
    stale.write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "answers" / case.id / "broken.json").write_text("{", encoding="utf-8")
    out = tmp_path / "out"
    result = invoke("eval", "run", "--evals", str(EVALS), "--recordings", str(tmp_path),
                    "--case", case.id, "--out", str(out))
    assert result.exit_code == 0, result.output
    log = json.loads((out / "eval-log.json").read_text(encoding="utf-8"))
    assert [r["answer"]["provenance"] for r in log["results"]] == ["recorded"]
    assert log["results"][0]["answer"]["meta"]["model"] == "fixture-not-a-model"


@pytest.mark.engines
def test_score_json_by_command_rubric(tmp_path: Path) -> None:
    answer = EVALS / "answers" / "schema-events-postgres" / "flawed-naive-timestamps.md"
    result = invoke("eval", "score", "--evals", str(EVALS), "--command", "schema", "--answer",
                    str(answer), "--json")
    data = json.loads(result.stdout)
    checks = {c["id"]: c for c in data["checks"]}
    assert checks["types/behaves"]["status"] == "fail"
    assert "tz-aware: time(s) without a time zone: events.occurred_at" in (
        checks["types/behaves"]["explanation"])
    assert checks["ddl/sql_parses"]["status"] == "pass"
    assert checks["evolution/judge"]["status"] == "not-scored"
    assert data["status"] in ("pass", "fail") and result.exit_code == (data["status"] != "pass")
    plain = tmp_path / "answer.md"
    plain.write_text("Use a table.\n", encoding="utf-8")
    result = invoke("eval", "score", "--evals", str(EVALS), "--command", "schema", "--answer",
                    str(plain))
    assert result.exit_code == 1
    assert "fail: score 0.00" in result.output


def test_score_unknown_command_exits_2() -> None:
    result = invoke("eval", "score", "--evals", str(EVALS), "--command", "shema", "--answer",
                    str(EVALS / "rubrics" / "schema.yaml"))
    assert result.exit_code == 2 and "did you mean 'schema'?" in result.output


@pytest.mark.parametrize("case", BAD, ids=[c["id"] for c in BAD])
def test_bad_input_names_file_line_and_field(case: dict[str, Any], tmp_path: Path) -> None:
    root = tmp_path / "evals"
    shutil.copytree(EVALS / "rubrics", root / "rubrics")
    (root / "cases").mkdir()
    for rel, text in case["files"].items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    result = invoke("eval", "run", "--evals", str(root), "--answers", "references")
    assert result.exit_code == 2, result.output
    assert case["error"] in result.output, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("error: ") and str(root) in first


def test_eval_help_does_not_import_heavy_libraries() -> None:
    import subprocess
    import sys

    code = ("import sys; from pipeline_plumber.cli import cli; "
            "from click.testing import CliRunner; CliRunner().invoke(cli, ['eval', '--help']); "
            "print(sorted(m for m in ('sqlglot', 'duckdb', 'psycopg', 'anthropic') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
