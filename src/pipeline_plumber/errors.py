"""One error family: library code raises these, only the CLI prints them and picks the exit code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
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

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(PlumberError):
    """The input (knowledge base, case file, option) is malformed: exit 2."""


class CheckFailed(PlumberError):
    """The tool ran and the work falls short (stale build, lint finding, failed example): exit 1."""

    exit_code = EXIT_CHECK_FAILED


class EnvironmentProblem(PlumberError):
    """Something the command needs is missing on this machine (a server binary, a CLI): exit 2."""
