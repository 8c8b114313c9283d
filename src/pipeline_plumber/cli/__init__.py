"""The `plumber` command line. The one place that prints and exits; each area wires its commands
in its own module, and the library underneath only raises."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import ERROR_PREFIX, EXIT_BAD_INPUT, EXIT_INTERRUPTED, PlumberError

DEBUG_ENV = "PLUMBER_DEBUG"


class PlumberGroup(click.Group):
    """Turns our errors into one line per problem and an exit code; no tracebacks unless asked."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PlumberError as err:
            if os.environ.get(DEBUG_ENV):
                raise
            for problem in err.problems:
                click.echo(f"{ERROR_PREFIX}{problem}", err=True)
            ctx.exit(err.exit_code)
        except click.UsageError as err:  # click would print `Error:`; one prefix everywhere
            if err.ctx is not None:
                click.echo(err.ctx.get_usage(), err=True)
                click.echo(f"Try '{err.ctx.command_path} --help' for help.", err=True)
            click.echo(f"{ERROR_PREFIX}{err.format_message()}", err=True)
            ctx.exit(err.exit_code)
        except OSError as err:
            if os.environ.get(DEBUG_ENV):
                raise
            where = f"{err.filename}: " if err.filename else ""
            click.echo(f"{ERROR_PREFIX}{where}{err.strerror or err}", err=True)
            ctx.exit(EXIT_BAD_INPUT)


@click.group(cls=PlumberGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plumber")
def cli() -> None:
    """Build, check and install the Data Engineer subagent for Claude Code.

    Exit codes: 0 ok, 1 a check found a problem, 2 bad input or usage, 3 a live eval run
    stopped by --max-usd.
    Set PLUMBER_DEBUG=1 to see tracebacks.
    """


def main() -> None:
    try:
        cli.main(prog_name="plumber")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


# Each module registers its commands on `cli`; heavy libraries are imported inside the commands.
from . import build as _build  # noqa: E402, F401
from . import evals as _evals  # noqa: E402, F401
from . import install as _install  # noqa: E402, F401
from . import setup as _setup  # noqa: E402, F401
from . import verify as _verify  # noqa: E402, F401
