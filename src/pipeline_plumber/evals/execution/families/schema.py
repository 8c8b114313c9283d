"""`schema`: every table has a primary key that holds, key columns are NOT NULL, money is exact,
event times are time-zone aware, foreign keys resolve and reject orphans, and SCD2 change
statements leave one current row per natural key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from ..catalog import Catalog, Table
from ..engine import Rejected, Session
from ..properties import Finding, ProbeInput, family
from ..scd2 import (
    natural_key,
    one_current,
    open_versions,
    scd2_tables,
    sources,
    stage_changes,
)
from ..synth import Row, allowed_values, insert_sql, orphan, populate, rows

PROPERTIES = ("primary-keys", "keys-not-null", "exact-money", "tz-aware",
              "foreign-keys-resolve", "scd2-one-current")
# a timestamp is an instant unless its name says it is a wall-clock reading on purpose
_WALL_CLOCK = re.compile(r"(^|_)(local|wall|naive|floating)(_|$)", re.I)


@family("schema", properties=PROPERTIES)
def schema_family(probe: ProbeInput) -> list[Finding]:
    execution = probe.execution
    catalog = execution.catalog
    if not catalog.tables:
        return [Finding.failed(p, "the answer's setup creates no table") for p in PROPERTIES]
    return [primary_keys(probe), keys_not_null(catalog), exact_money(catalog),
            tz_aware(catalog), foreign_keys_resolve(probe), scd2_one_current(probe)]


@contextmanager
def scratch(probe: ProbeInput) -> Iterator[Session]:
    """A session with the answer's setup whose changes are undone afterwards. PostgreSQL: a
    savepoint on the probe's database. DuckDB has no nested savepoints and a refused row aborts
    the whole transaction, so it gets a fresh database where each statement commits alone."""
    session = probe.execution.session
    if session.engine == "postgres":
        with session.savepoint(undo=True):
            yield session
        return
    with probe.fresh() as execution:
        yield execution.session


STAGING = re.compile(r"^(stg|staging|stage|landing|raw|tmp|temp|src)_|_(stg|staging|stage|"
                     r"landing|raw|tmp|temp)$", re.I)


def primary_keys(probe: ProbeInput) -> Finding:
    """Every table has a primary key, and a second row with the same key is refused; staging
    tables (`stg_*`, `*_staging`, ...) hold raw batches, duplicates included, and need none."""
    catalog = probe.execution.catalog
    missing = [t.name for t in catalog.tables.values()
               if not t.primary_key and not STAGING.search(t.name)]
    if missing:
        return Finding.failed("primary-keys", f"no primary key on {', '.join(missing)}")
    narrow = _numbered_without_parent(catalog)
    if narrow:
        return Finding.failed("primary-keys", narrow)
    keyed = [t for t in catalog.tables_in_fk_order() if t.primary_key]
    for table in keyed:
        with scratch(probe) as session:
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
    staging = len(catalog.tables) - len(keyed)
    also = f" ({staging} staging table(s) need none)" if staging else ""
    return Finding.passed("primary-keys", f"all {len(keyed)} table(s) have a primary key that "
                          f"refuses a duplicate{also}")


_NUMBER_IN_PARENT = re.compile(r"^(line|item|seq|sequence|position|pos|ordinal)(_?(no|num|number|"
                               r"nr|index|idx))?$", re.I)


def _numbered_without_parent(catalog: Catalog) -> str | None:
    """Why a detail table is keyed by its number within the parent alone (`line_no`), so the
    second invoice's line 1 is refused, or None. The key must hold the parent's key too."""
    for table in catalog.tables.values():
        numbers = [c for c in table.primary_key if _NUMBER_IN_PARENT.match(c)]
        if not numbers:
            continue
        for fk in table.foreign_keys:
            if not set(fk.columns) <= set(table.primary_key):
                return (f"{table.name}'s primary key ({', '.join(table.primary_key)}) lacks "
                        f"{', '.join(fk.columns)}: {numbers[0]} counts within a {fk.table} "
                        f"row, so the same {numbers[0]} in a second {fk.table} row is refused")
    return None


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
    """Timestamps are TIMESTAMP WITH TIME ZONE (both engines have the type): whatever its name
    (`scanned`, `logged`, `valid_from`), a timestamp records an instant, and without a zone two
    sources in different zones store different instants alike. A column named as a local
    wall-clock reading (`local_*`, `*_local`) is exempt."""
    times = [(t, c) for t, c in catalog.time_columns() if not _WALL_CLOCK.search(c.name)]
    if not times:
        return Finding.not_applicable("tz-aware", "no event-time column")
    naive = [f"{t.name}.{c.name}" for t, c in times if not c.tz_aware]
    if naive:
        return Finding.failed("tz-aware", f"time(s) without a time zone: {', '.join(naive)}")
    return Finding.passed("tz-aware", f"{len(times)} event time(s) are time-zone aware")


def foreign_keys_resolve(probe: ProbeInput) -> Finding:
    """Each foreign key points at a key of a table that exists, and an orphan row is refused."""
    catalog = probe.execution.catalog
    pairs = [(t, fk) for t in catalog.tables.values() for fk in t.foreign_keys]
    if not pairs:
        return Finding.not_applicable("foreign-keys-resolve", "no foreign key")
    for table, fk in pairs:
        parent = catalog.table(fk.table)
        if parent is None:
            return Finding.failed("foreign-keys-resolve",
                                  f"{table.name} references {fk.table}, which does not exist")
        with scratch(probe) as session:
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
            read = {s.name: s for st in statements for s in sources(st, catalog)}
            open_versions(session, table)
            stage_changes(session, list(read.values()), stored,
                          allowed_values(table))
            for _ in range(2):
                for statement in statements:
                    try:
                        with session.savepoint():
                            session.execute(statement.sql)
                    except Rejected as err:
                        return Finding.failed(prop, f"{statement.where} is refused: {err}")
            verdict = one_current(session, table, key, current)
            if verdict:
                return Finding.failed(prop, verdict)
    return Finding.passed(prop, "one current row per natural key after the SCD2 statements "
                          "ran twice")
