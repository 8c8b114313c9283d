"""Execution: run the answer's SQL on a real engine and judge what it does (blockers).

`executes` runs the answer's setup in order; `behaves` runs its command's property family
(`pipeline_plumber.evals.execution`) and reports the properties a rubric names. Both are
blockers: a failure fails the answer whatever its weighted score.
"""

from __future__ import annotations

from typing import Literal

from ..answers import Answer
from . import Context, Score, ScoreFn, scorer

EngineName = Literal["postgres", "duckdb", "snowflake", "bigquery"]


def _dialect(answer: Answer, ctx: Context, engine: str | None) -> tuple[str, str]:
    return ctx.dialect_for(answer, engine)


def _reported(items: tuple[str, ...], limit: int = 3) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; reported: " + "; ".join(items[:limit]) + more


@scorer("executes")
def executes(*, engine: EngineName | None = None, needs_sql: bool = True) -> ScoreFn:
    """The answer's setup (DDL and seed rows, in the order written) runs on the engine.

    Snowflake and BigQuery SQL is translated to DuckDB where that is faithful; otherwise the
    check is not scored (`not executed: <feature> has no DuckDB equivalent`). Statements the
    answer shows as examples of later operations, or that act on objects it never creates, are
    reported, not run. A blocker.

    Passes: `CREATE TABLE dim_date (date_key INT PRIMARY KEY); CREATE TABLE fact (date_key INT
            REFERENCES dim_date (date_key))` on duckdb.
    Fails:  the two in the other order, with "DDL does not run: Catalog Error: Table with name
            dim_date does not exist!".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        from ..execution.program import build_program
        from ..execution.properties import run_family

        dialect, note = _dialect(answer, ctx, engine)
        program = build_program(answer, dialect, ctx.prompt)
        if program.error:
            return Score.fail(program.error + note, blocker=True)
        if program.not_executed:
            return Score.not_scored(f"not executed: {program.not_executed}")
        if not program.setup and not program.of_kind("load", "maintenance", "query"):
            if needs_sql:
                return Score.fail(f"the answer has no SQL to run on {dialect}{note}",
                                  blocker=True)
            return Score.not_scored("the answer has no SQL to run")
        result = run_family(answer, ctx.command or "", ctx, dialect)
        if result.not_executed:
            return Score.not_scored(f"not executed: {result.not_executed}")
        if result.error and not result.ran:
            return Score.fail(result.error, blocker=True)
        if result.setup_failures:
            return Score.fail("; ".join(result.setup_failures) + note, blocker=True)
        return Score.ok(f"{result.ran} setup statement(s) ran on {result.engine}{note}"
                        + _reported(result.reported))

    return score


@scorer("behaves")
def behaves(*, properties: list[str], engine: EngineName | None = None) -> ScoreFn:
    """The command's property probes hold on the answer's own schema and data (a blocker).

    The family of the case's command (or `eval score --command`) runs once per answer; this
    check reports the `properties` named. A property the answer gives nothing for (no SCD2
    statements, no money column) is n/a and not scored.

    Passes: `{properties: [primary-keys]}` for schema on `CREATE TABLE t (id INT PRIMARY KEY)`.
    Fails:  the same on `CREATE TABLE t (id INT)`, with "primary-keys: t has no primary key".
    """
    from ..execution.properties import known_properties

    unknown = sorted(set(properties) - known_properties())
    if unknown:
        raise ValueError(f"unknown properties: {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(known_properties()))}")
    if not properties:
        raise ValueError("name at least one property")

    def score(answer: Answer, ctx: Context) -> Score:
        from ..execution.program import build_program
        from ..execution.properties import load_families, run_family

        command = ctx.command or ""
        family = load_families().get(command)
        if family is None:
            return Score.not_scored(f"no property family for command {command or '(none)'}")
        foreign = [p for p in properties if p not in family.properties]
        if foreign:
            return Score.fail(f"the {command} family has no properties {', '.join(foreign)}")
        dialect, _ = _dialect(answer, ctx, engine)
        program = build_program(answer, dialect, ctx.prompt)
        if not program.steps and not program.error and family.needs_sql:
            return Score.fail(f"the answer has no SQL to run on {dialect}", blocker=True)
        result = run_family(answer, command, ctx, dialect)
        if result.not_executed:
            return Score.not_scored(f"not executed: {result.not_executed}")
        if result.error:
            return Score.fail(result.error, blocker=True)
        if result.setup_failures:
            return Score.fail("no property can be shown: " + result.setup_failures[0],
                              blocker=True)
        findings = [result.finding(p) for p in properties]
        missing = [p for p, f in zip(properties, findings, strict=True) if f is None]
        scored = [f for f in findings if f is not None and f.status != "n/a"]
        failed = [f for f in scored if f.status == "fail"]
        if missing:
            return Score.fail(f"the family reported nothing for {', '.join(missing)}")
        if not scored:
            return Score.not_scored("; ".join(f"{f.property}: {f.detail}" for f in findings
                                              if f is not None))
        value = 1 - len(failed) / len(scored)
        if failed:
            return Score.fail("; ".join(f"{f.property}: {f.detail}" for f in failed), value,
                              blocker=any(f.blocker for f in failed))
        return Score.ok("; ".join(f"{f.property}: {f.detail}" for f in scored))

    return score
