"""Deterministic synthetic rows for any table, from its catalog entry, and the defects to inject.

A row is `{column: SQL literal}`. Values follow the column's type; foreign keys take the key
values of parent rows generated first; unique columns stay unique; CHECK constraints that list
allowed values (`status IN ('a', 'b')`) are respected, and a later column of a type gets a later
value than an earlier one (`period_end` after `period_start`). `populate` inserts rows into
every table in foreign-key order and retries a refused row with other allowed values.

Mutators return new rows for the probes that look where errors hide: a duplicate key, a NULL, an
out-of-range value, a future timestamp, an orphan foreign key, an empty batch, month-end
boundary times, several changes to one key in one batch, an older change arriving late.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from .catalog import Catalog, Column, Table, quote
from .engine import Rejected, Session

Row = dict[str, str]

BASE_DAY = dt.datetime(2024, 1, 15, 10, 0, 0)
FUTURE = "2099-01-01 00:00:00"
_IN_LIST = re.compile(r"\(?\s*\(?(\w+)\)?(?:::\w+)?\s+IN\s*\(([^)]*)\)", re.I)
_ANY_ARRAY = re.compile(r"\(?(\w+)\)?(?:::\w+)?\s*=\s*ANY\s*\(\s*\(?ARRAY\[([^\]]*)\]", re.I)
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


def allowed_values(table: Table) -> dict[str, list[str]]:
    """Columns whose CHECK lists the values allowed: column -> SQL literals."""
    out: dict[str, list[str]] = {}
    for check in table.checks:
        for pattern in (_IN_LIST, _ANY_ARRAY):
            for match in pattern.finditer(check):
                values = [f"'{v}'" for v in _LITERAL.findall(match.group(2))]
                if values and table.column(match.group(1).lower()) is not None:
                    out.setdefault(match.group(1).lower(), values)
    return out


def literal(column: Column, i: int, position: int = 0) -> str:
    """A value of `column`'s type for row `i` (distinct per row); `position` orders time columns
    of one row (a later column gets a later time)."""
    typ = column.type
    name = column.name.lower()
    when = BASE_DAY + dt.timedelta(days=i, hours=position)
    if typ.startswith(("timestamp with time zone", "timestamptz")):
        return f"TIMESTAMPTZ '{when:%Y-%m-%d %H:%M:%S}+00'"
    if typ.startswith("timestamp"):
        return f"TIMESTAMP '{when:%Y-%m-%d %H:%M:%S}'"
    if typ == "date":
        return f"DATE '{(when + dt.timedelta(days=position)):%Y-%m-%d}'"
    if typ.startswith(("time with", "time without", "time")) and not typ.startswith("timest"):
        return f"TIME '{when:%H:%M:%S}'"
    if typ in ("boolean", "bool"):
        return "TRUE"
    if typ in ("uuid",):
        return f"'00000000-0000-4000-8000-{i + 1:012d}'"
    if typ in ("json", "jsonb"):
        return "'{}'"
    if typ.startswith("interval"):
        return "INTERVAL '1 day'"
    if typ.startswith(("numeric", "decimal", "money")):
        scale = re.search(r",\s*(\d+)\)", typ)
        digits = re.search(r"\((\d+)", typ)
        whole = 10 + i
        if digits and scale and int(digits.group(1)) - int(scale.group(1)) < 3:
            whole = i % 10
        return f"{whole}.50" if not scale or int(scale.group(1)) > 0 else str(whole)
    if typ in ("double precision", "real", "double", "float", "float4", "float8"):
        return f"{10 + i}.5"
    if re.match(r"(big|small|tiny|huge|u)?int|integer|serial", typ):
        return str(i + 1)
    if typ.endswith("[]"):
        return "'{}'"
    if typ in ("bytea", "blob"):
        return "'\\x00'"
    size = re.search(r"\((\d+)\)", typ)
    text = f"user{i + 1}@example.com" if "email" in name else f"{name}_{i + 1}"
    if size:
        text = text[-int(size.group(1)):] if int(size.group(1)) < len(text) else text
    return "'" + text.replace("'", "''") + "'"


def rows(table: Table, n: int, parents: dict[str, list[Row]] | None = None,
         start: int = 0) -> list[Row]:
    """`n` rows for `table`; foreign keys point at `parents` rows (by table name)."""
    parents = parents or {}
    allowed = allowed_values(table)
    fk_value: dict[str, list[str]] = {}
    for fk in table.foreign_keys:
        parent_rows = parents.get(fk.table, [])
        for own, ref in zip(fk.columns, fk.ref_columns, strict=False):
            values = [r[ref] for r in parent_rows if ref in r]
            if values:
                fk_value[own] = values
    out: list[Row] = []
    for i in range(start, start + n):
        row: Row = {}
        position = 0
        for column in table.columns:
            if column.generated:
                continue
            if column.name in fk_value:
                options = fk_value[column.name]
                row[column.name] = options[i % len(options)]
            elif column.name in allowed:
                options = allowed[column.name]
                row[column.name] = options[i % len(options)]
            else:
                row[column.name] = literal(column, i, position)
            if column.is_timestamp or column.type == "date":
                position += 1
        out.append(row)
    return out


def insert_sql(table: Table, batch: Sequence[Row]) -> str:
    """One INSERT of `batch` (every row has the same columns)."""
    columns = list(batch[0])
    values = ", ".join("(" + ", ".join(row[c] for c in columns) + ")" for row in batch)
    return (f"INSERT INTO {table.qualified} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES {values}")


def populate(session: Session, catalog: Catalog, n: int = 3,
             tables: Sequence[Table] | None = None) -> dict[str, list[Row]]:
    """Insert `n` rows into every table (parents first); the rows that were stored, by table.
    A row the engine refuses is retried with the next allowed values, then left out."""
    stored: dict[str, list[Row]] = {}
    for table in tables or catalog.tables_in_fk_order():
        if table.partitioning is None and not table.columns:
            continue
        kept: list[Row] = []
        for attempt, row in enumerate(rows(table, n, stored)):
            for shift in range(3):
                candidate = row if shift == 0 else rows(table, 1, stored, attempt + shift * n)[0]
                try:
                    with session.savepoint():
                        session.execute(insert_sql(table, [candidate]))
                except Rejected:
                    continue
                kept.append(candidate)
                break
        stored[table.name] = kept
    return stored


# --- mutators -------------------------------------------------------------------------------------


def with_value(row: Row, column: str, value: str) -> Row:
    return {**row, column: value}


def with_null(row: Row, column: str) -> Row:
    return with_value(row, column, "NULL")


def out_of_range(column: Column) -> str:
    """A value no sane range check allows: very negative numbers, dates in 1900."""
    if column.is_timestamp:
        return literal(column, 0).replace("2024-01-15", "1900-01-01")
    if column.type == "date":
        return "DATE '1900-01-01'"
    return "-999999"


def future_timestamp(column: Column) -> str:
    if column.type == "date":
        return "DATE '2099-01-01'"
    if column.tz_aware:
        return f"TIMESTAMPTZ '{FUTURE}+00'"
    return f"TIMESTAMP '{FUTURE}'"


def orphan(row: Row, columns: Sequence[str], table: Table) -> Row:
    """`row` pointing at a parent key that does not exist."""
    out = dict(row)
    for name in columns:
        column = table.column(name)
        out[name] = literal(column, 999_998) if column is not None else "999999"
    return out


def month_end(column: Column) -> list[str]:
    """Boundary times: the last instant of January, leap day, the last second of the year."""
    if column.type == "date":
        return ["DATE '2024-01-31'", "DATE '2024-02-29'", "DATE '2024-12-31'"]
    suffix, kind = ("+00", "TIMESTAMPTZ") if column.tz_aware else ("", "TIMESTAMP")
    return [f"{kind} '2024-01-31 23:59:59.999{suffix}'", f"{kind} '2024-02-29 12:00:00{suffix}'",
            f"{kind} '2024-12-31 23:59:59{suffix}'"]


def several_changes(row: Row, column: str, values: Sequence[str], order_column: str | None,
                    order_type: Column | None) -> list[Row]:
    """One key changed several times in one batch, in order of `order_column` (if any)."""
    out = []
    for i, value in enumerate(values):
        changed = with_value(row, column, value)
        if order_column and order_type is not None:
            changed[order_column] = literal(order_type, 10 + i)
        out.append(changed)
    return out


def late_older_change(row: Row, column: str, value: str, order_column: str,
                      order_type: Column) -> Row:
    """A change to `row`'s key that is older than `row` (arrives after it)."""
    return {**row, column: value, order_column: literal(order_type, -10)}
