"""Scorers: small factories registered by name, each returning `(answer, context) -> Score`.

A case or rubric names a scorer and its arguments::

    - scorer: sql_not_null
      args: {table: events, columns: [user_id, occurred_at]}
      weight: 2

`build_check` validates the arguments against the factory's signature (unknown or mistyped
arguments are errors naming the file, line and field) and returns the scoring function. Every
scorer's docstring shows a passing and a failing example; `plumber eval scorers` prints them.
Bump a scorer's `version` whenever its verdicts can change: run logs record it.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import ConfigDict, ValidationError, validate_call

from ..answers import Answer, guess_dialect

if TYPE_CHECKING:
    from ...sandbox import Engine, Sandbox, SqlSession

Status = Literal["pass", "fail", "not-scored"]


@dataclass(frozen=True)
class Score:
    """A verdict: pass or fail with a value in [0, 1], or not scored; always explained.

    A failed `blocker` (the answer's DDL does not run, a re-run duplicates rows, a check misses
    a defect) fails the whole case whatever the weighted mean of its checks.
    """

    status: Status
    value: float | None
    explanation: str
    blocker: bool = False

    @classmethod
    def ok(cls, explanation: str, value: float = 1.0) -> Score:
        return cls("pass", value, explanation)

    @classmethod
    def fail(cls, explanation: str, value: float = 0.0, *, blocker: bool = False) -> Score:
        return cls("fail", value, explanation, blocker)

    @classmethod
    def not_scored(cls, explanation: str) -> Score:
        return cls("not-scored", None, explanation)


class Resources:
    """What scorers share over a run: the sandbox answers run in (its PostgreSQL cluster starts
    on first use) and recorded judge verdicts. Close it (or use it as a context manager) to
    stop the cluster. Safe to share between worker threads."""

    def __init__(self, *, judge_store: Any = None, answer_timeout_s: float | None = None) -> None:
        from ...sandbox import DEFAULT_DEADLINE_S

        self.judge_store = judge_store
        self.answer_timeout_s = answer_timeout_s or DEFAULT_DEADLINE_S
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()

    @property
    def sandbox(self) -> Sandbox:
        with self._lock:
            if self._sandbox is None:
                from ...sandbox import Sandbox

                self._sandbox = Sandbox(deadline_s=self.answer_timeout_s)
            return self._sandbox

    def answer_session(self, engine: Engine, *, deadline_s: float | None = None
                       ) -> contextlib.AbstractContextManager[SqlSession]:
        """A fresh database for one answer (PostgreSQL: its own role and database; DuckDB: in
        memory, bounded) with one deadline over everything run in the with-block."""
        return self.sandbox.answer_session(engine, deadline_s=deadline_s)

    def answer_scope(self) -> contextlib.AbstractContextManager[None]:
        """Around all the checks of one answer (on one thread): its sessions may reuse the
        databases it used before, emptied, instead of new ones; never another answer's."""
        return self.sandbox.answer_scope()

    def close(self) -> None:
        with self._lock:
            sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            sandbox.close()

    def __enter__(self) -> Resources:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Context:
    """What a check knows besides the answer: the case's dialect, prompt and command (the one
    `eval score --command` names), shared resources."""

    dialect: str | None = None
    prompt: str = ""
    case_id: str = ""
    command: str | None = None
    resources: Resources = field(default_factory=Resources)

    def dialect_for(self, answer: Answer, given: str | None = None) -> tuple[str, str]:
        """(dialect, note): the argument, else the case's, else the one the answer names."""
        if given:
            return given, ""
        if self.dialect:
            return self.dialect, ""
        guessed = guess_dialect(answer.text)
        if guessed:
            return guessed, f" (dialect {guessed}, guessed from the answer)"
        return "postgres", " (no dialect named; assumed postgres)"


ScoreFn = Callable[[Answer, Context], Score]
Factory = Callable[..., ScoreFn]


@dataclass(frozen=True)
class ScorerInfo:
    name: str
    family: str
    version: int
    factory: Factory
    doc: str


REGISTRY: dict[str, ScorerInfo] = {}

F = TypeVar("F", bound=Factory)


def scorer(name: str, *, version: int = 1) -> Callable[[F], F]:
    """Register a scorer factory under `name`; its keyword arguments are the check's `args`."""

    def register(factory: F) -> F:
        if name in REGISTRY:
            raise ValueError(f"scorer {name!r} registered twice")
        validated = validate_call(config=ConfigDict(strict=False, extra="forbid"))(factory)
        family = factory.__module__.rsplit(".", 1)[-1]
        doc = inspect.cleandoc(factory.__doc__ or "")
        REGISTRY[name] = ScorerInfo(name, family, version, validated, doc)
        return factory

    return register


class ArgsError(Exception):
    """A check's arguments do not fit its scorer: pydantic's `error` (located inside `args`), or
    a `message` from the factory itself (a regular expression that does not compile)."""

    def __init__(self, error: ValidationError | None, message: str = "") -> None:
        super().__init__(message or str(error))
        self.error = error
        self.message = message


def build_check(name: str, args: dict[str, Any]) -> ScoreFn:
    """The scoring function for scorer `name` with `args`. Raises KeyError or ArgsError."""
    load_all()
    info = REGISTRY[name]
    try:
        return info.factory(**args)
    except ValidationError as err:
        raise ArgsError(err) from err
    except (ValueError, re.error) as err:
        raise ArgsError(None, str(err)) from err


def arg_names(name: str) -> list[str]:
    return list(inspect.signature(REGISTRY[name].factory).parameters)


def load_all() -> None:
    """Import every scorer family (they register themselves). Cheap after the first call."""
    from . import behaviour, execution, judge, python, sql, text  # noqa: F401
