"""`index`: the indexes the answer proposes serve the queries, with equality columns first.

The queries are the ones the user pasted (inline or fenced SQL in the prompt) or, without a
prompt, the answer's own SELECTs. On PostgreSQL the family loads a few thousand generated rows
into the answer's tables, runs ANALYZE, and EXPLAINs each query's generic plan (bind
parameters `$1` stay parameters). An index that the planner does not choose at that size is
tried again with `enable_seqscan = off`: used then, it is usable but not chosen at this size (a
pass that says so); still unused, it cannot serve the query (a failure). `now()` in a partial
index predicate is refused by PostgreSQL: the `executes` check, in the engine's words.

Property ids:

- `index-used`: each query on a table the answer indexes uses one of the proposed indexes.
- `index-order`: no proposed index puts a column a query compares by range (`<`, `>=`,
  BETWEEN) before a column the same query compares by equality.
"""

from __future__ import annotations

import re
from typing import Any

from ..catalog import Catalog, Column, Index, Table, quote
from ..engine import Broken, Rejected, Session
from ..properties import Finding, ProbeInput, family
from ..synth import allowed_values

PROPERTIES = ("index-used", "index-order")
ROWS = 5000
_INLINE_SQL = re.compile(r"`((?:SELECT|WITH)\b[^`]+)`", re.I)


@family("index", properties=PROPERTIES)
def index_family(probe: ProbeInput) -> list[Finding]:
    catalog = probe.execution.catalog
    # by lower-cased name: a query's "Ticket" and the catalog's Ticket are one table
    proposed = {t.name.lower(): [i for i in t.indexes if not i.primary]
                for t in catalog.tables.values()}
    proposed = {name: found for name, found in proposed.items() if found}
    if not proposed:
        why = ("the answer creates no index on a table it creates" if catalog.tables else
               "the answer creates no table: its indexes act on the user's schema (not run)")
        return [Finding.not_applicable(p, why) for p in PROPERTIES]
    queries = [q for q in _queries(probe) if _tables_of(q) & set(proposed)]
    if not queries:
        why = "no query on an indexed table in the prompt or the answer"
        return [Finding.not_applicable(p, why) for p in PROPERTIES]
    return [index_used(probe, proposed, queries), index_order(catalog, proposed, queries)]


def _queries(probe: ProbeInput) -> list[str]:
    """The prompt's queries (fenced or inline), else the answer's own SELECTs."""
    found = [s.sql for s in probe.prompt_program.of_kind("query")] if probe.prompt else []
    found += [m.group(1).strip().rstrip(";") for m in _INLINE_SQL.finditer(probe.prompt)]
    if not found:
        found = [re.sub(r"^\s*EXPLAIN\b\s*(\([^)]*\)\s*|ANALY[SZ]E\s*)*", "", s.sql, flags=re.I)
                 for s in probe.program.of_kind("query")]
    return [q for q in found if q.strip()]


def _tree(sql: str) -> Any:
    import sqlglot
    import sqlglot.errors

    try:
        return sqlglot.parse_one(sql, read="postgres")
    except sqlglot.errors.SqlglotError:
        return None


def _tables_of(sql: str) -> set[str]:
    from sqlglot import exp

    tree = _tree(sql)
    return {str(t.name).lower() for t in tree.find_all(exp.Table)} if tree is not None else set()


# --- index-used -----------------------------------------------------------------------------------


def _generated(column: Column, table: Table, allowed: dict[str, list[str]]) -> str:
    """A generate_series expression (`g` = 1..ROWS) for a column: keys unique, other columns
    with a few dozen distinct values, nullable times NULL in one row of 200."""
    typ = column.type
    unique = column.name in table.primary_key or any(column.name in u for u in table.uniques)
    if column.name in allowed:
        options = allowed[column.name]
        return "(ARRAY[" + ", ".join(options) + f"])[1 + g % {len(options)}]"
    if typ.startswith("timestamp") or typ == "date":
        value = f"(TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL '7 minutes')::{typ}"
        return f"CASE WHEN g % 200 = 0 THEN NULL ELSE {value} END" if column.nullable else value
    if re.match(r"(big|small)?int|integer|numeric|decimal|double|real", typ):
        return f"g::{typ}" if unique else f"(g % 50)::{typ}"
    if typ in ("boolean", "bool"):
        return "g % 2 = 0"
    if typ in ("jsonb", "json"):
        return f"jsonb_build_object('k', g % 20)::{typ}"
    if typ == "uuid":
        return "md5(g::text)::uuid"
    return f"('{column.name}_' || {'g' if unique else 'g % 50'})::{typ}"


def _fill(session: Session, catalog: Catalog, table: Table) -> int:
    """Insert ROWS generated rows into `table` (parents first); rows stored."""
    for fk in table.foreign_keys:
        parent = catalog.table(fk.table)
        if parent is not None and parent.name != table.name:
            _fill(session, catalog, parent)
    allowed = allowed_values(table)
    fk_cols = {c: fk for fk in table.foreign_keys for c in fk.columns}
    names, values = [], []
    for column in table.columns:
        if column.generated:
            continue
        names.append(quote(column.name))
        values.append(f"(g % {ROWS} + 1)::{column.type}" if column.name in fk_cols
                      else _generated(column, table, allowed))
    try:
        with session.savepoint():
            session.execute(f"INSERT INTO {table.qualified} ({', '.join(names)}) SELECT "
                            f"{', '.join(values)} FROM generate_series(1, {ROWS}) AS g "
                            "ON CONFLICT DO NOTHING")
    except Rejected:
        return 0
    session.execute(f"ANALYZE {table.qualified}")
    return ROWS


def _plan(session: Session, sql: str) -> str:
    """The generic plan of `sql` (bind parameters stay parameters)."""
    session.execute("DEALLOCATE ALL")
    session.execute(f"PREPARE probe_query AS {sql}")
    types = session.execute("SELECT parameter_types::text[] FROM pg_prepared_statements "
                            "WHERE name = 'probe_query'") or [([],)]
    params = list(types[0][0] or [])
    session.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    args = f"({', '.join(f'NULL::{t}' for t in params)})" if params else ""
    found = session.execute(f"EXPLAIN EXECUTE probe_query{args}") or []
    return "\n".join(str(r[0]) for r in found)


def index_used(probe: ProbeInput, proposed: dict[str, list[Index]],
               queries: list[str]) -> Finding:
    prop = "index-used"
    session = probe.execution.session
    if session.engine != "postgres":
        return Finding.not_applicable(prop, "DuckDB's planner uses an ART index for point "
                                      "lookups only; plans are not compared")
    catalog = probe.execution.catalog
    notes = []
    with session.savepoint(undo=True):
        for table in catalog.tables.values():
            if table.name.lower() in proposed:
                _fill(session, catalog, table)
        for n, sql in enumerate(queries, start=1):
            names = [i.name for t in _tables_of(sql) & set(proposed) for i in proposed[t]]
            try:
                with session.savepoint():
                    plan = _plan(session, sql)
            except (Rejected, Broken) as err:
                notes.append(f"query {n} not planned ({str(err).splitlines()[0]})")
                continue
            used = [i for i in names if re.search(rf"\b{re.escape(i)}\b", plan)]
            if used:
                notes.append(f"query {n} uses {', '.join(used)}")
                continue
            with session.savepoint(undo=True):
                session.execute("SET LOCAL enable_seqscan = off")
                forced = _plan(session, sql)
            used = [i for i in names if re.search(rf"\b{re.escape(i)}\b", forced)]
            if not used:
                return Finding.failed(prop, f"query {n} ({_short(sql)}) cannot use "
                                      f"{', '.join(names)}: even with seqscan off the plan "
                                      "reads the table")
            notes.append(f"query {n} can use {', '.join(used)} (not chosen at {ROWS} rows)")
    if not any("use" in note for note in notes):
        return Finding.not_applicable(prop, "; ".join(notes))
    return Finding.passed(prop, "; ".join(notes))


def _short(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= 80 else flat[:77] + "..."


# --- index-order ----------------------------------------------------------------------------------


def _predicates(sql: str) -> tuple[set[str], set[str]]:
    """(equality columns, range columns) of a query's WHERE."""
    from sqlglot import exp

    tree = _tree(sql)
    equal: set[str] = set()
    ranged: set[str] = set()
    where = tree.find(exp.Where) if tree is not None else None
    if where is None:
        return equal, ranged
    for node in where.find_all(exp.EQ, exp.In, exp.Is):
        column = node.this if isinstance(node.this, exp.Column) else None
        if column is not None:
            equal.add(str(column.name).lower())
    for node in where.find_all(exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between):
        for side in (node.this, node.args.get("expression")):
            if isinstance(side, exp.Column):
                ranged.add(str(side.name).lower())
    return equal, ranged - equal


def index_order(catalog: Catalog, proposed: dict[str, list[Index]],
                queries: list[str]) -> Finding:
    prop = "index-order"
    checked = 0
    for sql in queries:
        equal, ranged = _predicates(sql)
        if not equal or not ranged:
            continue
        for table in _tables_of(sql) & set(proposed):
            for index in proposed[table]:
                columns = [c.strip('"').lower() for c in index.columns]
                if len(columns) < 2:
                    continue
                checked += 1
                for position, column in enumerate(columns):
                    later = [c for c in columns[position + 1:] if c in equal]
                    if column in ranged and later:
                        return Finding.failed(prop, f"{index.name} ({', '.join(columns)}) puts "
                                              f"the range column {column} before the equality "
                                              f"column {later[0]} of {_short(sql)}")
    if not checked:
        return Finding.not_applicable(prop, "no composite index on a query with both equality "
                                      "and range predicates")
    return Finding.passed(prop, f"{checked} composite index(es) put equality columns before "
                          "range columns")
