"""Prose items of the rubrics accept a right answer's own words, and still fail an answer that
never says the thing: each phrase is graded by the check as evals/rubrics/<command>.yaml has it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evals_support import EVALS
from pipeline_plumber.evals.answers import Answer
from pipeline_plumber.evals.scorers import Context, Resources, build_check

SAYS = [
    ("dq", "placement", "Every blocking rule runs before anything is released."),
    ("dq", "placement", "The release job reads the view first and holds the batch back."),
    ("dq", "placement", "An error row means nothing is released until the batch is fixed."),
    ("dq", "placement", "The checks run before the data goes live."),
    ("index", "cost", "The index takes about 600 MB and is maintained on every signup."),
    ("index", "cost", "Expect roughly 1.5 GB more, and a little upkeep on each insert."),
    ("index", "cost", "Each index adds overhead to the nightly import."),
    ("pipeline", "validation", "Before the statement runs, the batch is screened."),
    ("pipeline", "validation", "A message without an account is set aside for the operators."),
    ("schema", "evolution", "New columns arrive nullable; nothing is renamed in place."),
]
SILENT = [
    ("dq", "placement", "The checks are listed in one view with a severity per rule."),
    ("index", "cost", "Create the index, then EXPLAIN shows an index scan on 3 columns."),
    ("pipeline", "validation", "The job copies the batch and merges it into the target."),
    ("schema", "evolution", "When a meaning changes, rename the column in place and retype it."),
]


def grade(command: str, item: str, text: str) -> str:
    rubric = yaml.safe_load((Path(EVALS) / "rubrics" / f"{command}.yaml").read_text("utf-8"))
    (spec,) = [c for c in rubric["items"][item]["checks"] if c["scorer"] == "regex"]
    check = build_check("regex", spec["args"])
    with Resources() as resources:
        score = check(Answer(text, "file"), Context(dialect="postgres", prompt="",
                                                    command=command, resources=resources))
    return score.status


@pytest.mark.parametrize(("command", "item", "text"), SAYS)
def test_a_paraphrase_passes(command: str, item: str, text: str) -> None:
    assert grade(command, item, text) == "pass"


@pytest.mark.parametrize(("command", "item", "text"), SILENT)
def test_an_answer_that_never_says_it_fails(command: str, item: str, text: str) -> None:
    assert grade(command, item, text) == "fail"
