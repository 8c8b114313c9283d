"""Deterministic synthetic rows for any table, from its catalog entry, and the defects to inject.

A row is `{column: SQL literal}`. Values follow the column's type; foreign keys take the key
values of parent rows generated first; unique columns stay unique; the common shapes of CHECK
constraints are respected (see `Rule`: value lists, regular expressions of character classes
and fixed repetitions, LIKE prefixes, lengths, numeric ranges), and a later column of a type gets
a later value than an earlier one (`period_end` after `period_start`). A column without a CHECK
of its own follows the single-column CHECKs of same-named columns elsewhere in the catalog: the
staging rows a load copies into `fx_rates` must pass `fx_rates`' own checks. `populate` inserts
rows into every table in foreign-key order, asks the engine whether each satisfies the borrowed
checks, retries a refused row with other candidates, and reports what it had to leave out.

Mutators return new rows for the probes that look where errors hide: a duplicate key, a NULL, an
out-of-range value, a future timestamp, an orphan foreign key, an empty batch, month-end
boundary times, several changes to one key in one batch, an older change arriving late.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import Decimal

from .catalog import Catalog, Column, Table, quote
from .engine import Rejected, Session

Row = dict[str, str]

BASE_DAY = dt.datetime(2024, 1, 15, 10, 0, 0)
FUTURE = "2099-01-01 00:00:00"
_IN_LIST = re.compile(r"\(?\s*\(?(\w+)\)?(?:::\w+)?\s+IN\s*\(([^)]*)\)", re.I)
_ANY_ARRAY = re.compile(r"\(?(\w+)\)?(?:::\w+)?\s*=\s*ANY\s*\(\s*\(?ARRAY\[([^\]]*)\]", re.I)
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


@dataclass(frozen=True)
class Rule:
    """What the CHECKs on one column allow, in the shapes synthetic values can follow."""

    pattern: str | None = None  # a regular expression the value matches
    prefix: str | None = None  # LIKE 'SKU-%': the text before the first wildcard
    min_length: int | None = None
    max_length: int | None = None
    low: Decimal | None = None
    low_open: bool = False
    high: Decimal | None = None
    high_open: bool = False

    def merged(self, other: Rule) -> Rule:
        """Both rules; where both set a bound, this one's."""
        def pick(mine: object, theirs: object) -> object:
            return theirs if mine is None else mine

        values = {f.name: pick(getattr(self, f.name), getattr(other, f.name))
                  for f in fields(self)}
        values["low_open"] = self.low_open if self.low is not None else other.low_open
        values["high_open"] = self.high_open if self.high is not None else other.high_open
        return Rule(**values)  # type: ignore[arg-type]


_CAST = re.compile(r"::\s*[a-z_][\w ]*?(\(\s*\d+(\s*,\s*\d+)?\s*\))?(\[\])?(?=[\s),]|$)", re.I)
_COLUMN = r"\(*\s*\"?(\w+)\"?\s*\)*"
_NUMBER = r"\(*\s*(-?\d+(?:\.\d+)?)\s*\)*"
_STRING = r"'((?:[^']|'')*)'"
_REGEX = re.compile(rf"{_COLUMN}\s*(?:~\*?|SIMILAR\s+TO)\s*{_STRING}|"
                    rf"(?:regexp_matches|regexp_like|regexp_full_match)\s*\(\s*{_COLUMN}\s*,"
                    rf"\s*{_STRING}", re.I)
_LIKE = re.compile(rf"{_COLUMN}\s*(?:~~\*?|I?LIKE)\s*{_STRING}", re.I)
_LENGTH = re.compile(rf"(?:char_length|character_length|length|len|strlen)\s*\(\s*{_COLUMN}"
                     rf"\s*\)\s*(=|>=|>|<=|<)\s*{_NUMBER}", re.I)
_LENGTH_BETWEEN = re.compile(rf"(?:char_length|character_length|length|len|strlen)\s*\(\s*"
                             rf"{_COLUMN}\s*\)\s*BETWEEN\s*{_NUMBER}\s*AND\s*{_NUMBER}", re.I)
_COMPARE = re.compile(rf"(?<![\w(])\(*\s*\"?([a-z_]\w*)\"?\s*\)*\s*(>=|>|<=|<)\s*{_NUMBER}",
                      re.I)
_COMPARE_REVERSED = re.compile(rf"{_NUMBER}\s*(>=|>|<=|<)\s*\(*\s*\"?([a-z_]\w*)\"?", re.I)
_BETWEEN = re.compile(rf"{_COLUMN}\s+BETWEEN\s+{_NUMBER}\s+AND\s+{_NUMBER}", re.I)
_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


def _check_rules(check: str) -> dict[str, Rule]:
    """The column rules one CHECK's text states (PostgreSQL's or DuckDB's spelling)."""
    text = _CAST.sub("", check)
    if re.search(r"\bNOT\b|\bOR\b", text, re.I):
        return {}  # a negation or an alternative: the shapes below would misread it
    found: dict[str, Rule] = {}

    def add(column: str, rule: Rule) -> None:
        name = column.lower()
        found[name] = found[name].merged(rule) if name in found else rule

    for match in _REGEX.finditer(text):
        column = match.group(1) or match.group(3)
        add(column, Rule(pattern=(match.group(2) or match.group(4)).replace("''", "'")))
    for match in _LIKE.finditer(text):
        pattern = match.group(2).replace("''", "'")
        add(match.group(1), Rule(prefix=re.split(r"[%_]", pattern, maxsplit=1)[0]) if
            re.fullmatch(r"[^%_]*%", pattern) else Rule(pattern=_like_regex(pattern)))
    for match in _LENGTH.finditer(text):
        size, op = int(Decimal(match.group(3))), match.group(2)
        add(match.group(1), Rule(
            min_length=size + (op == ">") if op in ("=", ">=", ">") else None,
            max_length=size - (op == "<") if op in ("=", "<=", "<") else None))
    for match in _LENGTH_BETWEEN.finditer(text):
        add(match.group(1), Rule(min_length=int(Decimal(match.group(2))),
                                 max_length=int(Decimal(match.group(3)))))
    for match in _BETWEEN.finditer(_LENGTH_BETWEEN.sub("", text)):
        add(match.group(1), Rule(low=Decimal(match.group(2)), high=Decimal(match.group(3))))
    without_lengths = _LENGTH.sub("", text)
    compares = [(m.group(1), m.group(2), m.group(3)) for m in _COMPARE.finditer(without_lengths)]
    compares += [(m.group(3), _FLIP[m.group(2)], m.group(1))
                 for m in _COMPARE_REVERSED.finditer(without_lengths)]
    for column, op, number in compares:
        if column.upper() in ("AND", "CHECK", "BETWEEN"):
            continue
        value = Decimal(number)
        add(column, Rule(low=value, low_open=op == ">") if op in (">", ">=") else
            Rule(high=value, high_open=op == "<"))
    return found


def _like_regex(pattern: str) -> str:
    return "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c)
                         for c in pattern) + "$"


def column_rules(table: Table, catalog: Catalog | None = None) -> dict[str, Rule]:
    """The rules of `table`'s columns: from its own CHECKs, and for a column with none, from
    the single-column CHECKs of same-named columns of the other tables in `catalog`."""
    own: dict[str, Rule] = {}
    for check in table.checks:
        for column, rule in _check_rules(check).items():
            if table.column(column) is not None:
                own[column] = own[column].merged(rule) if column in own else rule
    for column, check in borrowed_checks(table, catalog):
        for name, rule in _check_rules(check).items():
            if name == column and column not in own:
                own[column] = rule
    return own


def borrowed_checks(table: Table, catalog: Catalog | None) -> list[tuple[str, str]]:
    """(column, CHECK text) of other tables' single-column CHECKs on a column that `table` also
    has and constrains with no CHECK of its own."""
    if catalog is None:
        return []
    names = {c.name.lower() for c in table.columns}
    constrained = {c for check in table.checks for c in _columns_in(check, names)}
    out: list[tuple[str, str]] = []
    for other in catalog.tables.values():
        if other.name == table.name:
            continue
        mine = {c.name.lower() for c in other.columns}
        for check in other.checks:
            used = _columns_in(check, mine)
            if len(used) == 1 and used <= names - constrained:
                out.append((next(iter(used)), check))
    return out


def _columns_in(check: str, names: set[str]) -> set[str]:
    text = re.sub(r"'(?:[^']|'')*'", "''", check.lower())
    return {w for w in re.findall(r"[a-z_][a-z0-9_]*", text) if w in names}


def _from_pattern(pattern: str, i: int) -> str | None:
    """The `i`-th string matching `pattern` (character classes, literals, fixed or bounded
    repetition, alternatives of literals); None for shapes it does not know."""
    body = pattern[1:] if pattern.startswith("^") else pattern
    body = body[:-1] if body.endswith("$") and not body.endswith("\\$") else body
    pieces: list[list[str]] = []  # each position: the characters it may hold
    classes = {"d": "0123456789", "w": "abcdefghijklmnopqrstuvwxyz", "s": " "}
    pos = 0
    while pos < len(body):
        char = body[pos]
        if char == "[":
            end = body.find(":]]", pos) + 2 if body.startswith("[[:", pos) else \
                body.find("]", pos + 2)
            if end < 0 or body[pos + 1] == "^":
                return None
            options = _class(body[pos + 1:end])
            if options is None:
                return None
            pos = end + 1
        elif char == "(":
            end = body.find(")", pos)
            choices = body[pos + 1:end].removeprefix("?:").split("|") if end > 0 else []
            if not choices or any(re.search(r"[\[\](){}*+?.\\^$]", c) for c in choices):
                return None
            options = choices  # a whole alternative per position
            pos = end + 1
        elif char == "\\" and pos + 1 < len(body):
            nxt = body[pos + 1]
            options = list(classes[nxt.lower()]) if nxt.lower() in classes and nxt.islower() \
                else [nxt] if not nxt.isalnum() else []
            if not options:
                return None
            pos += 2
        elif char == ".":
            options, pos = list("abcdefghij"), pos + 1
        elif char in "*+?{}|^$)":
            return None
        else:
            options, pos = [char], pos + 1
        times, pos = _repeat(body, pos)
        if times is None:
            return None
        pieces += [options] * times
    out: list[str] = []
    for options in reversed(pieces):
        out.append(options[i % len(options)])
        i //= len(options)
    return "".join(reversed(out))


def _class(spec: str) -> list[str] | None:
    named = {"[:upper:]": "A-Z", "[:lower:]": "a-z", "[:digit:]": "0-9", "[:alpha:]": "a-zA-Z",
             "[:alnum:]": "a-zA-Z0-9"}
    for name, ranges in named.items():
        spec = spec.replace(name, ranges)
    spec = spec.replace("\\d", "0-9").replace("\\w", "a-z0-9_")
    options: list[str] = []
    pos = 0
    while pos < len(spec):
        if pos + 2 < len(spec) and spec[pos + 1] == "-":
            options += [chr(c) for c in range(ord(spec[pos]), ord(spec[pos + 2]) + 1)]
            pos += 3
        else:
            options.append(spec[pos].replace("\\", ""))
            pos += 1
    return [o for o in dict.fromkeys(options) if o] or None


def _repeat(body: str, pos: int) -> tuple[int | None, int]:
    """How many times the piece before `pos` repeats (the fewest allowed, at least one)."""
    if pos >= len(body):
        return 1, pos
    char = body[pos]
    if char in "+*?":
        return (1 if char == "+" else 0 if char == "?" else 1), pos + 1
    if char == "{":
        match = re.match(r"\{(\d+)(,(\d*))?\}", body[pos:])
        if not match:
            return None, pos
        return max(int(match.group(1)), 1 if match.group(2) else 0), pos + match.end()
    return 1, pos


def _text_value(column: Column, rule: Rule, i: int) -> str | None:
    """A text literal for `column` that follows `rule`, or None for no rule that applies."""
    if rule.pattern is not None:
        value = _from_pattern(rule.pattern, i)
        return None if value is None else "'" + value.replace("'", "''") + "'"
    if rule.prefix is None and rule.min_length is None and rule.max_length is None:
        return None
    base = (rule.prefix or "") + f"{column.name}_{i + 1}"
    if rule.max_length is not None and len(base) > rule.max_length:
        base = (rule.prefix or "") + f"{i + 1}"
        base = base[-rule.max_length:] if len(base) > rule.max_length else base
    if rule.min_length is not None and len(base) < rule.min_length:
        base = base + "x" * (rule.min_length - len(base))
    return "'" + base.replace("'", "''") + "'"


def _number_value(column: Column, rule: Rule, i: int) -> str | None:
    """A number in `rule`'s range for row `i` (distinct per row), typed like `column`."""
    if rule.low is None and rule.high is None:
        return None
    integer = bool(re.match(r"(big|small|tiny|huge|u)?int|integer", column.type))
    step = Decimal(1) if integer else Decimal("0.5")
    if rule.low is not None and rule.high is not None:
        span = rule.high - rule.low
        value = rule.low + span * Decimal((i % 9) + 1) / 10
        if integer:
            value = value.to_integral_value()
            if (value <= rule.low and rule.low_open) or value < rule.low:
                value = rule.low + 1
    elif rule.low is not None:
        value = rule.low + (step if rule.low_open else 0) + i
    else:
        assert rule.high is not None
        value = rule.high - (step if rule.high_open else 0) - i
    scale = re.search(r",\s*(\d+)\)", column.type)
    if integer or (scale and int(scale.group(1)) == 0):
        return str(int(value))
    return str(value.quantize(Decimal("0.01")) if not scale or int(scale.group(1)) >= 2
               else value.quantize(Decimal(1)))


def _constrained(column: Column, rule: Rule, i: int) -> str | None:
    if re.match(r"(big|small|tiny|huge|u)?int|integer|numeric|decimal|double|real|float|money",
                column.type):
        return _number_value(column, rule, i)
    if re.match(r"(text|varchar|character|char|bpchar|string|citext)", column.type) or \
            column.type.startswith(("character varying", "varchar")):
        return _text_value(column, rule, i)
    return None


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
         start: int = 0, catalog: Catalog | None = None) -> list[Row]:
    """`n` rows for `table`; foreign keys point at `parents` rows (by table name). With
    `catalog`, columns without a CHECK follow same-named columns' CHECKs elsewhere."""
    parents = parents or {}
    allowed = allowed_values(table)
    ruled = column_rules(table, catalog)
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
                rule = ruled.get(column.name.lower())
                value = _constrained(column, rule, i) if rule is not None else None
                row[column.name] = value if value is not None else literal(column, i, position)
            if column.is_timestamp or column.type == "date":
                position += 1
        out.append(row)
    return out


def insert_sql(table: Table, batch: Sequence[Row]) -> str:
    """One INSERT of `batch` (every row has the same columns). Rows with no columns (a table
    whose only columns are generated, such as an identity key) take every column's default:
    `()` is no column list on either engine."""
    columns = list(batch[0])
    if not columns:
        if len(batch) == 1 or not table.columns:
            return f"INSERT INTO {table.qualified} DEFAULT VALUES"
        defaults = ", ".join("(DEFAULT)" for _ in batch)
        return f"INSERT INTO {table.qualified} ({quote(table.columns[0].name)}) VALUES {defaults}"
    values = ", ".join("(" + ", ".join(row[c] for c in columns) + ")" for row in batch)
    return (f"INSERT INTO {table.qualified} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES {values}")


class Stored(dict[str, list[Row]]):
    """The rows `populate` stored, by table name; `refused` says which rows it had to leave
    out and why (the engine's words), so a probe reports them instead of failing the answer."""

    refused: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.refused = []


def populate(session: Session, catalog: Catalog, n: int = 3,
             tables: Sequence[Table] | None = None) -> Stored:
    """Insert `n` rows into every table (parents first); the rows that were stored, by table.
    A row the engine refuses, or that fails a CHECK borrowed from a same-named column, is
    retried with other candidates, then left out and reported in `Stored.refused`."""
    stored = Stored()
    for table in tables or catalog.tables_in_fk_order():
        if table.partitioning is None and not table.columns:
            continue
        columns = {c.name.lower() for c in table.columns}
        filled = {c.name.lower() for c in table.columns if not c.generated}
        checks = [c for c in table.checks if _columns_in(c, columns) <= filled]
        checks += [check for _, check in borrowed_checks(table, catalog)]
        kept: list[Row] = []
        for attempt, row in enumerate(rows(table, n, stored, catalog=catalog)):
            why = ""
            for shift in range(4):
                candidate = row if shift == 0 else rows(table, 1, stored, attempt + shift * n,
                                                        catalog)[0]
                why = _breaks(session, candidate, checks)
                if why:
                    continue
                try:
                    with session.savepoint():
                        session.execute(insert_sql(table, [candidate]))
                except Rejected as err:
                    why = str(err)
                    continue
                kept.append(candidate)
                why = ""
                break
            if why:
                stored.refused.append(f"{table.name}: no synthetic row fits ({why})")
        stored[table.name] = kept
    return stored


def _breaks(session: Session, row: Row, checks: Sequence[str]) -> str:
    """The first of `checks` (CHECK texts over the row's columns) that `row` fails, asked of
    the engine before the row is inserted ("" when it passes them all, or when the engine
    cannot evaluate them out of their table): a refused INSERT would end a DuckDB transaction."""
    from .engine import Broken

    if not checks or not row:
        return ""
    values = ", ".join(f"{value} AS {quote(column)}" for column, value in row.items())
    conditions = [re.sub(r"^\s*CHECK\s*", "", check, flags=re.I) for check in checks]
    tests = ", ".join(f"coalesce(NOT ({condition}), FALSE)" for condition in conditions)
    try:
        with session.savepoint():
            found = session.execute(f"SELECT {tests} FROM (SELECT {values}) AS candidate")
    except (Rejected, Broken):
        return ""
    failed = [check for check, broken in zip(checks, found[0] if found else (), strict=False)
              if broken is True]
    return f"breaks {failed[0]}" if failed else ""


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
