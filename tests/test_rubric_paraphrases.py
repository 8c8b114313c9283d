"""Prose items of the rubrics accept a right answer's own words, and still fail an answer that
never says the thing: each phrase is graded by the check as evals/rubrics/<command>.yaml has it."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

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
    ("airflow", "alerting/alerts", "If every retry fails, the on-call engineer hears of it."),
    ("dq", "freshness/freshness", "The newest record must be from yesterday."),
    ("dq", "freshness/volume", "Compare how many rows arrived with a usual day."),
    ("etl", "approach", "Load it raw, then transform it inside DuckDB."),
    ("etl", "extract", "Each night only the previous day's files are read."),
    ("etl", "quality", "The batch is sanity checked and rolled back if it looks wrong."),
    ("etl", "monitoring/row-counts", "Log the rows loaded by each run."),
    ("etl", "monitoring/freshness", "Warn when the feed is late."),
    ("etl", "monitoring/alerts", "Notify the team channel when the job fails."),
    ("etl", "backfill", "To repair a bad month, rebuild the past days one date at a time."),
    ("governance", "pii", "E-mail and phone are personal information about a subscriber."),
    ("governance", "retention/period", "Tokens are kept for 30 days and then destroyed."),
    ("governance", "retention/erasure", "Honour the right to be forgotten within a month."),
    ("governance", "ownership", "The CRM team is responsible for the table and approves readers."),
    ("governance", "lineage", "Know where the data ends up: the partner's job and its backups."),
    ("index", "column-order/why", "Put the equality column first, the range column after it."),
    ("index", "kind", "A plain B-tree is enough for this lookup."),
    ("optimize", "diagnosis", "The execution plan shows the table read end to end."),
    ("optimize", "supporting-structures", "A materialized summary would also help."),
    ("optimize", "verify", "Compare the query profile before and after."),
    ("partition", "granularity", "About 40 million rows a month, so one partition per month."),
    ("partition", "pruning", "A query for one week reads only the matching month."),
    ("pipeline", "incremental/deletes", "A customer removed at the source is closed here too."),
    ("pipeline", "validation", "Rows that break the rules are quarantined for review."),
    ("pipeline", "backfill", "To fix last quarter, reprocess those days with the same job."),
    ("pipeline", "observability", "Track the lag between the source and the table."),
    ("star", "grain", "Each row stands for one ticket event."),
    ("star", "dimensions/surrogate", "Every dimension gets a meaningless key of its own."),
    ("star", "dimensions/natural", "The CRM's own id is kept beside it."),
    ("star", "scd", "A change of plan adds a new version and keeps the old one."),
]
SILENT = [
    ("dq", "placement", "The checks are listed in one view with a severity per rule."),
    ("index", "cost", "Create the index, then EXPLAIN shows an index scan on 3 columns."),
    ("pipeline", "validation", "The job copies the batch and merges it into the target."),
    ("schema", "evolution", "When a meaning changes, rename the column in place and retype it."),
    # confident and wrong: each says the opposite of the item without its idea
    ("airflow", "alerting/alerts", "A failed run can wait for the morning; someone will see it."),
    ("dq", "freshness/freshness", "How recently the data landed does not matter for the close."),
    ("dq", "freshness/volume", "The size of the batch is irrelevant; only its contents matter."),
    ("etl", "approach", "Transformation happens in Python before anything is stored."),
    ("etl", "extract", "Read whatever happens to be in the bucket each time."),
    ("etl", "quality", "Trust the CDN: its files are always right, so take them as they come."),
    ("etl", "monitoring/row-counts", "Nothing about the run needs recording."),
    ("etl", "monitoring/freshness", "A missing day is not a problem worth watching."),
    ("etl", "monitoring/alerts", "Failures go to a log file that nobody reads, which is enough."),
    ("etl", "backfill", "Old days can never be corrected once the files are gone."),
    ("governance", "pii", "None of these columns says anything about a person."),
    ("governance", "retention/period", "Keep every token forever; storage is cheap."),
    ("governance", "retention/erasure", "Once shared, the data stays with the partner for good."),
    ("governance", "ownership", "Anyone who can connect may decide how the data is used."),
    ("governance", "lineage", "Once the view exists, nothing else needs tracking."),
    ("index", "column-order/why", "Order the columns alphabetically; the planner fixes it anyway."),
    ("index", "kind", "Any index type behaves the same, so it does not matter which."),
    ("index", "cost", "Indexes are free: they never slow anything down."),
    ("optimize", "diagnosis", "It is slow because the server is old."),
    ("optimize", "supporting-structures", "No new database objects are ever needed here."),
    ("optimize", "verify", "You will feel the difference."),
    ("partition", "granularity", "Choose the split at random; the engine balances it."),
    ("partition", "pruning", "Every query reads all the data; splitting it changes nothing."),
    ("pipeline", "incremental/deletes", "Rows never go away at the source, so ignore that case."),
    ("pipeline", "backfill", "Past days can never be corrected."),
    ("pipeline", "observability", "Once it runs, nobody needs to watch it."),
    ("star", "grain", "Rows can mean different things; it depends on the query."),
    ("star", "dimensions/surrogate", "Use the e-mail address as the key of the customer table."),
    ("star", "dimensions/natural", "Forget where each row came from once it is loaded."),
    ("star", "scd", "When a customer moves, just forget the old address."),
]


@functools.cache
def rubric_of(command: str) -> Any:
    """The command's rubric, parsed once for all the sentences graded against it."""
    return yaml.safe_load((Path(EVALS) / "rubrics" / f"{command}.yaml").read_text("utf-8"))


def grade(command: str, item: str, text: str) -> str:
    """The verdict of the item's word check (`item/id` names one of several) on `text`."""
    rubric = copy.deepcopy(rubric_of(command))  # a check may keep or change what it is given
    name, _, check_id = item.partition("/")
    (spec,) = [c for c in rubric["items"][name]["checks"]
               if c["scorer"] in ("regex", "concept") and c.get("id", "") == check_id]
    check = build_check(spec["scorer"], spec["args"])
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
