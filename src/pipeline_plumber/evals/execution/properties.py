"""Property families: what every answer to a command must do, shown on its own schema.

A family is one function per command, registered with `@family`, that takes a `ProbeInput` and
returns `Finding`s, one per property it can judge. `run_family` runs it once per answer and
command (cached on the answer); the `behaves` scorer reports the properties a rubric names.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from ..answers import Answer
from ..scorers import Context
from .engine import Broken, Rejected, TimedOut, open_session
from .program import Program, build_program
from .run import Execution, setup

FindingStatus = Literal["pass", "fail", "n/a"]


@dataclass(frozen=True)
class Finding:
    """One property of one answer: pass, fail (`blocker` fails the answer whatever its score),
    or n/a (the answer has nothing the property applies to: not scored)."""

    property: str
    status: FindingStatus
    detail: str
    blocker: bool = True

    @classmethod
    def passed(cls, prop: str, detail: str) -> Finding:
        return cls(prop, "pass", detail)

    @classmethod
    def failed(cls, prop: str, detail: str, *, blocker: bool = True) -> Finding:
        return cls(prop, "fail", detail, blocker)

    @classmethod
    def not_applicable(cls, prop: str, detail: str) -> Finding:
        return cls(prop, "n/a", detail, False)


@dataclass
class ProbeInput:
    """What a family sees: the answer, its Program, the prompt, the command, and databases.

    `execution` is the answer's setup already applied to a fresh database (read its `catalog`;
    wrap each probe in `execution.session.savepoint(undo=True)` so probes do not see each
    other's rows). `fresh()` gives another fresh database with the setup applied, for a probe
    that must commit (retries in separate transactions) or that DuckDB's lack of savepoints
    would otherwise undo together with the outer block.
    """

    answer: Answer
    program: Program
    prompt: str
    command: str
    context: Context
    execution: Execution

    @contextmanager
    def fresh(self) -> Iterator[Execution]:
        engine = self.program.engine
        assert engine is not None
        with open_session(self.context.resources, engine) as session:
            yield setup(session, self.program)

    @property
    def prompt_program(self) -> Program:
        """The SQL the user pasted into the prompt, as a Program (e.g. the query to optimize);
        built once per answer."""
        key = ("prompt program", self.program.dialect, self.prompt)
        cached = self.answer.cache.get(key)
        if not isinstance(cached, Program):
            cached = self.answer.cache[key] = build_program(Answer(self.prompt, "file"),
                                                            self.program.dialect)
        return cached


FamilyFn = Callable[[ProbeInput], list[Finding]]


@dataclass(frozen=True)
class Family:
    commands: tuple[str, ...]
    properties: tuple[str, ...]
    fn: FamilyFn
    needs_sql: bool = True  # False: the family judges other code too (an Airflow DAG)


FAMILIES: dict[str, Family] = {}


def family(*commands: str, properties: tuple[str, ...], needs_sql: bool = True
           ) -> Callable[[FamilyFn], FamilyFn]:
    """Register `fn` as the property family of `commands`; `properties` lists the ids it
    reports (rubrics may name only these). A family with `needs_sql=False` also runs on an
    answer without SQL blocks."""

    def register(fn: FamilyFn) -> FamilyFn:
        entry = Family(commands, properties, fn, needs_sql)
        for command in commands:
            if command in FAMILIES:
                raise ValueError(f"command {command!r} has two property families")
            FAMILIES[command] = entry
        return fn

    return register


def load_families() -> dict[str, Family]:
    """Import every module of `execution.families` (each registers itself)."""
    from . import families

    for module in pkgutil.iter_modules(families.__path__):
        importlib.import_module(f"{families.__name__}.{module.name}")
    return FAMILIES


def known_properties() -> set[str]:
    return {p for f in load_families().values() for p in f.properties}


@dataclass(frozen=True)
class FamilyResult:
    """The family's verdicts for one answer, or why there are none."""

    command: str
    engine: str | None
    findings: tuple[Finding, ...] = ()
    setup_failures: tuple[str, ...] = ()
    reported: tuple[str, ...] = ()
    not_executed: str | None = None  # the answer's SQL cannot run anywhere (a warehouse feature)
    error: str | None = None  # the probes could not finish (timeout)
    ran: int = 0  # setup statements run
    extra: dict[str, str] = field(default_factory=dict)

    def finding(self, prop: str) -> Finding | None:
        return next((f for f in self.findings if f.property == prop), None)


def run_family(answer: Answer, command: str, ctx: Context, dialect: str) -> FamilyResult:
    """Set the answer up on a fresh database and run `command`'s family (cached per answer,
    command and dialect). Without a family only the setup runs."""
    key = ("family", command, dialect)
    cached = answer.cache.get(key)
    if isinstance(cached, FamilyResult):
        return cached
    result = _run(answer, command, ctx, dialect)
    answer.cache[key] = result
    return result


def _run(answer: Answer, command: str, ctx: Context, dialect: str) -> FamilyResult:
    program = build_program(answer, dialect, ctx.prompt)
    engine = program.engine
    if program.error:
        return FamilyResult(command, engine, error=program.error)
    if program.not_executed or engine is None:
        return FamilyResult(command, engine, not_executed=program.not_executed or (
            f"no sandbox runs {dialect}"))
    entry = load_families().get(command)
    try:
        with open_session(ctx.resources, engine) as session:
            execution = setup(session, program)
            base = FamilyResult(command, engine, (), tuple(execution.failures),
                                tuple(execution.reported), ran=execution.ran)
            if not execution.ok or entry is None:
                return base
            probe = ProbeInput(answer, program, ctx.prompt, command, ctx, execution)
            findings = tuple(entry.fn(probe))
    except TimedOut as err:
        return FamilyResult(command, engine, error=f"the answer's SQL {err}")
    except (Rejected, Broken) as err:
        return FamilyResult(command, engine, error=f"a probe could not run: {err}")
    return FamilyResult(command, engine, findings, (), base.reported, ran=base.ran)
