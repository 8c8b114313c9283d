"""SQL scorers over the answer's fenced SQL blocks, parsed with sqlglot in the case's dialect.

Every scorer reads the blocks through `parsed_blocks`, which parses each block once per answer
and dialect. A statement sqlglot can only keep as an opaque command (for example CREATE POLICY)
counts as parsed, but the AST checks cannot look inside it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..answers import Answer, CodeBlock, fenced_blocks
from . import Context, Score, ScoreFn, scorer

if TYPE_CHECKING:
    from sqlglot import exp


@dataclass(frozen=True)
class ParsedBlock:
    block: CodeBlock
    statements: tuple[exp.Expression, ...]
    error: str | None

    @property
    def where(self) -> str:
        return f"SQL block {self.block.index} (line {self.block.line})"


_JINJA_REF = re.compile(r"\{\{\s*ref\(\s*['\"]([\w.]+)['\"]\s*\)\s*\}\}")
_JINJA_SOURCE = re.compile(
    r"\{\{\s*source\(\s*['\"](\w+)['\"]\s*,\s*['\"](\w+)['\"]\s*\)\s*\}\}")
_JINJA_OTHER = re.compile(r"\{\{.*?\}\}", re.S)
_JINJA_LINE = re.compile(r"^[ \t]*\{\{.*?\}\}[ \t]*$", re.M)  # `{{ config(...) }}` alone
_JINJA_BLOCK = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.S)


def without_jinja(code: str) -> str:
    """dbt models are SQL with Jinja: `{{ ref('orders') }}` becomes `orders`, `{{ source('shop',
    'orders') }}` becomes `shop.orders`, an expression alone on its line (`{{ config(...) }}`)
    and tags (`{% if %}`) nothing, other expressions a placeholder identifier."""
    if "{{" not in code and "{%" not in code and "{#" not in code:
        return code
    code = _JINJA_REF.sub(lambda m: m.group(1), code)
    code = _JINJA_SOURCE.sub(lambda m: f"{m.group(1)}.{m.group(2)}", code)
    code = _JINJA_LINE.sub("", code)
    code = _JINJA_OTHER.sub("jinja_expression", code)
    return _JINJA_BLOCK.sub("", code)


_OVERRIDING = re.compile(r"\bOVERRIDING\s+(SYSTEM|USER)\s+VALUE\b", re.I)


def parse_sql(code: str, dialect: str) -> tuple[tuple[Any, ...], str | None]:
    """Statements of `code` in `dialect` (dbt's Jinja replaced), or the first parse error as
    one readable sentence."""
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # no warnings on opaque commands
    # sqlglot has no grammar for PostgreSQL's identity override, which changes no statement's
    # shape; blanked to spaces, so error positions still point into the answer's text
    code = _OVERRIDING.sub(lambda m: " " * len(m.group()), code)
    try:
        statements = tuple(
            s for s in sqlglot.parse(without_jinja(code), read=dialect) if s is not None)
    except ParseError as err:
        detail = err.errors[0] if err.errors else {}
        desc = str(detail.get("description") or err).split("\n")[0]
        where = f" at line {detail['line']}, column {detail['col']}" if detail.get("line") else ""
        near = detail.get("highlight")
        return (), f"{desc}{where}" + (f" near {near!r}" if near else "")
    except TokenError as err:
        return (), f"cannot tokenize: {str(err).splitlines()[0]}"
    return statements, None


def parsed_blocks(answer: Answer, dialect: str) -> tuple[ParsedBlock, ...]:
    """The answer's SQL blocks, each parsed once per dialect (cached on the answer). A block
    the execution's Program reads statement by statement shares its trees, as parsing the
    block whole gives the same ones: sqlglot parses each statement once per answer."""
    from ..execution.program import block_trees

    key = ("sql", dialect)
    cached = answer.cache.get(key)
    if cached is None:
        cached = tuple(_parsed_block(b, dialect, block_trees(answer, b.code, dialect))
                       for b in answer.sql_blocks)
        answer.cache[key] = cached
    return cached


def _parsed_block(block: CodeBlock, dialect: str,
                  shared: tuple[Any, ...] | None) -> ParsedBlock:
    if shared is not None and not _OVERRIDING.search(block.code):
        return ParsedBlock(block, shared, None)
    return ParsedBlock(block, *parse_sql(block.code, dialect))


def statements(answer: Answer, dialect: str) -> Iterator[tuple[ParsedBlock, exp.Expression]]:
    for parsed in parsed_blocks(answer, dialect):
        for statement in parsed.statements:
            yield parsed, statement


def _no_sql(dialect_note: str) -> Score:
    return Score.fail(f"the answer has no fenced SQL block (```sql){dialect_note}")


def _name(node: Any) -> str:
    """Unqualified, lower-case name of a table, column or identifier node."""
    return str(getattr(node, "name", "") or "").lower()


def create_tables(answer: Answer, dialect: str) -> Iterator[tuple[ParsedBlock, exp.Create]]:
    """CREATE TABLE statements that define columns (not CTAS, LIKE, or PARTITION OF)."""
    from sqlglot import exp

    for parsed, statement in statements(answer, dialect):
        if (
            isinstance(statement, exp.Create)
            and str(statement.args.get("kind") or "").upper() == "TABLE"
            and isinstance(statement.this, exp.Schema)
            and any(isinstance(e, exp.ColumnDef) for e in statement.this.expressions)
        ):
            yield parsed, statement


def table_name(create: exp.Create) -> str:
    target = create.this.this if hasattr(create.this, "this") else create.this
    return _name(target)


def column_defs(create: exp.Create) -> list[exp.ColumnDef]:
    from sqlglot import exp

    return [e for e in create.this.expressions if isinstance(e, exp.ColumnDef)]


def primary_key_columns(create: exp.Create) -> set[str]:
    from sqlglot import exp

    columns: set[str] = set()
    for definition in column_defs(create):
        if any(isinstance(c.args.get("kind"), exp.PrimaryKeyColumnConstraint)
               for c in definition.constraints):
            columns.add(_name(definition))
    for constraint in create.this.expressions:
        pk = (constraint if isinstance(constraint, exp.PrimaryKey)
              else constraint.find(exp.PrimaryKey))
        if isinstance(pk, exp.PrimaryKey):
            columns.update(_name(c) for c in pk.expressions)
    return columns


def _tables_wanted(names: list[str] | None) -> set[str] | None:
    return {n.lower().split(".")[-1] for n in names} if names else None


def _find_table(answer: Answer, dialect: str, table: str) -> exp.Create | None:
    wanted = table.lower().split(".")[-1]
    for _, create in create_tables(answer, dialect):
        if table_name(create) == wanted:
            return create
    return None


# --- scorers -------------------------------------------------------------------------------------


_PLACEHOLDER = re.compile(r"<[A-Za-z][\w .-]{0,40}>")


def _verifies(answer: Answer, block: CodeBlock) -> bool:
    """Whether the block sits under the answer's How to verify heading (or the like): a spot
    check of the answer, not part of the work it proposes."""
    from ..execution.program import section_heading, verifies

    return verifies(section_heading(answer, block.line))


def _illustrative(answer: Answer, parsed: ParsedBlock) -> bool:
    """A How to verify block written around a `<placeholder>` (`SELECT ... FROM (<query>)`)."""
    return bool(_PLACEHOLDER.search(parsed.block.code)) and _verifies(answer, parsed.block)


@scorer("sql_parses")
def sql_parses(*, dialect: str | None = None, min_blocks: int = 1) -> ScoreFn:
    """Every fenced SQL block parses in the dialect (the case's unless `dialect` is given).

    Passes: a ```sql block `MERGE INTO orders o USING stg s ON o.id = s.id WHEN MATCHED ...` as
            snowflake.
    Fails:  `SELECT a, FROM t` with "SQL block 1 (line 3) does not parse as snowflake:
            Expected ... at line 1, column 15".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        name, note = ctx.dialect_for(answer, dialect)
        blocks = parsed_blocks(answer, name)
        if len(blocks) < min_blocks:
            return Score.fail(
                f"expected at least {min_blocks} fenced SQL block(s), found {len(blocks)}{note}"
            )
        bad = [p for p in blocks if p.error and not _illustrative(answer, p)]
        if bad:
            first = bad[0]
            return Score.fail(
                f"{first.where} does not parse as {name}: {first.error}"
                + (f" (and {len(bad) - 1} more block(s))" if len(bad) > 1 else "") + note,
                1 - len(bad) / len(blocks),
            )
        count = sum(len(p.statements) for p in blocks)
        shown = [p.where for p in blocks if p.error]
        return Score.ok(f"{len(blocks)} SQL block(s), {count} statement(s), parse as {name}{note}"
                        + (f"; not parsed: {', '.join(shown)} (a How to verify sketch around a "
                           "<placeholder>)" if shown else ""))

    return score


def _normalised(statement: exp.Expression, dialect: str) -> str:
    return re.sub(r"\s+", " ", statement.sql(dialect=dialect)).strip().lower()


@functools.lru_cache(maxsize=256)
def _quoted_statements(prompt: str, dialect: str) -> frozenset[str]:
    """The normalised SQL statements the user's prompt quotes (parsed once per case)."""
    return frozenset(_normalised(s, dialect) for block in fenced_blocks(prompt)
                     for s in parse_sql(block.code, dialect)[0])


@functools.lru_cache(maxsize=256)
def _star_tables_kept(prompt: str, dialect: str) -> frozenset[str]:
    """Tables whose every column the user's quoted query returns (`SELECT *`, `v.*`) while the
    prompt names no other column of theirs: a rewrite must return the same columns, so it may
    keep the `*`. A prompt that lists the columns it needs ("the report needs order_id,
    customer_id ...") keeps none."""
    from sqlglot import exp

    blocks = fenced_blocks(prompt)
    trees = [s for block in blocks for s in parse_sql(block.code, dialect)[0]]
    starred = {_name(t) for tree in trees for select in tree.find_all(exp.Select)
               if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column)
                                                  and isinstance(p.this, exp.Star))
                      for p in select.expressions)
               for t in select.find_all(exp.Table)}
    if not starred:
        return frozenset()
    used = {_name(c) for tree in trees for c in tree.find_all(exp.Column)}
    named = {w.lower() for w in re.findall(r"\b[A-Za-z]\w*_\w+\b", Answer(prompt, "file").prose)}
    return frozenset() if named - used - starred else frozenset(starred)


@scorer("sql_no_select_star")
def sql_no_select_star(*, dialect: str | None = None) -> ScoreFn:
    """No proposed query selects `*` (COUNT(*) is fine; queries quoted from the prompt, and the
    spot checks of a How to verify section, are not proposals and are skipped; a table the
    user's own query returns whole, naming no other column of it, may stay `*`).

    Passes: `SELECT o.order_id, o.total FROM orders o WHERE ...`.
    Fails:  `SELECT * FROM orders WHERE ...` with "SQL block 2 (line 9) selects * from orders;
            name the columns the query needs".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        from sqlglot import exp

        name, note = ctx.dialect_for(answer, dialect)
        if not answer.sql_blocks:
            return _no_sql(note)
        quoted = _quoted_statements(ctx.prompt, name)
        kept = _star_tables_kept(ctx.prompt, name)
        for parsed, statement in statements(answer, name):
            if quoted and _normalised(statement, name) in quoted:
                continue
            if _verifies(answer, parsed.block):
                continue
            for select in statement.find_all(exp.Select):
                for projection in select.expressions:
                    if isinstance(projection, exp.Star) or (
                        isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
                    ):
                        source = select.args.get("from_") or select.args.get("from")
                        table = _name(source.this) if source is not None else "a subquery"
                        if table in kept:
                            continue
                        return Score.fail(
                            f"{parsed.where} selects * from {table or 'a subquery'}; name the "
                            f"columns the query needs{note}"
                        )
        return Score.ok(f"no proposed query selects *{note}")

    return score


@scorer("sql_upsert")
def sql_upsert(*, dialect: str | None = None, table: str | None = None) -> ScoreFn:
    """An idempotent write: MERGE, INSERT ... ON CONFLICT DO UPDATE, INSERT OR REPLACE or
    INSERT OVERWRITE (into `table`, when given).

    Passes: `INSERT INTO orders ... ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status`.
    Fails:  `INSERT INTO orders SELECT ... FROM stg_orders` with "no MERGE or upsert into
            orders: a re-run inserts the same rows again".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        from sqlglot import exp

        name, note = ctx.dialect_for(answer, dialect)
        if not answer.sql_blocks:
            return _no_sql(note)
        wanted = table.lower().split(".")[-1] if table else None
        for parsed, statement in statements(answer, name):
            for node in statement.find_all(exp.Merge, exp.Insert):
                target = node.this.this if isinstance(node.this, exp.Schema) else node.this
                if wanted and _name(target) != wanted:
                    continue
                kind = None
                if isinstance(node, exp.Merge):
                    kind = "MERGE"
                else:
                    conflict = node.args.get("conflict")
                    action = str(conflict.args.get("action") or "") if conflict else ""
                    if conflict is not None and ("UPDATE" in action.upper()
                                                 or conflict.args.get("duplicate")):
                        kind = "INSERT ... ON CONFLICT DO UPDATE"
                    elif str(node.args.get("alternative") or "").upper() == "REPLACE":
                        kind = "INSERT OR REPLACE"
                    elif node.args.get("overwrite"):
                        kind = "INSERT OVERWRITE"
                if kind:
                    return Score.ok(f"{parsed.where} has {kind} into {_name(target)}{note}")
        into = f" into {table}" if table else ""
        return Score.fail(f"no MERGE or upsert{into}: a re-run inserts the same rows again{note}")

    return score


@scorer("sql_primary_key")
def sql_primary_key(*, dialect: str | None = None, tables: list[str] | None = None) -> ScoreFn:
    """Every created table (or each of `tables`) declares a PRIMARY KEY.

    Passes: `CREATE TABLE orders (order_id BIGINT PRIMARY KEY, ...)`, or a table constraint
            `PRIMARY KEY (order_id, line_no)`.
    Fails:  `CREATE TABLE order_lines (order_id BIGINT, line_no INT, ...)` with "no primary key
            on: order_lines".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        name, note = ctx.dialect_for(answer, dialect)
        wanted = _tables_wanted(tables)
        seen: dict[str, bool] = {}
        for _, create in create_tables(answer, name):
            seen[table_name(create)] = bool(primary_key_columns(create))
        if wanted:
            missing_tables = sorted(wanted - set(seen))
            if missing_tables:
                return Score.fail(f"no CREATE TABLE for: {', '.join(missing_tables)}{note}")
            seen = {t: v for t, v in seen.items() if t in wanted}
        if not seen:
            return Score.fail(f"the answer creates no table{note}")
        without = sorted(t for t, has in seen.items() if not has)
        if without:
            return Score.fail(f"no primary key on: {', '.join(without)}{note}",
                              1 - len(without) / len(seen))
        return Score.ok(f"primary key on {', '.join(sorted(seen))}{note}")

    return score


@scorer("sql_not_null")
def sql_not_null(*, table: str, columns: list[str], dialect: str | None = None) -> ScoreFn:
    """The named columns of `table` are NOT NULL (a primary-key column counts).

    Passes: `{table: events, columns: [user_id]}` on `user_id BIGINT NOT NULL`.
    Fails:  the same on `user_id BIGINT` with "events.user_id is nullable; add NOT NULL".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        from sqlglot import exp

        name, note = ctx.dialect_for(answer, dialect)
        create = _find_table(answer, name, table)
        if create is None:
            return Score.fail(f"no CREATE TABLE {table} in the answer{note}")
        keys = primary_key_columns(create)
        defined = {_name(d): d for d in column_defs(create)}
        problems = []
        for column in columns:
            definition = defined.get(column.lower())
            if definition is None:
                problems.append(f"{table}.{column} is not defined")
            elif column.lower() not in keys and not any(
                isinstance(c.args.get("kind"), exp.NotNullColumnConstraint)
                and not c.args["kind"].args.get("allow_null")
                for c in definition.constraints
            ):
                problems.append(f"{table}.{column} is nullable; add NOT NULL")
        if problems:
            return Score.fail("; ".join(problems) + note, 1 - len(problems) / len(columns))
        return Score.ok(f"{table}: {', '.join(columns)} are NOT NULL{note}")

    return score


_TZ_AWARE = {"TIMESTAMPTZ", "TIMESTAMPLTZ", "TIMETZ"}
_NAIVE = {"TIMESTAMP", "TIMESTAMPNTZ", "DATETIME", "DATETIME2", "DATETIME64", "SMALLDATETIME",
          "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}


@scorer("sql_tz_aware")
def sql_tz_aware(
    *, dialect: str | None = None, table: str | None = None, columns: list[str] | None = None
) -> ScoreFn:
    """Event times are time-zone aware: every timestamp column (or the named `columns`) is
    TIMESTAMPTZ / TIMESTAMP WITH TIME ZONE / TIMESTAMP_TZ or _LTZ (BigQuery TIMESTAMP is UTC).

    Passes: `occurred_at TIMESTAMPTZ NOT NULL` (postgres), `occurred_at TIMESTAMP` (bigquery).
    Fails:  `occurred_at TIMESTAMP` (postgres) or `TIMESTAMP_NTZ` (snowflake) with
            "events.occurred_at is TIMESTAMP without a time zone; use TIMESTAMPTZ".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        name, note = ctx.dialect_for(answer, dialect)
        wanted = {c.lower() for c in columns} if columns else None
        checked: list[str] = []
        naive: list[str] = []
        for _, create in create_tables(answer, name):
            tname = table_name(create)
            if table and tname != table.lower().split(".")[-1]:
                continue
            for definition in column_defs(create):
                kind = definition.args.get("kind")
                if kind is None:
                    continue
                type_name = kind.this.name
                col = _name(definition)
                if wanted is not None and col not in wanted:
                    continue
                if type_name in _TZ_AWARE or type_name in _NAIVE:
                    checked.append(f"{tname}.{col}")
                    if type_name in _NAIVE:
                        naive.append(f"{tname}.{col} is {kind.sql(dialect=name)} without a "
                                     "time zone")
        if wanted is not None:
            found = {c.split(".")[1] for c in checked}
            missing = sorted(wanted - found)
            if missing:
                return Score.fail(f"no timestamp column named {', '.join(missing)}{note}")
        if naive:
            fix = {"snowflake": "TIMESTAMP_TZ", "bigquery": "TIMESTAMP"}.get(name, "TIMESTAMPTZ")
            return Score.fail("; ".join(naive) + f"; use {fix}{note}",
                              1 - len(naive) / len(checked))
        if not checked:
            return Score.fail(f"the answer declares no timestamp column{note}")
        return Score.ok(f"{len(checked)} timestamp column(s) are time-zone aware{note}")

    return score


@scorer("sql_filter", version=2)
def sql_filter(*, column: str, dialect: str | None = None) -> ScoreFn:
    """Some query, update or delete filters on `column` in a WHERE or HAVING clause (a join
    condition or a window's ORDER BY is not a filter). `column` is a name, or a pattern the
    filtered column must match whole where the prompt fixes no name.

    Passes: `{column: updated_at}` on `... WHERE updated_at > :watermark`.
    Fails:  the same on a query with no predicate on updated_at, with "no filter on
            updated_at: every run reads the whole table".
    """
    plain = re.fullmatch(r"[\w.]+", column) is not None  # `orders.updated_at`: the column
    wanted = _column_pattern(column.split(".")[-1] if plain else column)

    def score(answer: Answer, ctx: Context) -> Score:
        from sqlglot import exp

        name, note = ctx.dialect_for(answer, dialect)
        if not answer.sql_blocks:
            return _no_sql(note)
        for parsed, statement in statements(answer, name):
            for clause in statement.find_all(exp.Where, exp.Having):
                if any(wanted.fullmatch(_name(c)) for c in clause.find_all(exp.Column)):
                    return Score.ok(f"{parsed.where} filters on {column}{note}")
        return Score.fail(f"no filter on {column}: every run reads the whole table{note}")

    return score


def _column_pattern(column: str) -> re.Pattern[str]:
    """A case's column name or pattern (from a file we do not trust: bounded, must compile)."""
    if len(column) > 200:
        raise ValueError("column: a pattern of at most 200 characters")
    try:
        return re.compile(column, re.IGNORECASE)
    except re.error as err:
        raise ValueError(f"column: not a regular expression: {err}") from None


@scorer("sql_partition", version=2)
def sql_partition(
    *, dialect: str | None = None, column: str | None = None, cluster_counts: bool = False
) -> ScoreFn:
    """A table is partitioned: PARTITION BY in a CREATE TABLE (on `column`, when given), a
    PARTITION OF child (only when no column is asked for: a child does not show the key), or
    (when `cluster_counts`, for Snowflake) a CLUSTER BY key.

    `column` is a name, or a pattern a key column must match whole where the prompt fixes no
    name (`.*(date|day).*`: the snapshot's date, whatever the answer calls it).

    Passes: `CREATE TABLE events (...) PARTITION BY RANGE (occurred_at)`.
    Fails:  `CREATE TABLE events (...)` with "no PARTITION BY clause in any CREATE TABLE".
    """
    key = _column_pattern(column) if column else None

    def score(answer: Answer, ctx: Context) -> Score:
        from sqlglot import exp

        name, note = ctx.dialect_for(answer, dialect)
        if not answer.sql_blocks:
            return _no_sql(note)
        kinds: tuple[type[exp.Expression], ...] = (exp.PartitionedByProperty,
                                                   exp.PartitionedOfProperty)
        if cluster_counts:
            kinds = (*kinds, exp.ClusterProperty)
        other: list[str] = []
        for parsed, statement in statements(answer, name):
            for prop in statement.find_all(*kinds):
                columns = {_name(c) for c in prop.find_all(exp.Column, exp.Identifier)}
                child = isinstance(prop, exp.PartitionedOfProperty)
                if key is None or (not child and any(key.fullmatch(c) for c in columns)):
                    return Score.ok(f"{parsed.where} has {prop.sql(dialect=name)[:60]}{note}")
                other.extend(sorted(columns))
        if other:
            return Score.fail(f"partitioned on {', '.join(other)}, not on {column}{note}")
        what = "PARTITION BY (or CLUSTER BY)" if cluster_counts else "PARTITION BY"
        return Score.fail(f"no {what} clause in any CREATE TABLE{note}")

    return score


@scorer("sql_index")
def sql_index(
    *, table: str, columns: list[str] | None = None, dialect: str | None = None
) -> ScoreFn:
    """A CREATE INDEX on `table` whose leading key columns are `columns`, in that order.

    Passes: `{table: orders, columns: [customer_id, created_at]}` on
            `CREATE INDEX ON orders (customer_id, created_at DESC)`.
    Fails:  the same on `CREATE INDEX ON orders (created_at, customer_id)` with "no index on
            orders leading with (customer_id, created_at); found: (created_at, customer_id)".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        from sqlglot import exp

        name, note = ctx.dialect_for(answer, dialect)
        if not answer.sql_blocks:
            return _no_sql(note)
        wanted_table = table.lower().split(".")[-1]
        wanted = [c.lower() for c in columns or []]
        found: list[str] = []
        for parsed, statement in statements(answer, name):
            index = statement.this if isinstance(statement, exp.Create) else None
            if not isinstance(index, exp.Index) or _name(index.args.get("table")) != wanted_table:
                continue
            params = index.args.get("params")
            keys = [_name(c) for o in (params.args.get("columns") or [] if params else [])
                    for c in [o.this if isinstance(o, exp.Ordered) else o]]
            if keys[: len(wanted)] == wanted:
                return Score.ok(f"{parsed.where} indexes {table} ({', '.join(keys)}){note}")
            found.append(f"({', '.join(keys)})")
        lead = f" leading with ({', '.join(wanted)})" if wanted else ""
        seen = f"; found: {', '.join(found)}" if found else ""
        return Score.fail(f"no index on {table}{lead}{seen}{note}")

    return score


@scorer("sql_foreign_key")
def sql_foreign_key(*, table: str, references: str, dialect: str | None = None) -> ScoreFn:
    """`table` declares a foreign key to `references` (column REFERENCES or FOREIGN KEY).

    Passes: `{table: fact_sales, references: dim_date}` on
            `date_key INT NOT NULL REFERENCES dim_date (date_key)`.
    Fails:  the same when fact_sales has a bare `date_key INT`, with "fact_sales has no foreign
            key to dim_date".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        from sqlglot import exp

        name, note = ctx.dialect_for(answer, dialect)
        create = _find_table(answer, name, table)
        if create is None:
            return Score.fail(f"no CREATE TABLE {table} in the answer{note}")
        target = references.lower().split(".")[-1]
        for ref in create.find_all(exp.Reference):
            ref_table = ref.this.this if isinstance(ref.this, exp.Schema) else ref.this
            if _name(ref_table) == target:
                return Score.ok(f"{table} references {references}{note}")
        return Score.fail(f"{table} has no foreign key to {references}{note}")

    return score
