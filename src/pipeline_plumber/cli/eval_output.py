"""Where `plumber eval run` puts its results besides the terminal, offline and live alike: the
report files of `--out` and the Markdown summary a CI step shows ($GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import EnvironmentProblem, Problem

if TYPE_CHECKING:
    from ..evals.runner import RunResult

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def write_reports(result: RunResult, out_dir: Path, *, with_html: bool) -> None:
    """The log, JUnit XML, Markdown summary (and HTML) in `out_dir`, each named as written."""
    from ..evals import reports

    for path in reports.write_reports(result, out_dir, with_html=with_html):
        click.echo(f"wrote {path}")


def append_step_summary(markdown: str) -> None:
    """Append `markdown` to the file $GITHUB_STEP_SUMMARY names, when it is set."""
    summary = os.environ.get(STEP_SUMMARY_ENV)
    if not summary:
        return
    try:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    except OSError as err:  # a full disk fails the write, which names no file
        raise EnvironmentProblem([Problem(f"cannot append the summary: {err.strerror or err}",
                                          file=summary, field=f"${STEP_SUMMARY_ENV}")]) from err
