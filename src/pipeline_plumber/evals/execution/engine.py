"""Where an answer's SQL runs: the sandbox's sessions and failures, under the names this package
uses. One `open_session` per fresh database; one deadline over each with-block."""

from __future__ import annotations

from contextlib import AbstractContextManager

from ...sandbox import Broken, Engine, Rejected, Rows, SqlSession, TimedOut
from ..scorers import Resources

Session = SqlSession

__all__ = ["Broken", "Engine", "Rejected", "Rows", "Session", "TimedOut", "open_session"]


def open_session(resources: Resources, engine: Engine) -> AbstractContextManager[SqlSession]:
    """A fresh, empty, sandboxed database on `engine` for one answer, dropped afterwards."""
    return resources.answer_session(engine)
