"""Labels of hand-written answers: who may say why it is unusual or what it fails."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals_support import EVALS
from pipeline_plumber.errors import InputError
from pipeline_plumber.evals.answers import load_answer_file


def _write(tmp_path: Path, front: str) -> Path:
    path = tmp_path / "answer.md"
    path.write_text(f"---\n{front}---\nThe answer.\n", encoding="utf-8")
    return path


def test_a_correct_answer_may_say_what_is_unusual_about_it(tmp_path: Path) -> None:
    answer = load_answer_file(_write(
        tmp_path, "provenance: hand-written correct\nreason: says recompute, not backfill\n"))
    assert answer.provenance == "correct"
    assert answer.label is not None and answer.label.reason == "says recompute, not backfill"


def test_a_reference_has_no_reason_and_a_correct_answer_fails_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"answer\.md:\d+: reason: "):
        load_answer_file(_write(tmp_path, "provenance: hand-written reference\nreason: x\n"))
    with pytest.raises(InputError, match=r"answer\.md:\d+: fails: "):
        load_answer_file(_write(tmp_path, "provenance: hand-written correct\nfails: [ddl]\n"))


# --- what the labelled suite holds ---------------------------------------------------------------

_WORD_SCORERS = {"regex", "concept", "contains", "any", "all"}


def _suite() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """Cases by id, and per command each rubric check id with its scorer."""
    cases = {}
    for path in sorted((EVALS / "cases").glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            cases[case["id"]] = case
    rubrics = {}
    for path in sorted((EVALS / "rubrics").glob("*.yaml")):
        rubric = yaml.safe_load(path.read_text(encoding="utf-8"))
        rubrics[rubric["command"]] = {
            f"{item}/{check.get('id', check['scorer'])}": check["scorer"]
            for item, spec in rubric["items"].items() for check in spec.get("checks", [])}
    return cases, rubrics


def _probes_behaviour(check: dict[str, Any]) -> bool:
    """A case's own probe: SQL steps (`sql_behaves`), or properties of its command's family
    the case picks for its prompt (`behaves` with `properties`). Airflow cases need none of
    their own: their rubric imports the DAG and replays its tasks' SQL on the tables the
    answer creates, where a case probe would have to guess the tables' names."""
    return check["scorer"] == "sql_behaves" or (
        check["scorer"] == "behaves" and bool(check.get("args", {}).get("properties")))


def test_every_postgres_and_duckdb_case_probes_behaviour() -> None:
    cases, _ = _suite()
    without = sorted(case_id for case_id, case in cases.items()
                     if case.get("dialect") in ("postgres", "duckdb")
                     and case.get("command") != "airflow"
                     and not any(_probes_behaviour(c) for c in case.get("checks", [])))
    assert without == []


def test_each_command_has_unusual_correct_answers_and_flaws_no_word_check_sees() -> None:
    cases, rubrics = _suite()
    correct: Counter[str] = Counter()
    substantive: Counter[str] = Counter()
    for path in sorted((EVALS / "answers").glob("*/*.md")):
        case = cases[path.parent.name]
        scorers = dict(rubrics[case["command"]])
        scorers.update({c.get("id", c["scorer"]): c["scorer"] for c in case.get("checks", [])})
        answer = load_answer_file(path)
        if answer.provenance == "correct":
            correct[case["command"]] += 1
        elif answer.provenance == "flawed" and answer.label is not None and not any(
                scorers.get(check) in _WORD_SCORERS for check in answer.label.fails):
            substantive[case["command"]] += 1
    commands = set(rubrics)
    assert {c for c in commands if correct[c] < 2} == set(), correct
    assert {c for c in commands if substantive[c] < 3} == set(), substantive
