"""`plumber verify`: run the knowledge base's examples on their engines and check their claims."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import EXIT_CHECK_FAILED
from ..paths import default_kb
from . import cli


@cli.command()
@click.option("--kb", "kb_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Knowledge-base folder. Default: ./kb if present, else the shipped one.")
@click.option("--postgres", "dsn", metavar="DSN", default=None, envvar="PLUMBER_POSTGRES_DSN",
              help="A PostgreSQL server to run on (each example gets a fresh database on it). "
              "Default: start a throwaway cluster with initdb/pg_ctl and remove it afterwards.")
@click.option("--only", "only", metavar="ID", multiple=True,
              help="Verify only this example (repeatable). Its requirements still run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report instead of a table.")
def verify(kb_dir: Path | None, dsn: str | None, only: tuple[str, ...], as_json: bool) -> None:
    """Prove every code example of the knowledge base on a real engine.

    PostgreSQL and DuckDB run the SQL; Airflow 3 (from .venv-airflow) imports and test-runs the
    DAG; Python examples run with pandas; Snowflake and BigQuery SQL is checked with sqlglot.
    An example passes when every check of its proof observes what it claims, including the
    misbehaviour of a wrong-way example. Exit 1 when any example fails.
    """
    from ..kb import load_kb
    from ..verify.core import Outcome
    from ..verify.core import verify as run_verify

    kb = load_kb(kb_dir or default_kb())

    header = [f"{'example':<28} {'engine':<9} {'result':<5} {'time':>7}"]

    def progress(outcome: Outcome) -> None:
        if not as_json:
            if header:  # printed with the first result, so an early error stands alone
                click.echo(header.pop())
            mark = "ok" if outcome.passed else "FAIL"
            click.echo(f"{outcome.example:<28} {outcome.engine:<9} {mark:<5} "
                       f"{outcome.seconds:6.2f}s  {outcome.checks} check(s)")
            for failure in outcome.failures:
                click.echo(f"    {outcome.example}: {failure}")

    report = run_verify(kb, postgres_dsn=dsn, only=only, progress=progress)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        failed = len(report.failed)
        click.echo(f"{len(report.outcomes) - failed} passed, {failed} failed "
                   f"in {report.seconds:.1f}s (PostgreSQL: {report.postgres})")
    if report.failed:
        raise SystemExit(EXIT_CHECK_FAILED)
