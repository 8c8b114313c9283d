"""Every command's rubric grades the How to verify section as an item of its own: present (under
that name or another: Verification, Testing, Sanity checks) and holding something to run that
fits the command, not merely a heading."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evals_support import EVALS, KB
from pipeline_plumber.cli import cli
from pipeline_plumber.evals.cases import load_checklists, load_suite

pytestmark = pytest.mark.engines  # each answer is scored by running it on PostgreSQL

CHECK = "how-to-verify/runnable"
SUITE = load_suite(EVALS, load_checklists(KB))
FIRST_CASE = {}
for _case in SUITE.cases:
    assert _case.command is not None
    FIRST_CASE.setdefault(_case.command, _case.id)


def verdict(command: str, text: str, tmp_path: Path) -> str:
    answer = tmp_path / "answer.md"
    answer.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["eval", "score", "--evals", str(EVALS), "--kb", str(KB), "--command", command,
         "--answer", str(answer), "--json"],
        catch_exceptions=False,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    (check,) = [c for c in data["checks"] if c["id"] == CHECK]
    return str(check["status"])


def reference(command: str) -> tuple[str, str]:
    """The reference answer's text before its How to verify section, and the section."""
    text = (EVALS / "answers" / FIRST_CASE[command] / "reference.md").read_text(encoding="utf-8")
    before, marker, section = text.partition("\n## How to verify\n")
    assert marker, f"{FIRST_CASE[command]}: the reference answer has no How to verify section"
    # a "**Verify:** run EXPLAIN ..." paragraph earlier on is a verification section too
    before = re.sub(r"^\*\*Verify\b.*(?:\n.+)*", "", before, flags=re.MULTILINE)
    return before, marker + section


@pytest.mark.parametrize("command", sorted(FIRST_CASE))
def test_the_reference_answer_passes(command: str, tmp_path: Path) -> None:
    before, section = reference(command)
    assert verdict(command, before + section, tmp_path) == "pass"


@pytest.mark.parametrize("command", sorted(FIRST_CASE))
def test_an_answer_without_the_section_fails(command: str, tmp_path: Path) -> None:
    before, _ = reference(command)
    assert verdict(command, before, tmp_path) == "fail"


@pytest.mark.parametrize("command", sorted(FIRST_CASE))
def test_a_heading_with_nothing_to_run_fails(command: str, tmp_path: Path) -> None:
    before, _ = reference(command)
    text = before + "\n## How to verify\n\nCheck that it works in production; watch the numbers.\n"
    assert verdict(command, text, tmp_path) == "fail"


@pytest.mark.parametrize("command", sorted(FIRST_CASE))
def test_the_section_may_stand_anywhere_under_another_name(command: str, tmp_path: Path) -> None:
    before, section = reference(command)
    renamed = section.replace("## How to verify\n", "## 4. Verification\n", 1)
    assert verdict(command, renamed + before + "\n## Next steps\n\nShip it.\n", tmp_path) == "pass"


@pytest.mark.parametrize("heading", ["## Checking it by hand", "### Check the load"])
def test_checking_it_in_other_words_is_the_section(heading: str, tmp_path: Path) -> None:
    before, section = reference("etl")
    renamed = section.replace("## How to verify", heading, 1)
    assert verdict("etl", before + renamed, tmp_path) == "pass"


def test_code_under_another_heading_does_not_count(tmp_path: Path) -> None:
    before, section = reference("index")
    moved = section.replace("## How to verify\n", "## Rollout\n", 1)
    assert verdict("index", before + moved, tmp_path) == "fail"


def test_a_bold_label_counts_as_the_heading(tmp_path: Path) -> None:
    before, section = reference("index")
    bold = section.replace("## How to verify\n", "**How to verify:**\n", 1)
    assert verdict("index", before + bold, tmp_path) == "pass"


def test_a_query_from_another_command_does_not_count(tmp_path: Path) -> None:
    """The index rubric wants an EXPLAIN; a row count proves nothing about an index."""
    before, _ = reference("index")
    text = before + "\n## How to verify\n\n```sql\nSELECT count(*) FROM orders;\n```\n"
    assert verdict("index", text, tmp_path) == "fail"
