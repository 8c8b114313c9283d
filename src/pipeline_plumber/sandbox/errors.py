"""How running an answer can fail, sorted the way a check needs to report it.

Every message is one line with control characters escaped and a bounded length: it comes from
the answer or from an engine quoting the answer, and it ends up in reports.
"""

from __future__ import annotations

import re

MESSAGE_LIMIT = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class SandboxError(Exception):
    """Base of what a sandboxed statement or program raises; `str()` is one safe line."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class Rejected(SandboxError):
    """The engine refused the data (an integrity or data error: NOT NULL, CHECK, UNIQUE, a
    foreign key, a bad value): what a step expecting an error wants."""


class Broken(SandboxError):
    """The statement could not run (syntax, a missing object, a privilege the sandbox does not
    grant, a server that went away)."""


class TimedOut(Broken):
    """The answer's deadline passed: everything it ran together took too long."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s")
        self.seconds = seconds


class Damaged(Broken):
    """The answer left the sandbox server changed (found by the health check afterwards); the
    server was replaced."""


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """The first non-empty line of `text`, control characters shown as \\xNN, at most `limit`
    characters (an ellipsis marks the cut)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    escaped = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", first)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def first_line_of(err: BaseException) -> str:
    """An exception's first line, or its type's name when it has no message."""
    return one_line(str(err)) or type(err).__name__
