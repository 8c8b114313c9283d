"""`partition`: the partitioned table's keys include the partition key, rows at the edges of its
ranges land where they belong, a row past the last range is stored, a filter on the key reads one
partition, and the answer's own maintenance runs.

Declarative partitioning is PostgreSQL's: DuckDB has none, and a Snowflake or BigQuery answer's
partitioning and clustering clauses are storage-only (dropped in translation), so there every
property is n/a. That the DDL runs at all (PostgreSQL refuses a primary key without the
partition column) is the `executes` check.

Property ids:

- `unique-includes-key`: every primary and unique key of a partitioned table includes its
  partition columns (PostgreSQL refuses the DDL otherwise, in its own words).
- `out-of-range-stored`: a row at the last range's upper bound is stored: in a DEFAULT
  partition, or after the answer's own maintenance creates the next partition. Partitions
  created ahead by a job the answer only describes (pg_partman, cron) are n/a, not executed.
- `boundary-dates`: the last instant before each range's upper bound (`- 1 microsecond`, a day
  for dates) lands in that range's partition; a month that ends a day early leaves it nowhere.
- `pruning`: EXPLAIN of a filter spanning one partition's range (or one list value) reads that
  partition alone.
- `maintenance-runs`: the answer's retention and create-ahead statements (DETACH / DROP of a
  partition, DELETE by age, calls of the functions it defines) run after the setup.
"""

from __future__ import annotations

import re
from itertools import pairwise

from ..catalog import Catalog, Column, Partition, Table, quote
from ..engine import Broken, Rejected, Session
from ..program import Step
from ..properties import Finding, ProbeInput, family
from ..run import MISSING_RELATION
from ..synth import insert_sql, populate, rows
from .schema import _with_parents

PROPERTIES = ("unique-includes-key", "out-of-range-stored", "boundary-dates", "pruning",
              "maintenance-runs")
_RANGE = re.compile(r"FROM \((.*)\) TO \((.*)\)$", re.S)
_LIST = re.compile(r"IN \((.*)\)$", re.S)
_AHEAD = re.compile(r"pg_partman|premake|(creat\w*|add\w*|make\w*)\b[^.]{0,60}\b(ahead|in advance|"
                    r"next|future|upcoming)|(ahead|in advance)\b[^.]{0,40}\bcreat", re.I)
_FUNCTION = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\s+([\w.\"]+)",
                       re.I)


@family("partition", properties=PROPERTIES)
def partition_family(probe: ProbeInput) -> list[Finding]:
    catalog = probe.execution.catalog
    if probe.execution.session.engine != "postgres":
        why = (f"partitioning in {probe.program.dialect} is storage-only: nothing to execute")
        raw_time = _raw_timestamp_cluster_key(probe) if probe.program.dialect == "snowflake" \
            else None
        return [raw_time if raw_time and p == "pruning" else Finding.not_applicable(p, why)
                for p in PROPERTIES]
    parents = [t for t in catalog.tables.values() if t.partitioning is not None]
    if not parents:
        return [Finding.failed(p, "the answer's setup creates no partitioned table")
                for p in PROPERTIES]
    return [unique_includes_key(parents), out_of_range_stored(probe, parents),
            boundary_dates(probe, parents), pruning(probe, parents), maintenance_runs(probe)]


_TIME_NAME = re.compile(r"(_ts|_at|_time|timestamp|_datetime)$", re.I)


def _raw_timestamp_cluster_key(probe: ProbeInput) -> Finding | None:
    """A Snowflake clustering key that leads with a bare timestamp: its values are nearly
    unique, so reclustering never settles and costs credits for no better pruning than the date
    (`TO_DATE(event_ts)`) would give. None when no key leads with one."""
    from sqlglot import exp

    from ...scorers.sql import statements

    trees = [tree for _, tree in statements(probe.answer, "snowflake")]
    kinds = [(c.name.lower(), c.args.get("kind")) for tree in trees
             for c in tree.find_all(exp.ColumnDef)]
    times = {name for name, kind in kinds if isinstance(kind, exp.DataType)
             and kind.is_type(*exp.DataType.TEMPORAL_TYPES)
             and not kind.is_type(exp.DataType.Type.DATE)}
    for tree in trees:
        for key in tree.find_all(exp.ClusterProperty, exp.Cluster):
            lead = key.expressions[0] if key.expressions else None
            if isinstance(lead, exp.Column) and (lead.name.lower() in times
                                                 or _TIME_NAME.search(lead.name)):
                return Finding.failed("pruning", f"the clustering key leads with the raw "
                                      f"timestamp {lead.name}: nearly unique values keep "
                                      f"reclustering busy; cluster on its date "
                                      f"(TO_DATE({lead.name}))")
    return None


def unique_includes_key(parents: list[Table]) -> Finding:
    prop = "unique-includes-key"
    checked = 0
    for table in parents:
        assert table.partitioning is not None
        key = set(table.partitioning.key)
        for unique in (table.primary_key, *table.uniques):
            if not unique:
                continue
            checked += 1
            if not key <= set(unique):
                return Finding.failed(prop, f"{table.name}: key ({', '.join(unique)}) lacks "
                                      f"the partition column(s) {', '.join(sorted(key))}")
    if not checked:
        return Finding.not_applicable(prop, "no primary or unique key on a partitioned table")
    return Finding.passed(prop, f"{checked} key(s) include the partition column(s)")


# --- rows at chosen key values --------------------------------------------------------------------


def _key_column(table: Table) -> Column | None:
    assert table.partitioning is not None
    key = table.partitioning.key
    return table.column(key[0]) if len(key) == 1 else None


def _ranges(table: Table) -> list[tuple[Partition, str, str]]:
    """(partition, lower, upper) of each range partition, bounds as SQL literals, by lower."""
    out = []
    assert table.partitioning is not None
    for part in table.partitioning.partitions:
        match = _RANGE.search(part.bound)
        if match and "MINVALUE" not in match.group(1) and "MAXVALUE" not in match.group(2):
            out.append((part, match.group(1), match.group(2)))
    return out


def _typed(column: Column, value: str) -> str:
    return f"CAST({value} AS {column.type})"


def _before(column: Column, value: str) -> str:
    """The last value before `value` in `column`'s type."""
    if column.is_timestamp:
        return f"({_typed(column, value)} - INTERVAL '1 microsecond')"
    if column.type == "date":
        return f"CAST({_typed(column, value)} - 1 AS date)"
    if column.exact_numeric and "numeric" not in column.type:
        return f"({_typed(column, value)} - 1)"
    return _typed(column, value)


def _store_at(session: Session, catalog: Catalog, table: Table, column: Column, value: str,
              n: int) -> str | None:
    """Insert one synthetic row whose partition key is `value` (an SQL expression); the name of
    the partition that holds it, or None when the engine refuses it. Undone afterwards."""
    with session.savepoint(undo=True):
        stored = populate(session, catalog, 1, [t for t in _with_parents(catalog, table)
                                                if t.name != table.name])
        row = rows(table, 1, stored, start=100 + n)[0]
        row[column.name] = value
        try:
            with session.savepoint():
                session.execute(insert_sql(table, [row]))
        except Rejected:
            return None
        found = session.execute(
            f"SELECT tableoid::regclass::text FROM {table.qualified} "
            f"WHERE {quote(column.name)} = {value}") or []
        return str(found[0][0]).split(".")[-1] if found else None


def out_of_range_stored(probe: ProbeInput, parents: list[Table]) -> Finding:
    prop = "out-of-range-stored"
    execution = probe.execution
    session = execution.session
    tried = 0
    for table in parents:
        column = _key_column(table)
        ranges = _ranges(table)
        if column is None or not ranges:
            continue
        tried += 1
        last = max(ranges, key=lambda r: _sortable(session, column, r[2]))
        where = _store_at(session, execution.catalog, table, column, _typed(column, last[2]), 1)
        if where is not None:
            continue
        ahead = _creates_ahead(probe, table)
        if ahead is not None:
            return ahead
        if _AHEAD.search(probe.answer.text):
            return Finding.not_applicable(prop, f"{table.name}: no DEFAULT partition; the answer "
                                          "creates partitions ahead outside its SQL (not "
                                          "executed)")
        return Finding.failed(prop, f"{table.name}: a row at {last[2]} (the end of the last "
                              "range) is refused: no DEFAULT partition and nothing creates the "
                              "next one")
    if not tried:
        return Finding.not_applicable(prop, "no range partitions on a single column")
    return Finding.passed(prop, "a row past the last range is stored (DEFAULT partition)")


def _sortable(session: Session, column: Column, value: str) -> str:
    found = session.execute(f"SELECT {_typed(column, value)}::text") or [("",)]
    return str(found[0][0])


def _creates_ahead(probe: ProbeInput, table: Table) -> Finding | None:
    """Run the answer's maintenance on a fresh database; a pass when it creates a partition of
    `table` that stores a row, None when it creates none."""
    prop = "out-of-range-stored"
    steps = _maintenance(probe)
    if not steps:
        return None
    with probe.fresh() as execution:
        session = execution.session
        for step in steps:
            try:
                with session.savepoint():
                    session.execute(step.sql)
            except (Rejected, Broken):
                return None
        from ..catalog import read_catalog

        after = read_catalog(session).table(table.name)
        before = {p.name for p in (table.partitioning.partitions if table.partitioning else ())}
        if after is None or after.partitioning is None:
            return None
        new = [(p, lo, hi) for p, lo, hi in _ranges(after) if p.name not in before]
        column = _key_column(after)
        if not new or column is None:
            return None
        where = _store_at(session, execution.catalog, after, column,
                          _typed(column, new[0][1]), 2)
        if where is None:
            return Finding.failed(prop, f"the answer's maintenance created {new[0][0].name}, "
                                  "which still refuses a row at its lower bound")
        return Finding.passed(prop, f"the answer's maintenance creates the next partition "
                              f"({where}) ahead of the data")


# --- boundaries -----------------------------------------------------------------------------------

_MONTH_START = re.compile(r"'\d{4}-\d{2}-01(?:[ T]00:00(?::00)?(?:\.0+)?)?"
                          r"(?:[+-]\d{2}(?::?\d{2})?)?'")


def boundary_dates(probe: ProbeInput, parents: list[Table]) -> Finding:
    """The last instant before each range's upper bound lands in that range's partition."""
    prop = "boundary-dates"
    execution = probe.execution
    session = execution.session
    checked = 0
    for table in parents:
        column = _key_column(table)
        ranges = _ranges(table)
        if column is None or not ranges:
            continue
        for n, (part, lower, upper) in enumerate(ranges):
            if (column.is_timestamp or column.type == "date") and _MONTH_START.fullmatch(
                    lower.strip()) and not _MONTH_START.fullmatch(upper.strip()) and _spans_month(
                    session, column, lower, upper):
                edge = _first_line(session, column, lower)
                return Finding.failed(prop, f"{part.name} starts on a month's first day but "
                                      f"ends at {upper}: the month's last day ({edge}) is not "
                                      "in it")
            last = _before(column, upper)
            where = _store_at(session, execution.catalog, table, column, last, 10 + n)
            checked += 1
            if where != part.name:
                shown = _first_line(session, column, last)
                lands = f"lands in {where}" if where else "is refused: no partition holds it"
                return Finding.failed(prop, f"a row at {shown}, the last instant of "
                                      f"{part.name}, {lands}")
        gap = _gap(session, execution.catalog, table, column, ranges)
        if gap:
            return Finding.failed(prop, gap)
    if not checked:
        return Finding.not_applicable(prop, "no range partitions on a single column")
    return Finding.passed(prop, f"the last instant of each of {checked} range(s) lands in its "
                          "partition, and the ranges leave no gap")


def _spans_month(session: Session, column: Column, lower: str, upper: str) -> bool:
    """Whether a range reaches past four weeks (a month's partition, not a day's or a week's)."""
    found = session.execute(f"SELECT CAST({_typed(column, upper)} AS timestamptz) - "
                            f"CAST({_typed(column, lower)} AS timestamptz) > INTERVAL '27 days'")
    return bool(found and found[0][0])


def _gap(session: Session, catalog: Catalog, table: Table, column: Column,
         ranges: list[tuple[Partition, str, str]]) -> str | None:
    """Why a row between two consecutive ranges lands in neither, or None."""
    ordered = sorted(ranges, key=lambda r: _sortable(session, column, r[1]))
    for (part, _, upper), (following, lower, _) in pairwise(ordered):
        same = session.execute(f"SELECT {_typed(column, upper)} = {_typed(column, lower)}")
        if same and same[0][0]:
            continue
        last = _before(column, lower)
        where = _store_at(session, catalog, table, column, last, 50)
        shown = _first_line(session, column, last)
        lands = f"lands in {where}" if where else "is refused"
        return (f"{part.name} ends at {upper} but {following.name} starts at {lower}: a row at "
                f"{shown}, the last instant before {following.name}, {lands}")
    return None


def _first_line(session: Session, column: Column, value: str) -> str:
    """How the engine prints the end of the month that starts at `value` (or `value`)."""
    expr = value if value.startswith(("(", "CAST")) else (
        f"(date_trunc('month', {_typed(column, value)}) + INTERVAL '1 month' "
        "- INTERVAL '1 microsecond')" if column.is_timestamp or column.type == "date"
        else value)
    found = session.execute(f"SELECT ({expr})::text") or [("?",)]
    return str(found[0][0])


# --- pruning --------------------------------------------------------------------------------------


def pruning(probe: ProbeInput, parents: list[Table]) -> Finding:
    prop = "pruning"
    session = probe.execution.session
    checked = 0
    for table in parents:
        assert table.partitioning is not None
        column = _key_column(table)
        if column is None:
            continue
        filter_ = _one_partition_filter(table, column)
        if filter_ is None:
            continue
        target, where = filter_
        with session.savepoint(undo=True):
            session.execute(f"ANALYZE {table.qualified}")
            plan = session.execute(f"EXPLAIN SELECT * FROM {table.qualified} WHERE {where}") or []
        text = "\n".join(str(r[0]) for r in plan)
        read = sorted({p.name for p in table.partitioning.partitions
                       if re.search(rf"\bon {re.escape(p.name)}\b", text)})
        checked += 1
        if read != [target]:
            return Finding.failed(prop, f"a filter on {column.name} for {target} alone reads "
                                  f"{len(read)} partition(s): {', '.join(read) or 'none'}")
    if not checked:
        return Finding.not_applicable(prop, "no partition to filter to")
    asked = _prompt_queries_filter_key(probe, parents)
    if asked is not None:
        return asked
    own = _own_queries_prune(probe, parents)
    if own is not None and own.status == "fail":
        return own
    also = f"; {own.detail}" if own is not None else ""
    return Finding.passed(prop, f"a filter on the key reads one partition ({checked} "
                          f"table(s)){also}")


_EXPLAIN = re.compile(r"^\s*EXPLAIN\b\s*(\([^)]*\)\s*|(ANALY[SZ]E|VERBOSE|COSTS|BUFFERS)\b\s*)*",
                      re.I)


def _own_queries_prune(probe: ProbeInput, parents: list[Table]) -> Finding | None:
    """EXPLAIN the answer's own filtered queries on a partitioned table: each must read fewer
    than all its partitions (a key the queries do not filter on prunes nothing)."""
    import sqlglot
    import sqlglot.errors
    from sqlglot import exp

    prop = "pruning"
    by_name = {t.name: t for t in parents}
    session = probe.execution.session
    shown = 0
    for step in probe.program.of_kind("query"):
        query = _EXPLAIN.sub("", step.sql, count=1)
        try:
            tree = sqlglot.parse_one(query, read="postgres")
        except sqlglot.errors.SqlglotError:
            continue
        if tree is None or tree.find(exp.Where) is None:
            continue
        tables = [by_name[str(t.name).lower()] for t in tree.find_all(exp.Table)
                  if str(t.name).lower() in by_name]
        if not tables:
            continue
        try:
            with session.savepoint(undo=True):
                plan = session.execute("EXPLAIN " + query) or []
        except (Rejected, Broken):
            continue  # a query with parameters or on other objects: not this probe's concern
        text = "\n".join(str(r[0]) for r in plan)
        for table in tables:
            assert table.partitioning is not None
            names = [p.name for p in table.partitioning.partitions]
            read = [n for n in names if re.search(rf"\bon {re.escape(n)}\b", text)]
            if len(names) > 1 and len(read) == len(names):
                return Finding.failed(prop, f"the answer's query ({step.where}) reads all "
                                      f"{len(names)} partitions of {table.name}: its filter "
                                      "is not on the partition key")
            shown += 1
    if not shown:
        return None
    return Finding.passed(prop, f"the answer's {shown} filtered query(ies) prune")


_INLINE_SQL = re.compile(r"`((?:SELECT|WITH)\b[^`]+)`", re.I)


def _prompt_queries_filter_key(probe: ProbeInput, parents: list[Table]) -> Finding | None:
    """The queries the user pasted must filter on the partition key of the table they read,
    or no partition is ever skipped for them; a failure naming the columns they filter on."""
    import sqlglot
    import sqlglot.errors
    from sqlglot import exp

    if not probe.prompt:
        return None
    texts = [s.sql for s in probe.prompt_program.of_kind("query")]
    texts += [m.group(1) for m in _INLINE_SQL.finditer(probe.prompt)]
    by_name = {t.name: t for t in parents}
    for sql in texts:
        try:
            tree = sqlglot.parse_one(_EXPLAIN.sub("", sql, count=1).replace("...", "*"),
                                     read="postgres")  # `SELECT ... FROM`: the list elided
        except sqlglot.errors.SqlglotError:
            continue
        where = tree.find(exp.Where) if tree is not None else None
        if where is None:
            continue
        filtered = {str(c.name).lower() for c in where.find_all(exp.Column)}
        for node in tree.find_all(exp.Table):
            table = by_name.get(str(node.name).lower())
            if table is None or table.partitioning is None:
                continue
            key = {k.lower() for k in table.partitioning.key}
            if filtered and not key & filtered and filtered & {c.name for c in table.columns}:
                return Finding.failed("pruning", f"{table.name} is partitioned on "
                                      f"{', '.join(sorted(key))}, but the user's query filters "
                                      f"on {', '.join(sorted(filtered))}: it reads every "
                                      "partition")
    return None


def _one_partition_filter(table: Table, column: Column) -> tuple[str, str] | None:
    """(partition, WHERE clause selecting exactly its range or list values)."""
    name = quote(column.name)
    ranges = _ranges(table)
    if ranges:
        part, lower, upper = ranges[0]
        return part.name, (f"{name} >= {_typed(column, lower)} AND "
                           f"{name} < {_typed(column, upper)}")
    assert table.partitioning is not None
    for part in table.partitioning.partitions:
        match = _LIST.search(part.bound)
        if match:
            return part.name, f"{name} IN ({match.group(1)})"
    return None


# --- the answer's own maintenance -----------------------------------------------------------------


def _maintenance(probe: ProbeInput) -> list[Step]:
    """The answer's retention and create-ahead statements: maintenance steps, and queries or
    CALLs that invoke a function or procedure the answer defines."""
    functions = {m.group(1).replace('"', "").split(".")[-1].lower()
                 for s in probe.program.of_kind("ddl") for m in _FUNCTION.finditer(s.sql)}
    out = []
    for step in probe.program.steps:
        if step.kind == "maintenance" or (step.kind in ("query", "skip") and functions and any(
                re.search(rf"\b{re.escape(f)}\s*\(", step.sql, re.I) for f in functions)):
            out.append(step)
    return out


def maintenance_runs(probe: ProbeInput) -> Finding:
    prop = "maintenance-runs"
    steps = _maintenance(probe)
    if not steps:
        return Finding.not_applicable(prop, "no maintenance statement in the answer's SQL")
    session = probe.execution.session
    illustrative: list[str] = []
    with session.savepoint(undo=True):
        for step in steps:
            try:
                with session.savepoint():
                    session.execute(step.sql)
            except (Rejected, Broken) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else "refused"
                missing = MISSING_RELATION.search(first)
                if missing and missing.group(1).split(".")[-1].lower() not in {
                        name.split(".")[-1] for name in probe.program.created}:
                    illustrative.append(f"{step.where} ({missing.group(1)})")
                    continue
                return Finding.failed(prop, f"{step.where} does not run: {first}")
    ran = len(steps) - len(illustrative)
    also = (f"; reported, not run: {', '.join(illustrative)} names a partition the answer "
            "never creates (an illustration)" if illustrative else "")
    if not ran:
        return Finding.not_applicable(prop, "the maintenance statements act only on partitions "
                                            f"the answer never creates{also}")
    return Finding.passed(prop, f"{ran} maintenance statement(s) ran{also}")

