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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import ConfigDict, ValidationError, validate_call

from ..answers import Answer, guess_dialect

Status = Literal["pass", "fail", "not-scored"]


@dataclass(frozen=True)
class Score:
    """A verdict: pass or fail with a value in [0, 1], or not scored; always explained."""

    status: Status
    value: float | None
    explanation: str

    @classmethod
    def ok(cls, explanation: str, value: float = 1.0) -> Score:
        return cls("pass", value, explanation)

    @classmethod
    def fail(cls, explanation: str, value: float = 0.0) -> Score:
        return cls("fail", value, explanation)

    @classmethod
    def not_scored(cls, explanation: str) -> Score:
        return cls("not-scored", None, explanation)


class Resources:
    """What scorers share over a run: a PostgreSQL cluster started on first use, recorded judge
    verdicts. Close it (or use it as a context manager) to stop the cluster."""

    def __init__(self, *, judge_store: Any = None) -> None:
        self._stack = contextlib.ExitStack()
        self._pg_dsn: str | None = None
        self.judge_store = judge_store

    def postgres_dsn(self) -> str:
        """DSN of the run's throwaway PostgreSQL cluster, started the first time it is asked."""
        if self._pg_dsn is None:
            from ...pgcluster import throwaway_cluster

            self._pg_dsn = self._stack.enter_context(throwaway_cluster())
        return self._pg_dsn

    @contextlib.contextmanager
    def postgres_database(self) -> Iterator[str]:
        """A fresh, empty database on the run's cluster, dropped afterwards."""
        from ...pgcluster import fresh_database

        with fresh_database(self.postgres_dsn(), prefix="plumber_eval") as dsn:
            yield dsn

    def close(self) -> None:
        self._stack.close()
        self._pg_dsn = None

    def __enter__(self) -> Resources:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Context:
    """What a check knows besides the answer: the case's dialect and prompt, shared resources."""

    dialect: str | None = None
    prompt: str = ""
    case_id: str = ""
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
    from . import behaviour, judge, python, sql, text  # noqa: F401
