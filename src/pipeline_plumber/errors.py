"""One error family: library code raises these, only the CLI prints them and picks the exit code.

Every exit code lives here, and a command reaches each one the same way: by raising the error
that carries it. The CLI boundary (`cli/__init__.py`) prints the error's problems, one per line,
and exits with its `exit_code`; no command calls `sys.exit`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BUDGET_STOPPED = 3
"""A live run's `--max-usd` stopped the sending; what was not sent gives no verdict."""
EXIT_INTERRUPTED = 130
"""Ctrl-C, as a shell reports a process ended by SIGINT."""
EXIT_TERMINATED = 143
"""SIGTERM or SIGHUP (a CI job cancelled, a terminal closed), as a shell reports SIGTERM."""
ERROR_PREFIX = "error: "
"""How every error line the CLI prints begins, click's usage errors included."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can: file, line, field."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class PlumberError(Exception):
    """Base error. `exit_code` tells the CLI how to leave; `problems` are printed one per line."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: Iterable[Problem] | str = ()) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(PlumberError):
    """The input (knowledge base, case file, option) is malformed: exit 2."""


class CheckFailed(PlumberError):
    """The tool ran and the work falls short (stale build, lint finding, failed example): exit 1.

    Raised without problems when the command has already printed what falls short."""

    exit_code = EXIT_CHECK_FAILED


class BudgetExceeded(PlumberError):
    """A live run's `--max-usd` stopped the sending before every answer and vote was asked: exit
    3, which takes precedence over a verdict, since a partial run gives none."""

    exit_code = EXIT_BUDGET_STOPPED


class RequestsFailed(PlumberError):
    """Requests to the API still failed after their retries: the tool could not do its job,
    exit 2."""


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: raised in the main thread like KeyboardInterrupt, so every
    `finally` (a throwaway cluster's removal, a staged file's deletion) runs before the exit.
    A BaseException, so `except Exception` in library code does not swallow it."""

    def __init__(self, signal_name: str) -> None:
        self.signal_name = signal_name
        super().__init__(signal_name)


class EnvironmentProblem(PlumberError):
    """Something the command needs is missing on this machine (a server binary, a CLI): exit 2."""
