"""SCD type 2 tables as the probes see them: which tables keep versions, how to select the current
rows, the natural key, and the staged changes the answer's SCD2 statements are replayed over.

Shared by the schema and star families (and the pipeline family's current-row filter), so a
correction to how changes are staged reaches every family that replays SCD2 statements.
"""

from __future__ import annotations

import re

from .catalog import Catalog, Table
from .engine import Rejected, Session
from .program import Step
from .synth import Row, insert_sql, literal, rows

CURRENT_FLAG = re.compile(r"^(is_)?(current|active|latest)(_flag|_row|_version)?$", re.I)
VALID_TO = re.compile(r"^(valid|effective|eff|row)_(to|until|end)(_\w+)?$|^end_(date|ts|at)$",
                      re.I)
KEYISH = re.compile(r"(_id|_key|_code|_number|_no|sku|_nk|_bk)$", re.I)
_VERSION = re.compile(r"(valid|effective|eff|row|start|end|from|to|version|current)", re.I)


def scd2_tables(catalog: Catalog) -> list[tuple[Table, str]]:
    """SCD2 tables and the condition that selects their current rows."""
    out = []
    for table in catalog.tables.values():
        flag = next((c for c in table.columns if CURRENT_FLAG.match(c.name)
                     and c.type in ("boolean", "bool")), None)
        if flag is not None:
            out.append((table, f"{flag.name}"))
            continue
        valid_to = next((c for c in table.columns if VALID_TO.match(c.name)), None)
        if valid_to is not None:
            out.append((table, f"({valid_to.name} IS NULL OR {valid_to.name} >= "
                               f"{'DATE' if valid_to.type == 'date' else 'TIMESTAMP'} "
                               "'9999-01-01')"))
    return out


def natural_key(table: Table) -> list[str]:
    """The business key of an SCD2 table: a unique key without the version columns, else the
    first id-like column that is not the surrogate key."""
    for unique in table.uniques:
        kept = [c for c in unique if not _VERSION.search(c)]
        if kept and tuple(kept) != table.primary_key:
            return kept
    for column in table.columns:
        if column.name in table.primary_key:
            continue
        if re.search(r"(_id|_code|_number|_no|_sku|sku|_natural_key|_nk|_bk)$", column.name):
            return [column.name]
    return []


def sources(step: Step, catalog: Catalog) -> list[Table]:
    """The answer's tables a statement reads (its target excluded)."""
    from sqlglot import exp

    if step.tree is None:
        return []
    names = {str(t.name).lower() for t in step.tree.find_all(exp.Table) if t.name}
    return [catalog.tables[n] for n in sorted(names - {step.target}) if n in catalog.tables]


def open_versions(session: Session, table: Table) -> None:
    """Synthetic SCD2 rows start current: an open validity end."""
    for column in table.columns:
        if VALID_TO.match(column.name):
            value = "NULL" if column.nullable else (
                "DATE '9999-12-31'" if column.type == "date" else "TIMESTAMP '9999-12-31'")
            session.execute(f"UPDATE {table.qualified} SET {column.name} = {value}")


def stage_changes(session: Session, tables: list[Table], stored: dict[str, list[Row]],
                  allowed: dict[str, list[str]] | None = None) -> None:
    """The staging tables the SCD2 statements read, refilled with changed versions of the stored
    rows: the same keys (synthetic rows are numbered alike), other attribute values, and change
    dates two months after the versions they replace (a close that sets `valid_to` from the
    change date then satisfies `CHECK (valid_to > valid_from)`). A column whose values the
    target's CHECK lists (`allowed`: column -> SQL literals) changes to another listed value,
    so the new version is one the dimension accepts."""
    allowed = allowed or {}
    for table in tables:
        batch = []
        for i, row in enumerate(rows(table, 3, stored)):
            changed = dict(row)
            position = 0
            for column in table.columns:
                value = row.get(column.name)
                if value is None:
                    continue
                if column.is_timestamp or column.type == "date":
                    changed[column.name] = literal(column, i + 60, position)
                    position += 1
                elif column.name in table.primary_key or KEYISH.search(column.name):
                    continue
                elif column.name in allowed and len(allowed[column.name]) > 1:
                    options = allowed[column.name]
                    at = options.index(value) if value in options else -1
                    changed[column.name] = options[(at + 1) % len(options)]
                elif value.startswith("'") and not column.type.startswith(("uuid", "json")):
                    changed[column.name] = value[:-1] + "_v2'"
            batch.append(changed)
        if batch:
            try:
                with session.savepoint():
                    session.execute(f"DELETE FROM {table.qualified}")
                    session.execute(insert_sql(table, batch))
            except Rejected:
                continue


def one_current(session: Session, table: Table, key: list[str], current: str) -> str | None:
    """Why `table` does not hold exactly one current row per natural key, or None."""
    keys = ", ".join(key)
    dupes = session.execute(f"SELECT {keys}, count(*) FROM {table.qualified} WHERE {current} "
                            f"GROUP BY {keys} HAVING count(*) <> 1") or []
    if dupes:
        return (f"{table.name}: {len(dupes)} natural key(s) with {dupes[0][-1]} current rows "
                "after the answer's SCD2 statements ran")
    every = session.execute(f"SELECT count(DISTINCT ({keys})) FROM {table.qualified}") or [(0,)]
    now = session.execute(f"SELECT count(DISTINCT ({keys})) FROM {table.qualified} "
                          f"WHERE {current}") or [(0,)]
    if now[0][0] != every[0][0]:
        return (f"{table.name}: a natural key is left with no current row after the answer's "
                "SCD2 statements ran")
    return None
