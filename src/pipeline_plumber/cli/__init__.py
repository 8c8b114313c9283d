"""The `plumber` command line. The one place that prints and exits; each area wires its commands
in its own module, and the library underneath only raises."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any, NoReturn

import click

from .. import __version__
from ..errors import (
    ERROR_PREFIX,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    PlumberError,
    Terminated,
)
from ..untrusted_text import plain

DEBUG_ENV = "PLUMBER_DEBUG"


class PlumberGroup(click.Group):
    """Turns our errors into one line per problem and an exit code; no tracebacks unless asked."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PlumberError as err:
            if os.environ.get(DEBUG_ENV):
                raise
            for problem in err.problems:  # one line each, whatever a path or message holds
                click.echo(f"{ERROR_PREFIX}{plain(str(problem))}", err=True)
            ctx.exit(err.exit_code)
        except click.UsageError as err:  # click would print `Error:`; one prefix everywhere
            if err.ctx is not None:
                click.echo(err.ctx.get_usage(), err=True)
                click.echo(f"Try '{err.ctx.command_path} --help' for help.", err=True)
            click.echo(f"{ERROR_PREFIX}{plain(err.format_message())}", err=True)
            ctx.exit(err.exit_code)
        except OSError as err:
            if os.environ.get(DEBUG_ENV):
                raise
            where = f"{err.filename}: " if err.filename else ""
            click.echo(f"{ERROR_PREFIX}{plain(where + str(err.strerror or err))}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:  # click would say `Aborted!` and exit 1
            _leave("interrupted", EXIT_INTERRUPTED)
        except Terminated as err:
            _leave(f"terminated by {err.signal_name}", EXIT_TERMINATED)


def _leave(why: str, code: int) -> NoReturn:
    """One line and the signal's exit code; every `finally` below has already run."""
    click.echo(f"{ERROR_PREFIX}{why}", err=True)
    sys.exit(code)


@click.group(cls=PlumberGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plumber")
def cli() -> None:
    """Build, check and install the Data Engineer subagent for Claude Code.

    Exit codes: 0 ok, 1 a check found a problem, 2 bad input or usage, 3 a live eval run
    stopped by --max-usd, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, SIGHUP).
    Set PLUMBER_DEBUG=1 to see tracebacks.
    """


TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def main() -> None:
    _raise_on_termination()
    if not os.environ.get(DEBUG_ENV):
        # Libraries' log records (psycopg's "error ignored in rollback" as a run is cancelled)
        # would reach stderr through logging's last-resort handler, around our one line.
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        cli.main(prog_name="plumber")
    except KeyboardInterrupt:
        _leave("interrupted", EXIT_INTERRUPTED)
    except Terminated as err:
        _leave(f"terminated by {err.signal_name}", EXIT_TERMINATED)


def _raise_on_termination() -> None:
    """SIGTERM and SIGHUP raise `Terminated`, as Ctrl-C raises KeyboardInterrupt, so that a
    cancelled run still stops its servers and removes its temporary folders. A forked child
    (which shares the handler but not our clean-up) just exits."""
    main_pid = os.getpid()

    def handler(number: int, _frame: object) -> None:
        if os.getpid() != main_pid:
            os._exit(128 + number)
        raise Terminated(signal.Signals(number).name)

    for number in TERMINATING_SIGNALS:
        if signal.getsignal(number) is signal.SIG_DFL:
            signal.signal(number, handler)


# Each module registers its commands on `cli`; heavy libraries are imported inside the commands.
from . import build as _build  # noqa: E402, F401
from . import evals as _evals  # noqa: E402, F401
from . import install as _install  # noqa: E402, F401
from . import setup as _setup  # noqa: E402, F401
from . import verify as _verify  # noqa: E402, F401
