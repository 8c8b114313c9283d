"""Behaviour: run the answer's SQL in a sandbox and probe what the schema does.

The answer's SQL blocks are split into statements (sqlglot's tokenizer, so semicolons inside
strings and dollar quotes are safe). DDL (CREATE, ALTER, COMMENT, DROP) runs first, in order;
DML (INSERT, UPDATE, DELETE, MERGE, TRUNCATE, and WITH ... INSERT) is kept as the answer's load,
which a probe runs with `run: answer-dml`. Queries, EXPLAIN, GRANT and transaction control are
not run. Then every probe runs from that state, undone afterwards.

Sandboxes (`pipeline_plumber.sandbox`, one deadline over everything an answer runs):
- duckdb: an in-memory database per probe with external access disabled (no files, no network,
  no extensions), memory and threads bounded, and the configuration locked, so an answer cannot
  turn it back on.
- postgres: a throwaway cluster started once per run; per answer a fresh database cloned from a
  template, owned by a role made for the answer with no privilege beyond it; each probe in a
  transaction rolled back at its end.

A step that expects an error passes only when the database rejects the data (an integrity or
data error: NOT NULL, CHECK, UNIQUE, a foreign key, a bad value). A missing table or column is
the probe failing to run, reported as such, never as a rejection.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...sandbox import Broken, Damaged, Engine, Rejected, SqlSession, TimedOut
from ...sandbox.duckdb import DUCKDB_CONFIG
from ..answers import Answer
from . import Context, Score, ScoreFn, scorer


class Step(BaseModel):
    """One step of a probe: a statement of the probe's own, or the answer's load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sql: str | None = Field(default=None, description="A statement to run.")
    run: Literal["answer-dml"] | None = Field(
        default=None, description="`answer-dml`: run the answer's INSERT/UPDATE/MERGE statements."
    )
    into: str | None = Field(
        default=None,
        description="With `run`: only the answer's statements that write into this table (so a "
        "statement that empties staging before a COPY is not replayed).",
    )
    expect: Literal["ok", "error"] | list[list[Any]] = Field(
        default="ok",
        description="`ok`, `error` (the database must reject it), or the rows a query returns.",
    )

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if (self.sql is None) == (self.run is None):
            raise ValueError("a step has exactly one of 'sql' and 'run'")
        if self.run is not None and self.expect not in ("ok", "error"):
            raise ValueError("'run: answer-dml' expects ok or error, not rows")
        return self


class Probe(BaseModel):
    """A named behaviour the schema must show, e.g. 'a NULL user_id is rejected'."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="What the probe shows, in plain words.")
    steps: list[Step] = Field(min_length=1)


# --- splitting the answer ------------------------------------------------------------------------

StatementKind = Literal["ddl", "dml", "other"]
_DDL = {"CREATE", "ALTER", "COMMENT", "DROP"}
_DML = {"INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE"}


@dataclass(frozen=True)
class Statement:
    sql: str
    kind: StatementKind
    where: str  # "SQL block 2 (line 14), statement 3"
    dialect: str = "postgres"

    @property
    def target(self) -> str | None:
        """The table a DML statement writes into (unqualified, lower case), if sqlglot knows."""
        from .sql import parse_sql

        parsed, _ = parse_sql(self.sql, self.dialect)
        if not parsed:
            return None
        node = parsed[0].this
        node = getattr(node, "this", node) if type(node).__name__ == "Schema" else node
        name = getattr(node, "name", None)
        return str(name).lower() if name else None


def split_statements(code: str, dialect: str) -> list[tuple[str, StatementKind]]:
    """Raw text and kind of each statement in `code` (comments and semicolons handled by the
    dialect's tokenizer). Raises sqlglot's TokenError on text that cannot be tokenized."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokenizer_core import TokenType

    tokens = Dialect.get_or_raise(dialect).tokenize(code)
    out: list[tuple[str, StatementKind]] = []
    current: list[Any] = []
    for token in [*tokens, None]:
        if token is None or token.token_type == TokenType.SEMICOLON:
            if current:
                words = {t.text.upper() for t in current}
                first = current[0].text.upper()
                kind: StatementKind = "other"
                if first in _DDL:
                    kind = "ddl"
                elif first in _DML or (first == "WITH" and words & _DML):
                    kind = "dml"
                out.append((code[current[0].start : current[-1].end + 1], kind))
            current = []
        else:
            current.append(token)
    return out


def answer_statements(answer: Answer, dialect: str) -> list[Statement]:
    key = ("statements", dialect)
    cached = answer.cache.get(key)
    if cached is None:
        cached = []
        for block in answer.sql_blocks:
            for i, (sql, kind) in enumerate(split_statements(block.code, dialect), start=1):
                where = f"SQL block {block.index} (line {block.line}), statement {i}"
                cached.append(Statement(sql, kind, where, dialect))
        answer.cache[key] = cached
    return cached


# --- engines --------------------------------------------------------------------------------------
# The sandbox (pipeline_plumber.sandbox) owns the engines; its errors are re-exported here.

__all__ = ["DUCKDB_CONFIG", "Broken", "Rejected", "sql_behaves"]


def _normal(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _run_probe(session: SqlSession, probe: Probe, dml: list[Statement]) -> str | None:
    """None when the probe shows the behaviour, else what went wrong."""
    for number, step in enumerate(probe.steps, start=1):
        label = "the answer's load" if step.run else f"step {number}"
        wanted = step.into.lower().split(".")[-1] if step.into else None
        chosen = [s for s in dml if wanted is None or s.target == wanted]
        statements = [s.sql for s in chosen] if step.run else [step.sql or ""]
        if step.run and not chosen:
            into = f" into {step.into}" if step.into else ""
            return f"the answer has no INSERT, UPDATE or MERGE{into} to run"
        try:
            with session.savepoint():
                rows = None
                for sql in statements:
                    rows = session.execute(sql)
        except Rejected as err:
            if step.expect == "error":
                continue
            return f"{label} was rejected: {err}"
        except Broken as err:
            return f"{label} could not run: {err}"
        if step.expect == "error":
            return f"{label} succeeded; the database should have rejected it"
        if isinstance(step.expect, list):
            got = [[_normal(v) for v in row] for row in rows or []]
            want = [[_normal(v) for v in row] for row in step.expect]
            if got != want:
                return f"{label} returned {got}, expected {want}"
    return None


def _apply_ddl(session: SqlSession, ddl: list[Statement], engine: str) -> str | None:
    for statement in ddl:
        try:
            session.execute(statement.sql)
        except (Rejected, Broken) as err:
            return f"{statement.where} fails on {engine}: {err}"
    return None


@scorer("sql_behaves", version=2)
def sql_behaves(*, probes: list[Probe], engine: Literal["duckdb", "postgres"] | None = None,
                setup: list[str] | None = None) -> ScoreFn:
    """Run the answer's DDL in a sandbox, then each probe; the score is the share that behave.

    `setup` holds the case's own statements, run before the answer's DDL in the same database:
    the tables a prompt says already exist, which an answer that only adds indexes or views
    rightly never creates.

    Passes: probe `{name: a NULL user_id is rejected, steps: [{sql: "INSERT INTO events
            (event_id, user_id) VALUES (1, NULL)", expect: error}]}` on
            `CREATE TABLE events (event_id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL)`.
    Fails:  the same on `user_id BIGINT` with "probe 'a NULL user_id is rejected': step 1
            succeeded; the database should have rejected it".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        given = engine or ctx.dialect or ""
        if given not in ("duckdb", "postgres"):
            return Score.fail(f"no sandbox runs {given or 'an unnamed dialect'}; set engine")
        name: Engine = "duckdb" if given == "duckdb" else "postgres"
        from sqlglot.errors import TokenError

        try:
            statements = answer_statements(answer, name)
        except TokenError as err:
            return Score.fail(f"the answer's SQL cannot be split into statements: {err}")
        ddl = [s for s in statements if s.kind == "ddl"]
        dml = [s for s in statements if s.kind == "dml"]
        if not ddl:
            return Score.fail(f"the answer has no DDL to run on {name}")
        given_setup = [Statement(sql, "ddl", f"the case's setup, statement {i}", name)
                       for i, sql in enumerate(setup or [], start=1)]
        try:
            with ctx.resources.answer_session(name) as session:
                failures = _probe_all(session, given_setup, ddl, dml, probes)
                notes = session.notes
        except (TimedOut, Damaged) as err:
            return Score.fail(str(err))
        if isinstance(failures, str):
            return Score.fail(failures)
        passed = len(probes) - len(failures)
        value = passed / len(probes) if probes else 1.0
        if failures:
            return Score.fail("; ".join(failures) + f" ({passed}/{len(probes)} probes behave)",
                              value)
        noted = "".join(f" ({note})" for note in dict.fromkeys(notes))
        return Score.ok(f"{len(ddl)} DDL statement(s) ran on {name}{noted}; all {len(probes)} "
                        "probe(s) behave: " + "; ".join(p.name for p in probes))

    return score


def _probe_all(session: SqlSession, setup: list[Statement], ddl: list[Statement],
               dml: list[Statement], probes: list[Probe]) -> list[str] | str:
    """What each failing probe shows, or why the setup or the DDL could not run (a string).

    PostgreSQL: the DDL once, each probe in a transaction rolled back at its end. DuckDB has no
    savepoints for the probe's own steps to nest in, so each probe starts from an empty
    database and the DDL again.
    """
    failures: list[str] = []
    for number, probe in enumerate(probes):
        if number == 0 or session.engine == "duckdb":
            if number:
                session.reset()
            problem = _apply_ddl(session, setup + ddl, session.engine)
            if problem:
                return problem
        if session.engine == "duckdb":
            failure = _run_probe(session, probe, dml)
        else:
            with session.savepoint(undo=True):
                failure = _run_probe(session, probe, dml)
        if failure:
            failures.append(f"probe '{probe.name}': {failure}")
    return failures
