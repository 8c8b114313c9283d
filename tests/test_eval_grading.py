"""Grading one answer: labelled correct answers, `eval score --case/--prompt`, scoring workers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from evals_support import EVALS, KB
from pipeline_plumber.cli import cli

CASE = "schema-subscriptions-duckdb"  # DuckDB: no cluster to start


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, [*args, "--kb", str(KB)], catch_exceptions=False)


def _suite_with(tmp_path: Path, name: str, text: str) -> Path:
    root = tmp_path / "evals"
    shutil.copytree(EVALS, root, ignore=shutil.ignore_patterns("recordings"))
    (root / "answers" / CASE / name).write_text(text, encoding="utf-8")
    return root


def _body(kind: str) -> str:
    text = (EVALS / "answers" / CASE / f"{kind}.md").read_text(encoding="utf-8")
    return text.split("\n---\n", 1)[1]


def test_a_correct_answer_is_held_to_every_check_and_counted() -> None:
    root = EVALS
    result = invoke("eval", "calibrate", "--evals", str(root), "--case", CASE, "--json",
                    "-j", "2")
    data = json.loads(result.stdout)
    assert data["false_passes"] == [] and data["false_fails"] == []
    assert data["by_kind"]["reference"] == 1


def test_a_correct_answer_that_fails_its_case_is_a_false_fail(tmp_path: Path) -> None:
    flawed = (EVALS / "answers" / CASE).glob("flawed-*.md")
    wrong = _body(next(iter(sorted(flawed))).stem)
    root = _suite_with(tmp_path, "correct-mislabelled.md",
                       "---\nprovenance: hand-written correct\n---\n" + wrong)
    result = invoke("eval", "calibrate", "--evals", str(root), "--case", CASE, "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 1
    assert data["by_kind"] == {"correct": 1, "flawed": data["by_kind"]["flawed"],
                               "reference": 1}
    assert [Path(p).name for p in data["false_fails"]] == ["correct-mislabelled.md"]
    assert data["false_passes"] == []
    text = invoke("eval", "calibrate", "--evals", str(root), "--case", CASE).stdout
    assert "false passes: 0 (flawed answers whose case passed); false fails: 1" in text


def test_a_correct_answer_file_must_say_so(tmp_path: Path) -> None:
    root = _suite_with(tmp_path, "correct-other-words.md",
                       "---\nprovenance: hand-written reference\n---\n" + _body("reference"))
    result = invoke("eval", "calibrate", "--evals", str(root), "--case", CASE)
    assert result.exit_code == 2
    assert "correct-other-words.md:2: provenance: a correct-*.md file must be labelled " \
           "'hand-written correct'" in result.output


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
