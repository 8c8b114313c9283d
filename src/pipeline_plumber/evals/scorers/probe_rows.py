"""A probe row found by role: the table and columns an answer chose, whatever it named them.

A prompt that describes its data in words ("which account, which plan, the billing period")
fixes no names, so a probe cannot INSERT into `subscriptions (period_start, ...)`. A `row` step
says instead which table it means (a name pattern, and patterns its columns must match) and
which values it sets (column pattern -> SQL literal). The table is looked up in the answer's
catalog; every column the step does not set gets a valid synthetic value (types, CHECK lists
and patterns respected); the tables its foreign keys point at get a row first, so a child row
has a parent whatever the answer called it. A column the database computes (a generated
line amount) is left to the database even when the step sets it; a key is always given, with
OVERRIDING SYSTEM VALUE where PostgreSQL would generate it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ..execution.catalog import Catalog, Column, Table, quote
from ..execution.synth import Row, literal, rows

# a case is input from others: its patterns are short and must compile
Pattern = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RowSpec(BaseModel):
    """Which table a probe row goes into, and what it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: Pattern | None = Field(
        default=None, description="A regular expression on the table's name, preferred among "
        "the tables that fit (`^invoice_lines$` for a name the prompt fixes).")
    having: list[Pattern] = Field(
        default_factory=list, max_length=20, description="Regular expressions for columns the "
        "table should have (searched, case-insensitive): the table matching most is preferred.")
    values: dict[Pattern, str] = Field(
        default_factory=dict, max_length=50, description="Column -> SQL literal. The key is a "
        "regular expression: the column it matches whole, else the first column its first "
        "alternative is found in, then its second; the table must have a column for each key.")

    @model_validator(mode="after")
    def _patterns_compile(self) -> RowSpec:
        for pattern in [*([self.table] if self.table else []), *self.having, *self.values]:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"/{pattern}/ is not a regular expression: {err}") from None
        return self


_ENUM = re.compile(r"enum\(\s*('(?:[^']|'')*')", re.I)


class NotFound(Exception):
    """The answer's catalog has no table or column that fits the row's description."""


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text, re.I)


def _alternatives(key: str) -> list[str]:
    """`key`'s top-level alternatives, in order: `period_start|start` -> both."""
    out, depth, start = [], 0, 0
    for i, char in enumerate(key):
        if char == "(" and key[i - 1:i] != "\\":
            depth += 1
        elif char == ")" and key[i - 1:i] != "\\":
            depth -= 1
        elif char == "|" and depth == 0:
            out.append(key[start:i])
            start = i + 1
    return [*out, key[start:]]


def find_column(table: Table, key: str) -> Column | None:
    """The column `key` means: one it matches whole, else the first column its first
    alternative is found in, then its second (so `period_start|start` takes
    `current_period_start` before `started_at`)."""
    pattern = _pattern(key)
    exact = next((c for c in table.columns if pattern.fullmatch(c.name)), None)
    if exact is not None:
        return exact
    for alternative in _alternatives(key):
        found = next((c for c in table.columns if _pattern(alternative).search(c.name)), None)
        if found is not None:
            return found
    return None


def find_table(catalog: Catalog, spec: RowSpec) -> Table:
    """The table with a column for every value, named like `table` if one is, with most of
    the `having` columns; ties go to the last in foreign-key order, the table that points at
    the others (`subscriptions`, not the `subscription_statuses` lookup it references)."""
    fits = [t for t in catalog.tables_in_fk_order()
            if all(find_column(t, key) is not None for key in spec.values)]
    if not fits:
        raise NotFound("no table has columns matching "
                       + ", ".join(f"/{k}/" for k in spec.values))

    def rank(table: Table) -> tuple[bool, int]:
        named = bool(spec.table) and bool(_pattern(spec.table or "").search(table.relation))
        return named, sum(find_column(table, key) is not None for key in spec.having)

    best = max(rank(t) for t in fits)
    return [t for t in fits if rank(t) == best][-1]


def _parents(catalog: Catalog, table: Table) -> list[Table]:
    """The tables `table`'s foreign keys reach, parents first (itself left out)."""
    needed: set[str] = set()
    todo = [table]
    while todo:
        for fk in todo.pop().foreign_keys:
            parent = catalog.tables.get(fk.table.lower())
            if parent is not None and parent.name != table.name and parent.name not in needed:
                needed.add(parent.name)
                todo.append(parent)
    return [t for t in catalog.tables_in_fk_order() if t.name in needed]


def _insert(table: Table, row: Row, engine: str) -> str:
    columns = list(row)
    if not columns:
        return f"INSERT INTO {table.qualified} DEFAULT VALUES"
    overriding = any((c := table.column(name)) is not None and c.generated for name in columns)
    clause = " OVERRIDING SYSTEM VALUE" if overriding and engine == "postgres" else ""
    return (f"INSERT INTO {table.qualified} ({', '.join(quote(c) for c in columns)})"
            f"{clause} VALUES ({', '.join(row[c] for c in columns)})")


@dataclass
class RowMaker:
    """The rows one probe has put in so far, so a second row reuses the first one's parents."""

    catalog: Catalog
    engine: str
    stored: dict[str, list[Row]] = field(default_factory=dict)
    made: dict[str, int] = field(default_factory=dict)

    def _next(self, table: Table) -> Row:
        start = self.made.get(table.name, 0)
        self.made[table.name] = start + 1
        row = rows(table, 1, self.stored, start=start, catalog=self.catalog)[0]
        for column in table.columns:  # DuckDB spells an ENUM column's type with its values
            listed = _ENUM.match(column.type)
            if listed and column.name in row:
                row[column.name] = listed.group(1)
        return row

    def parents_missing(self, spec: RowSpec) -> list[Table]:
        """The tables the row's foreign keys reach that hold no row of this probe yet, parents
        first."""
        return [t for t in _parents(self.catalog, find_table(self.catalog, spec))
                if not self.stored.get(t.name)]

    def keys_of(self, parent: Table) -> list[str]:
        """The columns of `parent` that children point at (its primary key at least)."""
        referenced = {c for t in self.catalog.tables.values() for fk in t.foreign_keys
                      if fk.table.lower() == parent.name.lower() for c in fk.ref_columns}
        keys = [*parent.primary_key, *sorted(referenced - set(parent.primary_key))]
        return [k for k in keys if parent.column(k) is not None]

    def parent_insert(self, parent: Table) -> tuple[Row, str]:
        """A synthetic row of `parent` and its INSERT. Its key is given even where the database
        would generate it, so children can point at it."""
        row = self._next(parent)
        for name in self.keys_of(parent):
            column = parent.column(name)
            if column is not None and name not in row:
                row[name] = literal(column, self.made[parent.name] - 1)
        return row, _insert(parent, row, self.engine)

    def row_insert(self, spec: RowSpec) -> tuple[Table, Row, str]:
        table = find_table(self.catalog, spec)
        row = self._next(table)
        for key, value in spec.values.items():
            column = find_column(table, key)
            if column is None:  # find_table made sure every key fits
                raise NotFound(f"no column of {table.name} matches /{key}/")
            if column.generated and column.name not in self.keys_of(table):
                row.pop(column.name, None)  # computed: the database's to fill
            else:
                row[column.name] = value
        return table, row, _insert(table, row, self.engine)

    def keep(self, table: Table, row: Row) -> None:
        """`row` is stored: later rows of the probe may point at it."""
        self.stored.setdefault(table.name, []).append(row)


def sql_literal(value: object) -> str:
    """`value` as read from the engine, written back as SQL (the column's type casts it)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"
