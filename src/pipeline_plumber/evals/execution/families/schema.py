"""`schema`: every table has a primary key that holds, key columns are NOT NULL, money is exact,
event times are time-zone aware, foreign keys resolve and reject orphans, and SCD2 change
statements leave one current row per natural key."""

from __future__ import annotations

import re

from ..catalog import Catalog, Table
from ..engine import Rejected, Session
from ..program import Step
from ..properties import Finding, ProbeInput, family
from ..run import Execution
from ..synth import Row, insert_sql, orphan, populate, rows

PROPERTIES = ("primary-keys", "keys-not-null", "exact-money", "tz-aware",
              "foreign-keys-resolve", "scd2-one-current")
_EVENT_TIME = re.compile(r"(_at$|_ts$|_time$|^ts$|timestamp|occurred|received|created|updated|"
                         r"placed|ordered|event)", re.I)
_CURRENT_FLAG = re.compile(r"^(is_)?(current|active|latest)(_flag|_row|_version)?$", re.I)
_KEYISH = re.compile(r"(_id|_key|_code|_number|_no|sku|_nk|_bk)$", re.I)
_VALID_TO = re.compile(r"^(valid|effective|eff|row)_(to|until|end)(_\w+)?$|^end_(date|ts|at)$",
                       re.I)


@family("schema", properties=PROPERTIES)
def schema_family(probe: ProbeInput) -> list[Finding]:
    execution = probe.execution
    catalog = execution.catalog
    if not catalog.tables:
        return [Finding.failed(p, "the answer's setup creates no table") for p in PROPERTIES]
    return [primary_keys(execution), keys_not_null(catalog), exact_money(catalog),
            tz_aware(catalog), foreign_keys_resolve(execution), scd2_one_current(probe)]


def primary_keys(execution: Execution) -> Finding:
    """Every table has a primary key, and a second row with the same key is refused."""
    catalog = execution.catalog
    missing = [t.name for t in catalog.tables.values() if not t.primary_key]
    if missing:
        return Finding.failed("primary-keys", f"no primary key on {', '.join(missing)}")
    session = execution.session
    for table in catalog.tables_in_fk_order():
        with session.savepoint(undo=True):
            stored = populate(session, catalog, 1, _with_parents(catalog, table))
            first = stored.get(table.name)
            if not first or any(c not in first[0] for c in table.primary_key):
                continue  # no row stored, or the engine generates the key
            try:
                with session.savepoint():
                    session.execute(insert_sql(table, [_same_key(table, first[0])]))
            except Rejected:
                continue
            return Finding.failed("primary-keys", f"{table.name} stored a second row with "
                                  f"the same {', '.join(table.primary_key)}")
    return Finding.passed("primary-keys", f"all {len(catalog.tables)} table(s) have a primary "
                          "key that refuses a duplicate")


def _same_key(table: Table, row: Row) -> Row:
    """Another row with `row`'s primary key (other columns from the next synthetic row)."""
    other = rows(table, 1, start=1)[0]
    return {c: (row[c] if c in table.primary_key or c not in other else other[c]) for c in row}


def _with_parents(catalog: Catalog, table: Table) -> list[Table]:
    order = catalog.tables_in_fk_order()
    needed = {table.name}
    for candidate in reversed(order):
        if candidate.name in needed:
            needed |= {fk.table for fk in candidate.foreign_keys}
    return [t for t in order if t.name in needed]


def keys_not_null(catalog: Catalog) -> Finding:
    """Key columns are NOT NULL: primary and unique keys, and the foreign keys of a table that
    references two or more others (a fact row without its dimension is lost in every join)."""
    nullable = []
    for table in catalog.tables.values():
        keys = set(table.primary_key) | {c for u in table.uniques for c in u}
        if len(table.foreign_keys) >= 2:
            keys |= {c for fk in table.foreign_keys for c in fk.columns}
        for name in sorted(keys):
            column = table.column(name)
            if column is not None and column.nullable:
                nullable.append(f"{table.name}.{name}")
    if nullable:
        return Finding.failed("keys-not-null", f"nullable key column(s): {', '.join(nullable)}")
    return Finding.passed("keys-not-null", "every key column is NOT NULL")


def exact_money(catalog: Catalog) -> Finding:
    money = catalog.money_columns()
    if not money:
        return Finding.not_applicable("exact-money", "no money column")
    inexact = [f"{t.name}.{c.name} ({c.type})" for t, c in money if c.is_float]
    if inexact:
        return Finding.failed("exact-money", f"money in a binary float: {', '.join(inexact)}")
    return Finding.passed("exact-money", f"{len(money)} money column(s) are exact numerics")


def tz_aware(catalog: Catalog) -> Finding:
    """Event-time columns are TIMESTAMP WITH TIME ZONE (both engines have the type)."""
    times = [(t, c) for t, c in catalog.time_columns() if _EVENT_TIME.search(c.name)]
    if not times:
        return Finding.not_applicable("tz-aware", "no event-time column")
    naive = [f"{t.name}.{c.name}" for t, c in times if not c.tz_aware]
    if naive:
        return Finding.failed("tz-aware", f"time(s) without a time zone: {', '.join(naive)}")
    return Finding.passed("tz-aware", f"{len(times)} event time(s) are time-zone aware")


def foreign_keys_resolve(execution: Execution) -> Finding:
    """Each foreign key points at a key of a table that exists, and an orphan row is refused."""
    catalog = execution.catalog
    pairs = [(t, fk) for t in catalog.tables.values() for fk in t.foreign_keys]
    if not pairs:
        return Finding.not_applicable("foreign-keys-resolve", "no foreign key")
    session = execution.session
    for table, fk in pairs:
        parent = catalog.table(fk.table)
        if parent is None:
            return Finding.failed("foreign-keys-resolve",
                                  f"{table.name} references {fk.table}, which does not exist")
        with session.savepoint(undo=True):
            stored = populate(session, catalog, 1, _with_parents(catalog, table))
            base = (stored.get(table.name) or rows(table, 1, stored))[0]
            bad = orphan(rows(table, 1, stored, start=5)[0] if base else base, fk.columns, table)
            try:
                with session.savepoint():
                    session.execute(insert_sql(table, [bad]))
            except Rejected:
                continue
            return Finding.failed("foreign-keys-resolve",
                                  f"{table.name} stored a row whose {', '.join(fk.columns)} "
                                  f"has no {fk.table}")
    return Finding.passed("foreign-keys-resolve",
                          f"{len(pairs)} foreign key(s) resolve and refuse orphans")


def scd2_tables(catalog: Catalog) -> list[tuple[Table, str]]:
    """SCD2 tables and the condition that selects their current rows."""
    out = []
    for table in catalog.tables.values():
        flag = next((c for c in table.columns if _CURRENT_FLAG.match(c.name)
                     and c.type in ("boolean", "bool")), None)
        if flag is not None:
            out.append((table, f"{flag.name}"))
            continue
        valid_to = next((c for c in table.columns if _VALID_TO.match(c.name)), None)
        if valid_to is not None:
            out.append((table, f"({valid_to.name} IS NULL OR {valid_to.name} >= "
                               f"{'DATE' if valid_to.type == 'date' else 'TIMESTAMP'} "
                               "'9999-01-01')"))
    return out


def natural_key(table: Table) -> list[str]:
    """The business key of an SCD2 table: a unique key without the version columns, else the
    first id-like column that is not the surrogate key."""
    version = re.compile(r"(valid|effective|eff|row|start|end|from|to|version|current)", re.I)
    for unique in table.uniques:
        kept = [c for c in unique if not version.search(c)]
        if kept and tuple(kept) != table.primary_key:
            return kept
    for column in table.columns:
        if column.name in table.primary_key:
            continue
        if re.search(r"(_id|_code|_number|_no|_sku|sku|_natural_key|_nk|_bk)$", column.name):
            return [column.name]
    return []


def scd2_one_current(probe: ProbeInput) -> Finding:
    """Replay the answer's SCD2 statements (twice, with a changed staging row) and count the
    current rows per natural key: exactly one each."""
    prop = "scd2-one-current"
    catalog = probe.execution.catalog
    targets = [(t, c) for t, c in scd2_tables(catalog)
               if probe.program.writes(t.name)]
    if not targets:
        return Finding.not_applicable(prop, "no SCD2 change statements")
    with probe.fresh() as execution:
        session = execution.session
        stored = populate(session, catalog, 3)
        for table, current in targets:
            key = natural_key(table)
            if not key:
                return Finding.not_applicable(prop, f"no natural key found on {table.name}")
            statements = probe.program.writes(table.name)
            sources = {s.name: s for st in statements for s in _sources(st, catalog)}
            _open_versions(session, table)
            _stage_changes(session, catalog, list(sources.values()), stored)
            for _ in range(2):
                for statement in statements:
                    try:
                        with session.savepoint():
                            session.execute(statement.sql)
                    except Rejected as err:
                        return Finding.failed(prop, f"{statement.where} is refused: {err}")
            keys = ", ".join(key)
            dupes = session.execute(
                f"SELECT {keys}, count(*) FROM {table.qualified} WHERE {current} "
                f"GROUP BY {keys} HAVING count(*) <> 1") or []
            missing = session.execute(
                f"SELECT count(DISTINCT ({keys})) FROM {table.qualified}") or [(0,)]
            current_count = session.execute(
                f"SELECT count(DISTINCT ({keys})) FROM {table.qualified} WHERE {current}"
            ) or [(0,)]
            if dupes:
                return Finding.failed(prop, f"{table.name}: {len(dupes)} natural key(s) with "
                                      f"{dupes[0][-1]} current rows after the answer's SCD2 "
                                      "statements ran")
            if current_count[0][0] != missing[0][0]:
                return Finding.failed(prop, f"{table.name}: a natural key is left with no "
                                      "current row after the answer's SCD2 statements ran")
    return Finding.passed(prop, "one current row per natural key after the SCD2 statements "
                          "ran twice")


def _sources(step: Step, catalog: Catalog) -> list[Table]:
    """The answer's tables a statement reads (its target excluded)."""
    from sqlglot import exp

    if step.tree is None:
        return []
    names = {str(t.name).lower() for t in step.tree.find_all(exp.Table) if t.name}
    return [catalog.tables[n] for n in sorted(names - {step.target}) if n in catalog.tables]


def _stage_changes(session: Session, catalog: Catalog, sources: list[Table],
                   stored: dict[str, list[Row]]) -> None:
    """Changed versions of the stored rows in the tables the SCD2 statements read: the same
    keys (synthetic rows are numbered alike), other attribute values."""
    for table in sources:
        batch = []
        for row in rows(table, 3, stored):
            changed = dict(row)
            for column in table.columns:
                value = row.get(column.name)
                if value is None or column.name in table.primary_key or _KEYISH.search(
                        column.name):
                    continue
                if value.startswith("'") and not column.type.startswith(("uuid", "json")):
                    changed[column.name] = value[:-1] + "_v2'"
            batch.append(changed)
        if batch:
            try:
                with session.savepoint():
                    session.execute(f"DELETE FROM {table.qualified}")
                    session.execute(insert_sql(table, batch))
            except Rejected:
                continue


def _open_versions(session: Session, table: Table) -> None:
    """Synthetic SCD2 rows start current: an open validity end."""
    for column in table.columns:
        if _VALID_TO.match(column.name):
            value = "NULL" if column.nullable else (
                "DATE '9999-12-31'" if column.type == "date" else "TIMESTAMP '9999-12-31'")
            session.execute(f"UPDATE {table.qualified} SET {column.name} = {value}")
