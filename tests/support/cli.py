"""The one way tests run `plumber` in-process: as a user would type it, from a chosen folder."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner, Result

from pipeline_plumber.cli import cli


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def plumber(
    *args: str,
    cwd: Path | None = None,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Result:
    """`plumber ARGS` run in-process from `cwd` (default: here), with HOME=`home` and `env` set.

    Exceptions propagate, so a traceback fails the test instead of hiding in `result.output`.
    """
    variables = {**(env or {}), **({"HOME": str(home)} if home else {})}
    with working_directory(cwd or Path.cwd()):
        return CliRunner().invoke(cli, list(args), env=variables, catch_exceptions=False)
