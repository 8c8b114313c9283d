"""`optimize`: the rewrite returns the rows the original returns, on several small datasets chosen
to tell a right rewrite from an almost-right one; the plan cost before and after is reported.

The original is the query the user pasted (`probe.prompt_program`), or the query of the view
the user pasted; a rewrite is each query (or view query) of the answer that reads the original's
tables and returns its columns (an `EXPLAIN ...` prefix is dropped; a query the answer quotes
from the prompt is an example, not a rewrite). When the
original says `SELECT *` and the rewrite names fewer columns, the original is compared on the
rewrite's columns (the answer narrowed the list to what the report reads).

The schema comes from the answer's own DDL, else the prompt's DDL, else it is derived from the
queries: every `table.column` they mention, typed by its name (`*_id` integer, `*_at`/`*_ts`
timestamptz, `*_date` date, money names numeric(12,2), `is_*` boolean, text otherwise; SUM/AVG
arguments numeric); `<table>_id` (singular) or `id` is the table's key; a derived schema is said
so in the finding. A table the prompt describes in prose (`orders (order_id bigint PK,
customer_id bigint NULL)`) lends the derived schema its types, key and NULL / NOT NULL.
Datasets (each loaded twice, rows in opposite orders):

- `one-to-many`: parents with 7, 6, 5, 1 and 0 children, a child with no parent, distinct times;
- `duplicates`: the same, with every row of a keyless table stored twice;
- `nulls`: a NULL in every other nullable column of one row in three (joined and filtered
  columns included). A derived schema cannot know which columns are nullable: it takes
  identifiers (`*_id`, `*_key`), audit times (`created_at`, `updated_at`) and the columns the
  original joins, correlates, groups or partitions by to be NOT NULL (the rewrite's choices do
  not count), and the finding says the schema is derived;
- `ties`: rows in pairs equal in everything but the key (ORDER BY and window ties);
- `boundaries`: times at the edges of the dates the queries name (the last microsecond of the
  month, the first of the next) or at month ends; each edge meets rows that hold the strings the
  queries compare with and rows that do not, and a time before an edge stays before it;
- `1-day-window-edge`, `7-day-...`, `30-day-...`: every time a minute before
  `now() - interval 'N days'` (a cutoff moved to midnight keeps rows the original drops);
- `empty` and `children-empty`: no rows anywhere; parents without children.

Rows are compared as multisets. Order is compared only when the original has a top-level ORDER
BY and its rows come out in the same order whatever the order they were stored in (an ORDER BY
with ties, or without a LIMIT that makes the order matter, leaves the order free: a rewrite may
return the tied rows in any order). A dataset on which the original itself returns different
rows for the two storage orders (LIMIT or ROW_NUMBER over ties) cannot judge a rewrite and is
skipped with a note.

Property ids:

- `same-result` (blocker): equal rows on every dataset. One exception, documented in the
  finding: where the answer states that the result changes on ties (the user's query returns
  every tied row, the rewrite one), the `ties` dataset accepts fewer rows, provided each is a
  row of the original and the rewrite picks the same rows whatever the storage order (a
  tie-breaker, not chance).
- `plan-cost` (reported, never a blocker): PostgreSQL's EXPLAIN total cost of the original and
  of the rewrite (after the answer's CREATE INDEX statements) on 5,000 generated rows per table;
  a failure (not a blocker) when the rewrite costs more. DuckDB estimates rows, not cost: n/a.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..catalog import Catalog, Table, quote, read_catalog
from ..engine import Broken, Rejected, Session, TimedOut
from ..program import Step
from ..properties import Finding, ProbeInput, family
from .index import _fill

PROPERTIES = ("same-result", "plan-cost")
FANOUT = (1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4, 99)  # parent of child i
PARENTS = 5
_EXPLAIN = re.compile(r"^\s*EXPLAIN\b\s*(\([^)]*\)\s*|ANALY[SZ]E\s*|VERBOSE\s*)*", re.I)
_DATE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?")
_MONEY = re.compile(r"(amount|amt|price|cost|total|revenue|fee|tax|discount|balance|salary|"
                    r"payment|spend|margin|_usd|_eur)", re.I)
# identifiers and audit times: NOT NULL in a derived schema (a guess the finding states)
_NOT_NULL = re.compile(r"(_id|_key)$|^id$|^(created|updated|inserted|loaded)_(at|ts|on)$", re.I)
_STATED_TIES = re.compile(
    r"\bties?\b[^.]{0,160}\b(returns?|keeps?|picks?|gives?)\b[^.]{0,40}\b(one|single|exactly)\b"
    r"|\b(minus|fix(es)?|removes?) the (bug|duplicates?)\b|\btied rows?\b[^.]{0,120}\b(one|"
    r"single)\b", re.I)


@family("optimize", properties=PROPERTIES)
def optimize_family(probe: ProbeInput) -> list[Finding]:
    engine = probe.program.engine or "duckdb"
    originals = _queries(probe.prompt_program.steps, engine) if probe.prompt else []
    if not originals:
        why = "the prompt has no query to compare the rewrite with"
        return [Finding.not_applicable(p, why) for p in PROPERTIES]
    candidates = [c for c in _queries(probe.program.steps, engine)
                  if _tables(c.tree) & _tables_all(originals)]
    if not candidates:
        why = "the answer has no query on the original's tables"
        return [Finding.not_applicable(p, why) for p in PROPERTIES]
    session = probe.execution.session
    schema = _schema(probe, session, originals, candidates)
    if isinstance(schema, str):
        return [Finding.not_applicable(p, schema) for p in PROPERTIES]
    pairs, notes = _pairs(originals, candidates, schema)
    if not pairs:
        why = "no query of the answer returns the original's columns: " + "; ".join(notes)
        return [Finding.not_applicable(p, why) for p in PROPERTIES]
    stated = bool(_STATED_TIES.search(probe.answer.prose))
    return [same_result(session, schema, pairs, stated, notes), plan_cost(session, schema, pairs,
                                                                         probe.program)]


# --- the schema -----------------------------------------------------------------------------------


@dataclass
class Schema:
    """The tables the queries read, created in the session, with the key of each."""

    catalog: Catalog
    tables: list[Table]
    keys: dict[str, str]  # table -> its key column
    origin: str  # "the answer's DDL", "the prompt's DDL", "derived from the queries"
    strings: dict[str, list[str]]  # column -> string literals the queries compare it with
    anchors: list[dt.datetime]  # dates the queries name

    def names(self) -> dict[str, object]:
        """{schema: {table: {column: type}}} for sqlglot."""
        out: dict[str, Any] = {}
        for table in self.tables:
            out.setdefault(table.schema, {})[table.name] = {c.name: c.type for c in
                                                            table.columns}
        return out


def _queries(steps: Sequence[Step], engine: str) -> list[Step]:
    """The queries of `steps` (an EXPLAIN prefix dropped) and the queries of their views."""
    out = []
    for step in steps:
        if step.kind == "query":
            out.append(_without_explain(step, engine))
        elif step.statement == "CREATE VIEW" and step.tree is not None:
            out.append(_view_query(step, engine))
    return [s for s in out if s.tree is not None]


def _view_query(step: Step, engine: str) -> Step:
    """The SELECT of a CREATE VIEW, as a query step (run on `engine`)."""
    import sqlglot
    import sqlglot.errors

    dialect = "postgres" if engine == "postgres" else "duckdb"
    try:
        body = sqlglot.parse_one(step.sql, read=dialect).expression
    except sqlglot.errors.SqlglotError:
        body = None
    if body is None:
        return Step(step.index, step.kind, step.sql, step.original, step.where, "SELECT", None,
                    step.note, None)
    return Step(step.index, "query", body.sql(dialect=dialect), step.original,
                f"{step.where} (the view's query)", "SELECT", None, step.note,
                step.tree.expression)


def _without_explain(step: Step, engine: str) -> Step:
    """`step` without an `EXPLAIN (ANALYZE, ...)` prefix: the query it plans."""
    import sqlglot
    import sqlglot.errors

    sql = _EXPLAIN.sub("", step.sql)
    if sql == step.sql:
        return step
    try:
        tree = sqlglot.parse_one(sql, read="postgres" if engine == "postgres" else "duckdb")
    except sqlglot.errors.SqlglotError:
        tree = None
    return Step(step.index, step.kind, sql, step.original, step.where, "SELECT", None,
                step.note, tree)


def _tables(tree: Any) -> set[str]:
    from sqlglot import exp

    ctes = {str(c.alias).lower() for c in tree.find_all(exp.CTE)}
    return {str(t.name).lower() for t in tree.find_all(exp.Table)
            if t.name and t.args.get("db") not in ("information_schema", "pg_catalog")} - ctes


def _tables_all(steps: Sequence[Step]) -> set[str]:
    return set().union(*(_tables(s.tree) for s in steps if s.tree is not None))


def _schema(probe: ProbeInput, session: Session, originals: list[Step], candidates: list[Step]
            ) -> Schema | str:
    """The tables of `steps`, created in `session` from the answer's DDL, the prompt's, or the
    queries' own column references; a string says why none can be."""
    steps = originals + candidates
    wanted = _tables_all(steps)
    catalog = probe.execution.catalog
    origin = "the answer's DDL"
    if not wanted <= set(catalog.tables):
        origin = "the prompt's DDL"
        ddl = [s for s in probe.prompt_program.of_kind("ddl") if s.target in wanted]
        if {s.target for s in ddl} < wanted or not ddl:
            origin = "derived from the queries"
            ddl = []
        try:
            described = _described(probe.prompt, wanted) if not ddl else {}
            if described:
                origin = "derived from the queries and the tables the prompt describes"
            for statement in [s.sql for s in ddl] or _derived_ddl(steps, _matched(originals),
                                                                  described):
                with session.savepoint():
                    session.execute(statement)
        except (Rejected, Broken) as err:
            return f"the schema ({origin}) cannot be created: {_first_line(err)}"
        catalog = read_catalog(session)
    tables = [catalog.tables[n] for n in sorted(wanted) if n in catalog.tables]
    if len(tables) < len(wanted):
        return f"tables {', '.join(sorted(wanted - set(catalog.tables)))} are not created"
    keys = {}
    for table in tables:
        key = table.primary_key[0] if len(table.primary_key) == 1 else _guess_key(
            table.name, (c.name for c in table.columns))
        if key:
            keys[table.name] = key
    strings, anchors = _literals(steps)
    return Schema(catalog, tables, keys, origin, strings, anchors)


def _guess_key(table: str, columns: Iterable[str]) -> str | None:
    """`id`, `<table>_id` or `<last word of table>_id` (singular): the table's own key."""
    names = set(columns)
    singular = table.rstrip("s")
    for name in ("id", f"{singular}_id", f"{singular.split('_')[-1]}_id"):
        if name in names:
            return name
    return None


def _matched(originals: list[Step]) -> set[str]:
    """Columns the original query joins, correlates, groups or partitions by: keys by their
    role, NOT NULL in a derived schema (the rewrite's own choices do not count)."""
    from sqlglot import exp

    out: set[str] = set()
    for step in originals:
        for eq in step.tree.find_all(exp.EQ):
            if isinstance(eq.this, exp.Column) and isinstance(eq.expression, exp.Column):
                out |= {str(eq.this.name).lower(), str(eq.expression.name).lower()}
        for node in step.tree.find_all(exp.Group, exp.Window):
            parts = node.expressions if isinstance(node, exp.Group) else (
                node.args.get("partition_by") or [])
            out |= {str(c.name).lower() for p in parts for c in p.find_all(exp.Column)}
    return out


@dataclass(frozen=True)
class Described:
    """A column as the prompt's prose describes it: `orders (customer_id bigint NULL, ...)`."""

    type: str | None
    nullable: bool | None  # None: not said
    key: bool


_DESCRIBED_TABLE = re.compile(r"`?\b([A-Za-z_][\w.]*)`?\s*\(((?:[^()]|\([^()]*\))*)\)")
_DESCRIBED_TYPE = re.compile(r"^(big|small)?int(eger)?$|^(numeric|decimal)(\(\d+(,\s*\d+)?\))?$|"
                             r"^(text|varchar|boolean|bool|date|timestamptz|uuid|jsonb)$", re.I)


def _described(prompt: str, wanted: set[str]) -> dict[str, dict[str, Described]]:
    """Tables the prompt describes in prose, `name (column type [NULL|NOT NULL|PK], ...)`:
    what it says of each column's type, nullability and key. A column said to be NULL is
    nullable in the derived schema, whatever its name."""
    out: dict[str, dict[str, Described]] = {}
    for match in _DESCRIBED_TABLE.finditer(prompt):
        table = match.group(1).lower().split(".")[-1]
        if table not in wanted or table in out:
            continue
        columns: dict[str, Described] = {}
        for item in re.split(r",(?![^()]*\))", match.group(2)):
            words = item.split()
            if not words or not re.fullmatch(r"[A-Za-z_]\w*", words[0]):
                columns = {}
                break
            rest = " ".join(words[1:])
            typ = next((w for w in (rest.split()[:1]) if _DESCRIBED_TYPE.match(w)), None)
            nullable = (False if re.search(r"\bNOT\s+NULL\b", rest, re.I) else
                        True if re.search(r"\bNULL(ABLE)?\b", rest, re.I) else None)
            key = bool(re.search(r"\b(PK|primary key)\b", rest, re.I))
            columns[words[0].lower()] = Described(typ, nullable, key)
        if columns:
            out[table] = columns
    return out


def _derived_ddl(steps: list[Step], keys: set[str],
                 described: dict[str, dict[str, Described]] | None = None) -> list[str]:
    """CREATE SCHEMA/TABLE statements for the tables and columns the queries mention; `keys`
    (and identifiers, audit times) are NOT NULL, unless the prompt's description of the table
    (`described`) says otherwise."""
    described = described or {}
    from sqlglot import exp

    columns: dict[tuple[str, str], dict[str, str]] = {}
    summed: set[str] = set()
    for step in steps:
        aliases: dict[str, tuple[str, str]] = {}
        ctes = {str(c.alias).lower() for c in step.tree.find_all(exp.CTE)}
        for table in step.tree.find_all(exp.Table):
            name = str(table.name).lower()
            if not name or name in ctes:
                continue
            ident = (str(table.db).lower(), name)
            columns.setdefault(ident, {})
            aliases[str(table.alias_or_name).lower()] = ident
            aliases[name] = ident
        for agg in step.tree.find_all(exp.Sum, exp.Avg):
            summed |= {str(c.name).lower() for c in agg.find_all(exp.Column)}
        physical = [i for i in columns if i[1] in _tables(step.tree)]
        for column in step.tree.find_all(exp.Column):
            name = str(column.name).lower()
            if not name or name == "*":
                continue
            owner = aliases.get(str(column.table).lower()) if column.table else (
                physical[0] if len(physical) == 1 else None)
            if owner is not None:
                columns[owner].setdefault(name, "")
    out = []
    for db in sorted({db for db, _ in columns if db}):
        out.append(f"CREATE SCHEMA IF NOT EXISTS {quote(db)}")
    for (db, name), cols in columns.items():
        said = described.get(name, {})
        key = next((c for c, d in said.items() if d.key and c in cols), None) or _guess_key(
            name, cols)
        defs = []
        for column in cols:
            told = said.get(column)
            typ = (told.type if told is not None and told.type else
                   _type_for(column, column in summed))
            null = " NOT NULL" if column == key or (
                told is not None and told.nullable is False) or (
                (told is None or told.nullable is None)
                and (column in keys or _NOT_NULL.search(column))) else ""
            defs.append(f"{quote(column)} {typ}{null}{' PRIMARY KEY' if column == key else ''}")
        if not defs:
            defs = [f"{name.rstrip('s')}_id BIGINT PRIMARY KEY"]
        qualified = f"{quote(db)}.{quote(name)}" if db else quote(name)
        out.append(f"CREATE TABLE {qualified} ({', '.join(defs)})")
    return out


def _type_for(name: str, summed: bool) -> str:
    if re.search(r"(_id|_key|^id|_count|^qty|quantity|_number|_no)$", name):
        return "BIGINT"
    if re.search(r"(_at|_ts|_time|^ts|timestamp)$", name):
        return "TIMESTAMP WITH TIME ZONE"
    if re.search(r"(_date|^date|_day|_on)$", name):
        return "DATE"
    if _MONEY.search(name) or summed:
        return "NUMERIC(12,2)"
    if name.startswith(("is_", "has_")):
        return "BOOLEAN"
    return "TEXT"


def _literals(steps: list[Step]) -> tuple[dict[str, list[str]], list[dt.datetime]]:
    """String literals each column is compared with, and the dates the queries name."""
    from sqlglot import exp

    strings: dict[str, list[str]] = {}
    anchors: set[dt.datetime] = set()
    for step in steps:
        for literal in step.tree.find_all(exp.Literal):
            if not literal.is_string:
                continue
            match = _DATE.match(str(literal.this))
            if match:
                year, month, day = match.group(1), match.group(2), match.group(3) or "01"
                with contextlib.suppress(ValueError):
                    anchors.add(dt.datetime(int(year), int(month), int(day)))
                continue
            compared = literal.find_ancestor(exp.EQ, exp.NEQ, exp.In, exp.Like)
            column = compared.find(exp.Column) if compared is not None else None
            if column is not None:
                values = strings.setdefault(str(column.name).lower(), [])
                if str(literal.this) not in values:
                    values.append(str(literal.this))
    return strings, sorted(anchors)


# --- datasets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    name: str
    rows: dict[str, list[dict[str, str]]]  # table -> rows of SQL expressions


def _boundaries(anchors: list[dt.datetime]) -> list[dt.datetime]:
    """The last microsecond before each named date, the date itself, and its month's edges."""
    out: list[dt.datetime] = []
    micro = dt.timedelta(microseconds=1)
    for day in anchors or [dt.datetime(2024, 2, 1)]:
        following = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        out += [day - micro, day, following - micro, following]
    return sorted(set(out))


def _time(column_type: str, value: dt.datetime, minutes: int) -> str:
    zone = "+00" if "with time zone" in column_type or column_type == "timestamptz" else ""
    base = f"'{value:%Y-%m-%d %H:%M:%S.%f}{zone}'"
    if column_type == "date":
        return f"CAST({base} AS DATE)"
    # a time just before an edge moves further back, so it stays on its side of the edge
    sign = "-" if value.microsecond == 999999 else "+"
    return f"CAST({base} AS {column_type}) {sign} INTERVAL '{minutes} minutes'"


def _value(schema: Schema, table: Table, column: str, i: int, j: int,
           times: list[dt.datetime]) -> str:
    col = table.column(column)
    assert col is not None
    typ = col.type
    key = schema.keys.get(table.name)
    parents = {k: t for t, k in schema.keys.items() if t != table.name}
    if column == key:
        return str(i + 1) if _is_int(typ) else f"'{column}_{i + 1}'"
    if _is_int(typ) and (column in parents or column.endswith("_id")):
        return str(FANOUT[i % len(FANOUT)])
    if col.is_timestamp or typ == "date":
        return _time(typ, times[(i + j) % len(times)], i // len(times))
    if _is_int(typ):
        return str(i % 4 + 1)
    if typ.startswith(("numeric", "decimal", "double", "real", "float")):
        return f"{(i * 7) % 13 + 1}.50"
    if typ in ("boolean", "bool"):
        return "TRUE" if i % 2 == 0 else "FALSE"
    options = schema.strings.get(column, [])
    # the choice turns with each round of the times as well, so every time (an edge of a
    # named date) meets rows that hold each compared string and rows that hold none
    pick = (i + i // len(times)) % (len(options) + 1) if times else i % (len(options) + 1)
    if options and pick < len(options):
        return "'" + options[pick].replace("'", "''") + "'"
    return f"CAST('{column}_{i}' AS {typ})" if typ not in ("text", "varchar") else \
        f"'{column}_{i}'"


def _is_int(typ: str) -> bool:
    return bool(re.match(r"(big|small|tiny|huge)?int|integer", typ))


def _base(schema: Schema, times: list[dt.datetime]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for table in schema.tables:
        keyed = table.name in schema.keys and not any(
            c.name in {k for t, k in schema.keys.items() if t != table.name}
            for c in table.columns if c.name != schema.keys[table.name])
        count = PARENTS if keyed and len(schema.tables) > 1 else len(FANOUT)
        out[table.name] = [{c.name: _value(schema, table, c.name, i, j, times)
                            for j, c in enumerate(table.columns) if not c.generated}
                           for i in range(count)]
    return out


def datasets(schema: Schema) -> list[Dataset]:
    bounds = _boundaries(schema.anchors)
    # days before now for `now() - interval` filters: the clock is read once, so both storage
    # orders hold the same rows
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)
    times = [*bounds, *(now - dt.timedelta(days=d) for d in (1, 29, 31, 400)),
             dt.datetime(2024, 2, 29, 12)]
    base = _base(schema, times)
    out = [Dataset("one-to-many", base)]
    doubled = {t: rows * 2 if t not in schema.keys else rows for t, rows in base.items()}
    out.append(Dataset("duplicates", doubled))
    nulls: dict[str, list[dict[str, str]]] = {}
    for table in schema.tables:
        nullable = [c.name for c in table.columns if c.nullable and not c.generated
                    and c.name != schema.keys.get(table.name)]
        nulls[table.name] = [
            {c: "NULL" if i % 3 == 1 and c in nullable[i % 2::2] else v for c, v in row.items()}
            for i, row in enumerate(base[table.name])]
    out.append(Dataset("nulls", nulls))
    ties: dict[str, list[dict[str, str]]] = {}
    for table in schema.tables:
        key = schema.keys.get(table.name)
        ties[table.name] = [{c: (v if c == key or i % 2 == 0 else base[table.name][i - 1][c])
                             for c, v in row.items()} for i, row in enumerate(base[table.name])]
    out.append(Dataset("ties", ties))
    out.append(Dataset("boundaries", _base(schema, bounds)))
    # every time a minute before `now() - interval 'N days'` for common windows: a rewrite that
    # moves the cutoff to midnight (`current_date - N`) keeps rows the original drops
    for days in (1, 7, 30):
        edge = now - dt.timedelta(days=days, minutes=1)
        out.append(Dataset(f"{days}-day-window-edge", _base(schema, [edge])))
    out.append(Dataset("empty", {t.name: [] for t in schema.tables}))
    if schema.keys and len(schema.tables) > 1:
        out.append(Dataset("children-empty", {t: rows if len(rows) == PARENTS else []
                                              for t, rows in base.items()}))
    return out


def _load(session: Session, schema: Schema, data: Dataset, reverse: bool) -> None:
    with session.savepoint():
        for table in reversed(schema.tables):
            session.execute(f"DELETE FROM {table.qualified}")
        for table in schema.tables:
            rows = data.rows.get(table.name) or []
            if reverse:
                rows = rows[::-1]
            if rows:
                names = list(rows[0])
                values = ", ".join("(" + ", ".join(r[c] for c in names) + ")" for r in rows)
                session.execute(f"INSERT INTO {table.qualified} "
                                f"({', '.join(quote(c) for c in names)}) VALUES {values}")


# --- comparing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    original: Step
    rewrite: Step
    sql: str  # the rewrite without an EXPLAIN prefix
    pick: tuple[int, ...] | None  # original columns in the rewrite's order (None: as is)


def _output(sql: str, dialect: str, schema: Schema) -> list[str] | None:
    import sqlglot
    from sqlglot.optimizer.qualify import qualify

    try:
        tree: Any = qualify(sqlglot.parse_one(sql, read=dialect), schema=schema.names(),
                            dialect=dialect, validate_qualify_columns=False,
                            quote_identifiers=False)
        return [str(n).lower() for n in tree.named_selects]
    except Exception:  # sqlglot raises many kinds; the rows are compared by position then
        return None


def _pairs(originals: list[Step], candidates: list[Step], schema: Schema
           ) -> tuple[list[Pair], list[str]]:
    dialect = "postgres" if schema.catalog.engine == "postgres" else "duckdb"
    pairs: list[Pair] = []
    notes: list[str] = []
    for step in candidates:
        sql = step.sql
        rewrite_cols = _output(sql, dialect, schema)
        for original in originals:
            if not _tables(original.tree) & _tables(step.tree):
                continue
            if " ".join(sql.split()).lower() == " ".join(original.sql.split()).lower():
                break
            cols = _output(original.sql, dialect, schema)
            pick = _align(cols, rewrite_cols)
            if pick is not None:
                pairs.append(Pair(original, step, sql, pick or None))
                break
            notes.append(f"{step.where} returns {', '.join(rewrite_cols or ['?'])}, the "
                         f"original {', '.join(cols or ['?'])}: not a rewrite of it")
    return pairs, notes


def _align(original: list[str] | None, rewrite: list[str] | None) -> tuple[int, ...] | None:
    """Indexes of the original's columns in the rewrite's order; () when compared as is;
    None when the rewrite returns other columns."""
    if original is None or rewrite is None:
        return () if original is None and rewrite is None else None
    if original == rewrite:
        return ()
    if len(set(rewrite)) == len(rewrite) and set(rewrite) <= set(original):
        return tuple(original.index(c) for c in rewrite)
    if len(original) == len(rewrite):
        return ()
    return None


def _norm(value: object) -> object:
    if isinstance(value, decimal.Decimal | float) and not isinstance(value, bool):
        return str(decimal.Decimal(str(value)).normalize())
    if isinstance(value, int) and not isinstance(value, bool):
        return str(decimal.Decimal(value).normalize())
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC) if value.tzinfo else value).isoformat()
    return value if value is None or isinstance(value, bool | str) else str(value)


def _run(session: Session, sql: str, pick: tuple[int, ...] | None = None
         ) -> list[tuple[object, ...]] | str:
    try:
        with session.savepoint(undo=True):
            found = session.execute(sql) or []
    except TimedOut:
        raise
    except (Rejected, Broken) as err:
        return _first_line(err)
    rows = [tuple(_norm(v) for v in row) for row in found]
    return [tuple(row[i] for i in pick) for row in rows] if pick else rows


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _bag(rows: list[tuple[object, ...]]) -> Counter[str]:
    return Counter(repr(r) for r in rows)


def _show(row: str) -> str:
    return row if len(row) <= 160 else row[:157] + "..."


def _difference(original: list[tuple[object, ...]], rewrite: list[tuple[object, ...]]) -> str:
    a, b = _bag(original), _bag(rewrite)
    missing, extra = a - b, b - a
    if missing:
        row = next(iter(missing))
        return (f"the original returns {len(original)} row(s), the rewrite {len(rewrite)}; "
                f"{_show(row)} appears {a[row]} time(s) in the original, {b[row]} in the "
                "rewrite")
    if extra:
        row = next(iter(extra))
        return (f"the original returns {len(original)} row(s), the rewrite {len(rewrite)}; "
                f"{_show(row)} appears {a[row]} time(s) in the original, {b[row]} in the "
                "rewrite")
    first = next(i for i, (x, y) in enumerate(zip(original, rewrite, strict=True)) if x != y)
    return (f"same rows in another order: row {first + 1} is {_show(repr(rewrite[first]))}, "
            f"the original's {_show(repr(original[first]))}")


def same_result(session: Session, schema: Schema, pairs: list[Pair], stated_ties: bool,
                notes: list[str]) -> Finding:
    prop = "same-result"
    skipped: list[str] = []
    accepted: list[str] = []
    compared = 0
    for data in datasets(schema):
        results: dict[bool, dict[str, Any]] = {}
        try:
            for reverse in (False, True):
                _load(session, schema, data, reverse)
                results[reverse] = {"original": {}, "rewrite": {}}
                for n, pair in enumerate(pairs):
                    results[reverse]["original"][n] = _run(session, pair.original.sql,
                                                           pair.pick)
                    results[reverse]["rewrite"][n] = _run(session, pair.sql)
        except (Rejected, Broken) as err:
            skipped.append(f"{data.name} (the schema refuses its rows: {_first_line(err)})")
            continue
        for n, pair in enumerate(pairs):
            first, second = results[False]["original"][n], results[True]["original"][n]
            if isinstance(first, str) or isinstance(second, str):
                error = first if isinstance(first, str) else second
                return Finding.not_applicable(prop, f"the original query does not run on the "
                                              f"schema {schema.origin}: {error}")
            if _bag(first) != _bag(second):
                skipped.append(f"{data.name} (the original's rows depend on the storage order)")
                continue
            ordered = pair.original.tree.args.get("order") is not None and first == second
            verdict = _compare(data.name, pair, first, second, results, n, ordered,
                               stated_ties)
            if verdict.startswith("accepted"):
                accepted.append(verdict.removeprefix("accepted: "))
            elif verdict:
                return Finding.failed(prop, verdict + _origin_note(schema))
            compared += 1
    if not compared:
        return Finding.not_applicable(prop, "no dataset could judge the rewrite: "
                                      + "; ".join(skipped))
    names = ", ".join(p.rewrite.where for p in pairs)
    detail = (f"{names}: the same rows as the original on {compared // len(pairs)} dataset(s)"
              f"{_origin_note(schema)}")
    if accepted:
        detail += "; " + "; ".join(accepted)
    if skipped:
        detail += "; not compared: " + ", ".join(skipped)
    if notes:
        detail += "; " + "; ".join(notes)
    return Finding.passed(prop, detail)


def _origin_note(schema: Schema) -> str:
    return f" (schema {schema.origin})"


def _compare(name: str, pair: Pair, first: list[tuple[object, ...]],
             second: list[tuple[object, ...]], results: dict[bool, dict[str, Any]], n: int,
             ordered: bool, stated_ties: bool) -> str:
    """'' when the rewrite matches on dataset `name`, 'accepted: ...' for a stated tie
    difference, else why not."""
    mine = [results[False]["rewrite"][n], results[True]["rewrite"][n]]
    for got in mine:
        if isinstance(got, str):
            return f"dataset {name}: {pair.rewrite.where} does not run: {got}"
    where = f"dataset {name}: {pair.rewrite.where}"
    for original, rewrite in ((first, mine[0]), (second, mine[1])):
        same = original == rewrite if ordered else _bag(original) == _bag(rewrite)
        if same:
            continue
        subset = not (_bag(rewrite) - _bag(original))
        if name == "ties" and stated_ties and subset and _bag(mine[0]) == _bag(mine[1]):
            return (f"accepted: on ties {pair.rewrite.where} keeps {len(rewrite)} of the "
                    f"original's {len(original)} rows, as the answer states")
        if name == "ties" and stated_ties and subset:
            return (f"{where} picks different tied rows depending on the order rows were "
                    "stored (no tie-breaker)")
        return f"{where}: {_difference(original, rewrite)}"
    return ""


# --- plan cost ------------------------------------------------------------------------------------


def _cost(session: Session, sql: str) -> float | None:
    try:
        with session.savepoint():
            found = session.execute(f"EXPLAIN (FORMAT JSON) {sql}") or []
    except (Rejected, Broken):
        return None
    plan = found[0][0] if found else None
    if isinstance(plan, str):
        plan = json.loads(plan)
    try:
        return float(plan[0]["Plan"]["Total Cost"])  # type: ignore[index]
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def plan_cost(session: Session, schema: Schema, pairs: list[Pair], program: Any) -> Finding:
    prop = "plan-cost"
    if session.engine != "postgres":
        return Finding.not_applicable(prop, "DuckDB's EXPLAIN estimates rows, not a cost: "
                                      "plan cost not compared")
    tables = {t.name for t in schema.tables}
    indexes = [s for s in program.steps if s.statement == "CREATE INDEX" and s.target in tables]
    with session.savepoint(undo=True):
        for table in reversed(schema.tables):
            session.execute(f"DELETE FROM {table.qualified}")
        for table in schema.tables:
            _fill(session, schema.catalog, table)
        pair = pairs[0]
        before = _cost(session, pair.original.sql)
        made = 0
        for step in indexes:
            try:
                with session.savepoint():
                    session.execute(re.sub(r"\bCONCURRENTLY\b", "", step.sql, flags=re.I))
                made += 1
            except (Rejected, Broken):
                continue
        for table in schema.tables:
            session.execute(f"ANALYZE {table.qualified}")
        after = _cost(session, pair.sql)
    if before is None or after is None:
        return Finding.not_applicable(prop, "a plan could not be read")
    detail = (f"EXPLAIN total cost {before:,.0f} before, {after:,.0f} after ({pair.rewrite.where}"
              f", {made} index(es) of the answer, 5,000 generated rows per table)")
    if after > before:
        return Finding.failed(prop, detail, blocker=False)
    return Finding.passed(prop, detail)
