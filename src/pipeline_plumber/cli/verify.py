"""`plumber verify`: run the knowledge base's examples on their engines and check their claims."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import CheckFailed
from ..paths import default_kb
from ..words import plural
from . import cli

if TYPE_CHECKING:
    from ..kb import Example
    from ..verify.core import Outcome, Report

SLOW_S = 5.0
"""An example slower than this is named in the closing lines."""
SLOW_ENGINES = {"airflow": "Airflow 3 imports the DAG and test-runs it, about 15 s"}
"""Engines whose examples take seconds: their start is announced even when not on a terminal."""


@cli.command()
@click.option("--kb", "kb_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Knowledge-base folder. Default: ./kb if present, else the shipped one.")
@click.option("--postgres", "dsn", metavar="DSN", default=None, envvar="PLUMBER_POSTGRES_DSN",
              help="A PostgreSQL server to run on (each example gets a fresh database on it). "
              "Default: start a throwaway cluster with initdb/pg_ctl and remove it afterwards.")
@click.option("--only", "only", metavar="ID", multiple=True,
              help="Verify only this example (repeatable). Its requirements still run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report instead of a table.")
@click.option("--list", "list_only", is_flag=True,
              help="Print every example's id, engine and claim; run nothing.")
def verify(kb_dir: Path | None, dsn: str | None, only: tuple[str, ...], as_json: bool,
           list_only: bool) -> None:
    """Prove every code example of the knowledge base on a real engine.

    PostgreSQL and DuckDB run the SQL; Airflow 3 (from `plumber setup airflow`) imports and
    test-runs the DAG; Python examples run with pandas; Snowflake and BigQuery SQL is checked
    with sqlglot. An example passes when every check of its proof observes what it claims,
    including the misbehaviour of a wrong-way example. A row is printed as each example starts
    and ends. Exit 1 when any example fails, 2 when an engine is missing.
    """
    from ..kb import load_kb
    from ..verify.core import claim, provable
    from ..verify.core import verify as run_verify

    if list_only and (only or as_json):
        raise click.UsageError("--list prints every example as text; drop --only and --json")
    kb = load_kb(kb_dir or default_kb())
    if list_only:
        for ex in provable(kb):
            assert ex.proof is not None
            click.echo(f"{ex.id:<28} {ex.proof.engine:<9} {claim(ex)}")
        return
    table = _Table(live=not as_json and sys.stdout.isatty(), quiet=as_json)
    report = run_verify(kb, postgres_dsn=dsn, only=only, progress=table.ended,
                        starting=table.started)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        table.close(report)
    if report.failed:
        raise CheckFailed()


class _Table:
    """The rows `verify` prints: one as each example starts, completed as it ends. On a
    terminal the start row is rewritten in place; elsewhere (CI logs) only the starts of slow
    engines are printed, so a log does not double in length."""

    HEADER = f"{'example':<28} {'engine':<9} {'result':<5} {'time':>7}"

    def __init__(self, *, live: bool, quiet: bool) -> None:
        self.live, self.quiet, self.header = live, quiet, False

    def _head(self) -> None:
        if not self.header:  # printed with the first row, so an early error stands alone
            click.echo(self.HEADER)
            self.header = True

    def started(self, ex: Example) -> None:
        if self.quiet or ex.proof is None:
            return
        engine = ex.proof.engine
        if self.live:
            self._head()
            click.echo(f"{ex.id:<28} {engine:<9} ...", nl=False)
        elif engine in SLOW_ENGINES:
            self._head()
            click.echo(f"{ex.id:<28} {engine:<9} started ({SLOW_ENGINES[engine]})")

    def ended(self, outcome: Outcome) -> None:
        if self.quiet:
            return
        self._head()
        if self.live:
            click.echo("\r", nl=False)
        mark = "ok" if outcome.passed else "FAIL"
        click.echo(f"{outcome.example:<28} {outcome.engine:<9} {mark:<5} "
                   f"{outcome.seconds:6.2f}s  {plural(outcome.checks, 'check')}")
        for failure in outcome.failures:
            click.echo(f"    {outcome.example}: {failure}")

    def close(self, report: Report) -> None:
        failed = len(report.failed)
        slow = sorted((o for o in report.outcomes if o.seconds >= SLOW_S),
                      key=lambda o: -o.seconds)
        if slow:
            click.echo("slowest: " + ", ".join(f"{o.example} {o.seconds:.1f}s ({o.engine})"
                                               for o in slow))
        click.echo(f"{len(report.outcomes) - failed} passed, {failed} failed "
                   f"in {report.seconds:.1f}s (PostgreSQL: {report.postgres})")
