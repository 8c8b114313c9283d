"""Run the answer's setup (its `ddl` and `seed` steps, in the answer's order) on a fresh database.

An engine refusal is the answer's failure, carrying the engine's own words:
`DDL does not run: relation "dim_date" does not exist (SQL block 1 (line 3), statement 4)`.
The first refusal stops the setup (what follows would fail for the same reason). A foreign key
to a table the answer never creates (the user said it exists) gets a stub parent with just the
referenced key, reported as such. Example and skipped steps are reported, never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog, read_catalog
from .engine import Broken, Rejected, Session
from .program import Program, Step

MISSING_RELATION = re.compile(r'(?:relation|Table with name)\s+"?([\w.]+)"?\s+does not exist',
                              re.I)
"""An engine's words for a table that is not there (PostgreSQL, DuckDB); group 1 names it."""


@dataclass
class Execution:
    """The answer's setup applied to one fresh database: what ran, what failed, what was only
    reported, and the catalog read afterwards."""

    program: Program
    session: Session
    catalog: Catalog
    failures: list[str] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)
    ran: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


def setup(session: Session, program: Program) -> Execution:
    """Run `program`'s setup in `session`; never raises for the answer's own errors (a timeout,
    which ends the answer's time, does propagate)."""
    from .engine import TimedOut

    execution = Execution(program, session, Catalog(session.engine))
    execution.reported += list(program.notes)
    _set_custom_settings(session, program, execution)
    for step in program.steps:
        if step.kind in ("example", "skip"):
            execution.reported.append(f"{step.where}: {step.statement} not run ({step.note})")
            continue
        if step.kind not in ("ddl", "seed"):
            continue
        try:
            _run_step(session, step, program, execution)
        except TimedOut:
            raise
        except (Rejected, Broken) as err:
            what = "DDL does not run" if step.kind == "ddl" else "seed rows do not load"
            execution.failures.append(f"{what}: {err} ({step.where})")
            break
        execution.ran += 1
    outcome = (session.engine, execution.ran, tuple(execution.failures))
    catalog = program.catalogs.get(outcome)
    if not isinstance(catalog, Catalog):
        catalog = program.catalogs.setdefault(outcome, read_catalog(session))
    execution.catalog = catalog
    return execution


_CUSTOM_SETTING = re.compile(r"current_setting\(\s*'([a-z_]\w*\.[a-z_][\w.]*)'", re.I)


def _set_custom_settings(session: Session, program: Program, execution: Execution) -> None:
    """A custom setting the answer reads (`current_setting('app.salt')`: a secret the user keeps
    outside SQL, in postgresql.conf or ALTER DATABASE) gets a placeholder value for the session,
    so the views and functions that read it can run; the answer's own SET still wins."""
    if session.engine != "postgres":
        return
    names = sorted({m.lower() for step in program.steps
                    for m in _CUSTOM_SETTING.findall(step.sql)})
    for name in names:
        session.execute(f"SELECT set_config('{name}', 'placeholder for {name}', false)")
        execution.reported.append(f"the answer reads the setting {name}, kept outside SQL; a "
                                  "placeholder value was set")


def _run_step(session: Session, step: Step, program: Program, execution: Execution) -> None:
    try:
        session.execute(step.sql)
    except Broken as err:
        missing = MISSING_RELATION.search(str(err))
        name = missing.group(1).split(".")[-1].lower() if missing else None
        stub = _stub_parent(step, name, program) if name else None
        if stub is None:
            raise
        session.execute(stub)
        execution.reported.append(
            f"{step.where}: references {name}, which the answer never creates; a stub with "
            "its key was created")
        session.execute(step.sql)


def _stub_parent(step: Step, name: str, program: Program) -> str | None:
    """`CREATE TABLE name (key type PRIMARY KEY)` for a table the step references by foreign
    key and the answer never creates; None when the step does not reference it so."""
    from sqlglot import exp

    if name in program.created or not isinstance(step.tree, exp.Create):
        return None
    dialect = "duckdb" if program.engine == "duckdb" else "postgres"
    columns = {str(c.name).lower(): c for c in step.tree.find_all(exp.ColumnDef)}
    for ref in step.tree.find_all(exp.Reference):
        target = ref.this
        table = target.this if isinstance(target, exp.Schema) else target
        if not isinstance(table, exp.Table) or str(table.name).lower() != name:
            continue
        ref_cols = [str(c.name) for c in target.expressions] if isinstance(
            target, exp.Schema) else []
        own = _own_columns(ref)
        types = [_type_of(columns.get(c.lower()), dialect) for c in own] or ["BIGINT"]
        if not ref_cols:
            ref_cols = own or [f"{name}_id"]
        defs = ", ".join(f"{col} {types[i] if i < len(types) else 'BIGINT'}"
                         for i, col in enumerate(ref_cols))
        return f"CREATE TABLE {table.sql(dialect=dialect)} ({defs}, PRIMARY KEY " \
               f"({', '.join(ref_cols)}))"
    return None


def _own_columns(ref: Any) -> list[str]:
    """The referencing columns: a column definition's own name, or FOREIGN KEY (a, b)."""
    from sqlglot import exp

    parent = ref.parent
    if isinstance(parent, exp.ForeignKey):
        return [str(e.name) for e in parent.expressions]
    column = ref.find_ancestor(exp.ColumnDef)
    return [str(column.name)] if column is not None else []


def _type_of(column: Any, dialect: str) -> str:
    kind = column.args.get("kind") if column is not None else None
    text = kind.sql(dialect=dialect) if kind is not None else "BIGINT"
    return "BIGINT" if text.upper() in ("SERIAL", "BIGSERIAL") else text
