"""The checks of a proof, evaluated the same way on every engine that runs code.

An engine supplies a `Session` (run the example, run a query, show a plan, run a statement);
`evaluate` walks the proof's checks in order and returns one line per claim not observed.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from ..kb_proof import (
    ConcurrentCheck,
    IdempotentCheck,
    NodeCheck,
    PlanCheck,
    Proof,
    QueryCheck,
    RaisesCheck,
    ReturnsCheck,
)
from .core import matches, one_line, short
from .sqlsplit import split_sql

EXAMPLE = "example"
"""`plan: example` explains the example's own last statement (a leading EXPLAIN dropped)."""


class Session(Protocol):
    """One engine's way of running an example and looking at what it left behind."""

    def run_example(self) -> BaseException | None:
        """Run the example (and its `run` code); return the error it raised, if any."""

    def value(self, query: str) -> Any:
        """The first column of the first row of a query (a Python expression's value)."""

    def result(self, query: str) -> Any:
        """The whole result of a query, for comparing before and after a rerun."""

    def plan(self, query: str, analyze: bool) -> str:
        """The query plan as text."""

    def statement(self, statement: str) -> BaseException | None:
        """Run a statement after the example; return its error, if any."""

    def returned(self) -> list[tuple[Any, ...]] | None:
        """The rows the example's last statement returned (None: it returned no rows)."""


def evaluate(
    proof: Proof, session: Session, error: BaseException | None, code: str = ""
) -> list[str]:
    """Check every claim of `proof` against a session whose example already ran (`error` is what
    it raised). Concurrent checks are the engine's to run while the example is open."""
    failures: list[str] = []
    must_fail = [c for c in proof.checks if isinstance(c, RaisesCheck) and c.statement is None]
    for expected in must_fail:
        if not matches(error, expected.raises):
            observed = f"it failed with {_error(error)}" if error else "it ran without error"
            failures.append(
                f"claimed the example fails with '{expected.raises}'; observed {observed}"
            )
    if error is not None and not must_fail:
        return [f"claimed it runs; observed {_error(error)}"]
    for check in proof.checks:
        if isinstance(check, QueryCheck):
            failures += _query(session, check)
        elif isinstance(check, PlanCheck):
            failures += _plan(session, check, code)
        elif isinstance(check, ReturnsCheck):
            failures += _returns(session, check)
        elif isinstance(check, RaisesCheck) and check.statement is not None:
            err = session.statement(check.statement)
            if not matches(err, check.raises):
                observed = _error(err) if err else "it succeeded"
                failures.append(f"`{one_line(check.statement)}`: claimed it fails with "
                                f"'{check.raises}'; observed {observed}")
    for check in proof.checks:  # reruns change state: last
        if isinstance(check, IdempotentCheck):
            failures += _idempotent(session, check)
    return failures


def _query(session: Session, check: QueryCheck) -> list[str]:
    try:
        value = session.value(check.query)
    except Exception as err:
        return [f"`{one_line(check.query)}`: claimed {short(check.expect)}; "
                f"observed {_error(err)}"]
    if not _equal(value, check.expect):
        return [f"`{one_line(check.query)}`: claimed {short(check.expect)}; "
                f"observed {short(value)}"]
    return []


def _returns(session: Session, check: ReturnsCheck) -> list[str]:
    rows = session.returned()
    observed = sorted((_plain_row(r) for r in rows or []), key=repr)
    expected = sorted((_plain_row(r) for r in check.returns), key=repr)
    if rows is None or observed != expected:
        return [f"claimed the example returns {short(expected, 300)}; observed "
                f"{short(observed, 300) if rows is not None else 'no result set'}"]
    return []


def _plain_row(row: Any) -> tuple[Any, ...]:
    """Decimal and int as float, dates and times as ISO text: what YAML can write down."""
    out: list[Any] = []
    for value in row:
        if isinstance(value, bool) or value is None or isinstance(value, str):
            out.append(value)
        elif isinstance(value, int | float) or type(value).__name__ == "Decimal":
            out.append(float(value))
        elif hasattr(value, "isoformat"):
            out.append(value.isoformat())
        else:
            out.append(str(value))
    return tuple(out)


def _equal(value: Any, expect: Any) -> bool:
    if isinstance(expect, bool) or isinstance(value, bool):
        return value is expect or (type(value).__name__ == "bool_" and bool(value) is expect)
    if isinstance(expect, int | float) and not isinstance(value, str):
        try:
            return float(value) == float(expect)
        except (TypeError, ValueError):
            return False
    return bool(value == expect)


def _plan(session: Session, check: PlanCheck, code: str) -> list[str]:
    query = check.plan
    if query.strip() == EXAMPLE:  # the example's own last statement, without its EXPLAIN
        query = re.sub(r"(?is)^\s*EXPLAIN\s+", "", split_sql(code)[-1])
    try:
        plan = session.plan(query, check.analyze)
    except Exception as err:
        return [f"plan of `{one_line(check.plan)}`: {_error(err)}"]
    failures = []
    shown = one_line(plan.replace("\n", " | "), 300)
    if check.contains is not None and check.contains not in plan:
        failures.append(f"plan of `{one_line(check.plan)}`: claimed it shows '{check.contains}'; "
                        f"observed: {shown}")
    if check.excludes is not None and check.excludes in plan:
        failures.append(f"plan of `{one_line(check.plan)}`: claimed it does not show "
                        f"'{check.excludes}'; observed: {shown}")
    return failures


def _idempotent(session: Session, check: IdempotentCheck) -> list[str]:
    what = f"`{one_line(check.idempotent)}`"
    try:
        before = session.result(check.idempotent)
    except Exception as err:
        return [f"rerun: {what} could not be read: {_error(err)}"]
    rerun_error = session.run_example()
    if rerun_error is not None:
        claim = "the example runs again unchanged" if check.expect else "a rerun changes " + what
        return [f"rerun: claimed {claim}; observed the second run failed with "
                f"{_error(rerun_error)}"]
    after = session.result(check.idempotent)
    if check.expect and before != after:
        return [f"rerun: claimed {what} unchanged; observed {short(before)} then {short(after)}"]
    if not check.expect and before == after:
        return [f"rerun: claimed {what} changes (the misbehaviour shown); observed "
                f"{short(before)} both times"]
    return []


def _error(err: BaseException | None) -> str:
    if err is None:
        return "no error"
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


__all__ = ["ConcurrentCheck", "NodeCheck", "Session", "evaluate"]
