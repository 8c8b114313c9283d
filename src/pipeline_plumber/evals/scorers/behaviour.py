"""Behaviour: run the answer's SQL in a sandbox and probe what the schema does (a blocker).

The answer is read as a Program (`evals.execution.program`): its setup (DDL and seed rows, in
the order the answer gives them) runs first, exactly as `executes` runs it; statements the
answer shows as examples, or quotes from the prompt before rewriting, are reported and not run.
A probe replays the answer's own statements with `run: answer-dml` (its loads),
`run: answer-maintenance` (SCD2 closing, retention, backfill) or `run: answer-writes` (both,
in the answer's order), optionally only those writing `into` one table; `run: answer-checks`
runs the answer's check queries, first on a clean batch (`expect: ok`, the baseline) and then,
after the probe adds a defect, with `expect: fires`: some check must now flag it. Every probe
starts from the state the setup left, and is undone afterwards.

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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...sandbox import Broken, Damaged, Engine, Rejected, SqlSession, TimedOut
from ...sandbox.duckdb import DUCKDB_CONFIG
from ..answers import Answer
from ..execution.catalog import quote
from . import Context, Score, ScoreFn, scorer
from .probe_rows import NotFound, RowMaker, RowSpec, sql_literal

if TYPE_CHECKING:
    from ..execution.program import Program
    from ..execution.program import StepKind as ProgramKind


class Step(BaseModel):
    """One step of a probe: a statement of the probe's own, a row found by role, or the
    answer's load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sql: str | None = Field(default=None, description="A statement to run.")
    run: Literal["answer-dml", "answer-maintenance", "answer-writes", "answer-checks"] | None = (
        Field(default=None, description="Replay the answer's own statements: `answer-dml` its "
              "loads (INSERT..SELECT, upserts, MERGE, UPDATE, DELETE, overwrites), "
              "`answer-maintenance` its maintenance (SCD2 closing, retention, backfill), "
              "`answer-writes` both, in the answer's order; `answer-checks` runs its check "
              "queries (`expect: ok` keeps their results as the baseline, `expect: fires` asks "
              "that one of them flags what changed since)."))
    row: RowSpec | None = Field(
        default=None, description="A row into the table the answer chose for a role the prompt "
        "only describes (see `probe_rows`): other columns and parent rows are synthesised.")
    into: str | None = Field(
        default=None,
        description="With `run`: only the answer's statements that write into this table (so a "
        "statement that empties staging before a COPY is not replayed).",
    )
    expect: Literal["ok", "error", "fires"] | list[list[Any]] = Field(
        default="ok",
        description="`ok`, `error` (the database must reject it), the rows a query returns, or "
        "`fires` (with `run: answer-checks`: a check flags the defect).",
    )

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if sum(action is not None for action in (self.sql, self.run, self.row)) != 1:
            raise ValueError("a step has exactly one of 'sql', 'run' and 'row'")
        if self.row is not None and self.expect not in ("ok", "error"):
            raise ValueError("'row' expects ok or error")
        if self.run == "answer-checks":
            if self.expect not in ("ok", "fires") or self.into is not None:
                raise ValueError("'run: answer-checks' expects ok (the baseline) or fires, "
                                 "and takes no 'into'")
        elif self.expect == "fires":
            raise ValueError("'fires' goes with 'run: answer-checks'")
        elif self.run is not None and self.expect not in ("ok", "error"):
            raise ValueError("'run' expects ok or error, not rows")
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


# --- running probes -------------------------------------------------------------------------------

__all__ = ["DUCKDB_CONFIG", "Broken", "Rejected", "sql_behaves"]

_REPLAYED: dict[str, tuple[ProgramKind, ...]] = {
    "answer-dml": ("load",), "answer-maintenance": ("maintenance",),
    "answer-writes": ("load", "maintenance"),
}
_WHAT = {"answer-dml": "load (INSERT..SELECT, upsert, MERGE, UPDATE, DELETE)",
         "answer-maintenance": "maintenance statement (SCD2 closing, retention, backfill)",
         "answer-writes": "load or maintenance statement"}


def _normal(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _recover(session: SqlSession, kept: list[list[str]]) -> None:
    """After a refused step, bring DuckDB back to where the probe was: its transaction is
    aborted by any error (it has no savepoints), so start it again and replay the steps that
    succeeded. PostgreSQL rolled back to the step's own savepoint already."""
    if session.engine != "duckdb":
        return
    session.execute("ROLLBACK")
    session.execute("BEGIN TRANSACTION")
    for statements in kept:
        for sql in statements:
            session.execute(sql)


# A check's result: the set of rows it returned, or None when it could not run.
CheckResults = dict[str, frozenset[tuple[Any, ...]] | None]
_CHECK_FIRST = {"SELECT", "WITH", "VALUES", "TABLE", "FROM"}


def _run_checks(session: SqlSession, program: Program, kept: list[list[str]]) -> CheckResults:
    """Each of the answer's check queries, run on the current state. A query that cannot run
    here (it reads a table the probe never has) is left out, not failed."""
    results: CheckResults = {}
    for query in program.of_kind("query"):
        if query.statement.upper() not in _CHECK_FIRST:
            continue  # EXPLAIN and friends describe plans, they flag nothing
        try:
            with session.savepoint():
                rows = session.execute(query.sql)
        except (Rejected, Broken):
            _recover(session, kept)
            results[query.where] = None
            continue
        results[query.where] = frozenset(tuple(_normal(v) for v in row) for row in rows or [])
    return results


def _quiet(value: Any) -> bool:
    return value is None or value is False or value == 0


def _check_fired(before: frozenset[tuple[Any, ...]], after: frozenset[tuple[Any, ...]]
                 ) -> bool:
    """A query fires when it returns a row it did not return on the baseline; a one-row tally
    fires when it goes from all zero (or false) to anything else."""
    if len(before) == 1 and len(after) == 1:
        (old,), (new,) = before, after
        if all(v is None or isinstance(v, bool | int | float) for v in (*old, *new)):
            return all(_quiet(v) for v in old) and not all(_quiet(v) for v in new)
    return bool(after - before)


def _checks_step(session: SqlSession, step: Step, program: Program, kept: list[list[str]],
                 baseline: CheckResults | None) -> tuple[CheckResults | None, str | None]:
    """(the new baseline, what went wrong) for a `run: answer-checks` step."""
    results = _run_checks(session, program, kept)
    ran = {where: rows for where, rows in results.items() if rows is not None}
    if not ran:
        return baseline, "the answer has no check query that runs here"
    if step.expect == "ok":
        return results, None
    if baseline is None:
        return baseline, "'fires' needs an earlier answer-checks step as its baseline"
    if any(before is not None and where in ran and _check_fired(before, ran[where])
           for where, before in baseline.items()):
        return baseline, None
    return baseline, f"none of the answer's {len(ran)} check queries flags it"


def _parents_of_row(session: SqlSession, spec: RowSpec, maker: RowMaker,
                    kept: list[list[str]]) -> str | None:
    """Give a `row` step's table its parents: a row the parent table already holds (a lookup
    the answer seeds), else a synthetic one. What went wrong, if anything."""
    for table in maker.parents_missing(spec):
        keys = maker.keys_of(table)
        if keys:
            found = session.execute(f"SELECT {', '.join(quote(k) for k in keys)} FROM "
                                    f"{table.qualified} LIMIT 1")
            if found:
                maker.keep(table, {k: sql_literal(v) for k, v in zip(keys, found[0],
                                                                     strict=True)})
                continue
        row, sql = maker.parent_insert(table)
        try:
            with session.savepoint():
                session.execute(sql)
        except (Rejected, Broken) as err:
            return f"a synthetic parent row for {table.name} was refused: {err}"
        kept.append([sql])
        maker.keep(table, row)
    return None


def _run_probe(session: SqlSession, probe: Probe, program: Program, catalog: Any
               ) -> str | None:
    """None when the probe shows the behaviour, else what went wrong."""
    kept: list[list[str]] = []
    baseline: CheckResults | None = None
    maker = RowMaker(catalog, session.engine)
    for number, step in enumerate(probe.steps, start=1):
        label = "the answer's statements" if step.run else f"step {number}"
        made = None
        if step.row is not None:
            try:
                failure = _parents_of_row(session, step.row, maker, kept)
                made = maker.row_insert(step.row)
            except NotFound as err:
                return f"{label} could not run: {err}"
            if failure:
                return f"{label}: {failure}"
            label += f" (a row into {made[0].name})"
        if step.run == "answer-checks":
            baseline, failure = _checks_step(session, step, program, kept, baseline)
            if failure:
                return f"step {number} ({step.expect}): {failure}"
            continue
        if step.run:
            chosen = program.writes(step.into, kinds=_REPLAYED[step.run])
            if not chosen:
                into = f" into {step.into}" if step.into else ""
                return f"the answer has no {_WHAT[step.run]}{into} to run"
            statements = [s.sql for s in chosen]
        elif made is not None:
            statements = [made[2]]
        else:
            statements = [step.sql or ""]
        more = number < len(probe.steps)
        try:
            with session.savepoint():
                rows = None
                for sql in statements:
                    rows = session.execute(sql)
        except Rejected as err:
            if more:
                _recover(session, kept)
            if step.expect == "error":
                continue
            return f"{label} was rejected: {err}"
        except Broken as err:
            return f"{label} could not run: {err}"
        kept.append(statements)
        if made is not None:
            maker.keep(made[0], made[1])
        if step.expect == "error":
            return f"{label} succeeded; the database should have rejected it"
        if isinstance(step.expect, list):
            got = [[_normal(v) for v in row] for row in rows or []]
            want = [[_normal(v) for v in row] for row in step.expect]
            if got != want:
                return f"{label} returned {got}, expected {want}"
    return None


def _reported(items: list[str], limit: int = 3) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; reported: " + "; ".join(items[:limit]) + more


def _find_own_schemas(session: Any, catalog: Any) -> None:
    """Probes name tables as the prompt does (`dim_customer`); an answer that puts them in a
    schema of its own (`mart.dim_customer`) is found through the search path, after the default
    schema (a name in both, `staging.crm_contacts` beside `crm_contacts`, stays the default's).
    A schema that holds only the answer's views (`partner_share.partner_signups`) counts too."""
    from ..execution.catalog import DEFAULT_SCHEMAS

    views = {str(row[0]) for row in session.execute(
        "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_type = 'VIEW' "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema')")}
    own = sorted(({t.schema for t in catalog.tables.values()} | views) - set(DEFAULT_SCHEMAS))
    if not own:
        return
    if session.engine == "postgres":
        names = ", ".join('"' + s.replace('"', '""') + '"' for s in own)
        session.execute(f"SET search_path TO public, {names}")
    else:
        session.execute("SET search_path = '" + ",".join(["main", *own]).replace("'", "''")
                        + "'")


def _program_to_probe(answer: Answer, ctx: Context, engine: Literal["duckdb", "postgres"] | None,
                      setup: tuple[str, ...], probes: list[Probe]
                      ) -> tuple[Program, Engine] | Score:
    """The answer's Program on the engine the probes run on, or the Score that ends the check
    before anything runs (no sandbox for the dialect, SQL that cannot be split or translated,
    nothing of the answer's own to run)."""
    from ..execution.program import WAREHOUSES, build_program

    given = engine or ctx.dialect or ""
    if given not in ("duckdb", "postgres"):
        return Score.fail(f"no sandbox runs {given or 'an unnamed dialect'}; set engine")
    name: Engine = "duckdb" if given == "duckdb" else "postgres"
    dialect = ctx.dialect if ctx.dialect in WAREHOUSES and name == "duckdb" else name
    program = build_program(answer, dialect, ctx.prompt, setup)
    if program.error:
        return Score.fail(program.error, blocker=True)
    if program.not_executed:
        return Score.not_scored(f"not executed: {program.not_executed}")
    # an answer to a prompt whose tables exist (the case's setup) may rightly bring only
    # its loads, or only its checks
    runs_checks = any(step.run == "answer-checks" for p in probes for step in p.steps)
    own = program.of_kind("load", "maintenance", *(("query",) if runs_checks else ()))
    if len(program.setup) <= len(setup) and not (setup and own):
        shown = [f"{s.where}: {s.statement} not run ({s.note})"
                 for s in program.of_kind("example")]
        return Score.fail(f"the answer has no DDL to run on {name}" + _reported(shown),
                          blocker=True)
    return program, name


@scorer("sql_behaves", version=4)
def sql_behaves(*, probes: list[Probe], engine: Literal["duckdb", "postgres"] | None = None,
                setup: list[str] | None = None) -> ScoreFn:
    """Run the answer's setup in a sandbox, then each probe; every probe must behave (a
    blocker: one that does not fails the answer whatever its score).

    `setup` holds the case's own statements, run before the answer's in the same database:
    the tables a prompt says already exist, which an answer that only adds indexes or views
    rightly never creates. A `row` step names a table and columns by role where the prompt
    fixes no names (`probe_rows`).

    Passes: probe `{name: a NULL user_id is rejected, steps: [{sql: "INSERT INTO events
            (event_id, user_id) VALUES (1, NULL)", expect: error}]}` on
            `CREATE TABLE events (event_id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL)`.
    Fails:  the same on `user_id BIGINT` with "probe 'a NULL user_id is rejected': step 1
            succeeded; the database should have rejected it".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        from ..execution.run import setup as run_setup

        prepared = _program_to_probe(answer, ctx, engine, tuple(setup or ()), probes)
        if isinstance(prepared, Score):
            return prepared
        program, name = prepared
        try:
            with ctx.resources.answer_session(name) as session:
                execution = run_setup(session, program)
                if not execution.ok:
                    return Score.fail(execution.failures[0], blocker=True)
                _find_own_schemas(session, execution.catalog)
                failures = []
                for probe in probes:
                    with session.savepoint(undo=True):
                        failure = _run_probe(session, probe, program, execution.catalog)
                    if failure:
                        failures.append(f"probe '{probe.name}': {failure}")
                notes = session.notes
        except (TimedOut, Damaged) as err:
            return Score.fail(str(err), blocker=True)
        passed = len(probes) - len(failures)
        value = passed / len(probes) if probes else 1.0
        if failures:
            return Score.fail("; ".join(failures) + f" ({passed}/{len(probes)} probes behave)",
                              value, blocker=True)
        noted = "".join(f" ({note})" for note in dict.fromkeys(notes))
        return Score.ok(f"{execution.ran} setup statement(s) ran on {name}{noted}; all "
                        f"{len(probes)} probe(s) behave: " + "; ".join(p.name for p in probes)
                        + _reported(execution.reported))

    return score
