"""What the answer's setup created, asked of the engine: tables, columns, keys, indexes, partitions.

Probes take every name from here, never from the answer's text or the case: a correct answer
that calls its date column `calendar_date` must pass. PostgreSQL is read from pg_catalog,
DuckDB from duckdb_tables()/duckdb_columns()/duckdb_constraints()/duckdb_indexes().

Tables are keyed by name: the table's own name, qualified by its schema only where another schema
holds a table of the same name (`staging.crm_contacts` beside `crm_contacts`); the one in the
default schema (public, main) keeps the bare name, as an unqualified reference in SQL means it.
`program.Step.target` names tables the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .engine import Engine, Session

_MONEY_NAME = re.compile(r"(amount|amt|price|cost|total|revenue|fee|tax|discount|balance|"
                         r"salary|payment|paid|spend|budget|margin|net|gross|mrr|arr|value_usd|"
                         r"_usd|_eur|_gbp|money)", re.I)
_TIME_NAME = re.compile(r"(_at|_ts|_time|_timestamp|^ts$|^time$|^timestamp$|occurred|received|"
                        r"created|updated|loaded|ingested|placed|modified)", re.I)
_EXACT = re.compile(r"^(numeric|decimal|money|bigint|integer|int\b|smallint|hugeint|int[248])",
                    re.I)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the engine's spelling, lower case: "numeric(12,2)", "timestamp with time zone"
    nullable: bool
    default: str | None = None
    generated: bool = False  # identity, serial or computed: synthetic rows leave it out

    @property
    def is_timestamp(self) -> bool:
        return self.type.startswith("timestamp")

    @property
    def tz_aware(self) -> bool:
        return self.type in ("timestamp with time zone", "timestamptz")

    @property
    def exact_numeric(self) -> bool:
        return bool(_EXACT.match(self.type))

    @property
    def is_float(self) -> bool:
        return self.type in ("double precision", "real", "double", "float", "float4", "float8")


DEFAULT_SCHEMAS = ("public", "main")


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str  # the referenced table's name in the catalog (see `Table.name`)
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]  # expressions as the engine prints them
    unique: bool
    primary: bool = False
    predicate: str | None = None


@dataclass(frozen=True)
class Partition:
    name: str
    bound: str  # "FOR VALUES FROM ('2024-05-01') TO ('2024-06-01')" or "DEFAULT"

    @property
    def is_default(self) -> bool:
        return self.bound.upper() == "DEFAULT"


@dataclass(frozen=True)
class Partitioning:
    strategy: str  # range | list | hash
    key: tuple[str, ...]
    partitions: tuple[Partition, ...]

    @property
    def has_default(self) -> bool:
        return any(p.is_default for p in self.partitions)


@dataclass(frozen=True)
class Table:
    """One table. `name` is its key in the catalog: the engine's name of the table, qualified
    (`staging.crm_contacts`) only where another schema holds a table of the same name;
    `relation` is always the engine's bare name."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    uniques: tuple[tuple[str, ...], ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    checks: tuple[str, ...] = ()
    indexes: tuple[Index, ...] = ()
    partitioning: Partitioning | None = None
    relation: str = ""  # the engine's bare name; defaults to `name`

    def __post_init__(self) -> None:
        if not self.relation:
            object.__setattr__(self, "relation", self.name.split(".")[-1])

    @property
    def qualified(self) -> str:
        """The name to use in SQL, quoted where needed."""
        name = quote(self.relation)
        return name if self.schema in DEFAULT_SCHEMAS else f"{quote(self.schema)}.{name}"

    @property
    def schema_name(self) -> str:
        """`schema.relation`, always qualified: unique in the database."""
        return f"{self.schema.lower()}.{self.relation.lower()}"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Catalog:
    engine: Engine
    tables: dict[str, Table] = field(default_factory=dict)  # Table.name -> table

    def table(self, name: str, prefer: str | None = None) -> Table | None:
        """The table `name` means: its catalog key, `schema.table`, or a bare name. A bare name
        shared by several schemas means the one in the default schema, else the one in the
        schema of `prefer` (a qualified name, e.g. the table a statement targets), else none
        (ambiguous)."""
        wanted = name.lower().replace('"', "")
        found = self.tables.get(wanted)
        if found is not None:
            return found
        schema, _, relation = wanted.rpartition(".")
        same = [t for t in self.tables.values() if t.relation.lower() == relation]
        if schema:  # project.dataset.table or db.schema.table: the last qualifier counts
            found = self.table_in(schema.split(".")[-1], relation)
            return found or (same[0] if len(same) == 1 else None)
        if len(same) == 1:
            return same[0]
        default = [t for t in same if t.schema.lower() in DEFAULT_SCHEMAS]
        if default:
            return default[0]
        preferred = (prefer or "").lower().rpartition(".")[0]
        return next((t for t in same if t.schema.lower() == preferred), None)

    def table_in(self, schema: str, name: str) -> Table | None:
        """The table `name` of `schema` (the default schema: public or main, either)."""
        schema, name = schema.lower(), name.lower()
        if schema in DEFAULT_SCHEMAS:
            return next((t for t in self.tables.values() if t.relation.lower() == name and
                         t.schema.lower() in DEFAULT_SCHEMAS), None)
        return next((t for t in self.tables.values() if t.schema_name == f"{schema}.{name}"),
                    None)

    def money_columns(self) -> list[tuple[Table, Column]]:
        """Columns whose name says money (amount, price, total, ..._usd) and whose type is
        numeric (so counts and ids named `total_items` are not money)."""
        out = []
        for table in self.tables.values():
            for column in table.columns:
                if not _MONEY_NAME.search(column.name) or column.name.endswith(("_id", "_key")):
                    continue
                if re.search(r"(count|qty|quantity|_items|_pct|percent|rate|ratio|number)",
                             column.name, re.I):
                    continue
                if column.is_float or column.type.startswith(("numeric", "decimal", "money")):
                    out.append((table, column))
        return out

    def time_columns(self) -> list[tuple[Table, Column]]:
        """Timestamp columns (event times): every timestamp, whatever its name."""
        return [(t, c) for t in self.tables.values() for c in t.columns if c.is_timestamp]

    def natural_key(self, table: Table) -> tuple[str, ...]:
        """The business key: a unique key that is not the primary key (SCD2 tables keep the
        natural key unique per version), else the primary key."""
        for unique in table.uniques:
            if unique != table.primary_key:
                return unique
        return table.primary_key

    def tables_in_fk_order(self) -> list[Table]:
        """Every table after the tables its foreign keys reference (cycles broken by name)."""
        done: list[Table] = []
        seen: set[str] = set()

        def visit(table: Table, path: set[str]) -> None:
            if table.name in seen or table.name in path:
                return
            for fk in table.foreign_keys:
                parent = self.tables.get(fk.table.lower())
                if parent is not None and parent.name != table.name:
                    visit(parent, path | {table.name})
            seen.add(table.name)
            done.append(table)

        for name in sorted(self.tables):
            visit(self.tables[name], set())
        return done


def quote(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def read_catalog(session: Session) -> Catalog:
    """The tables the answer created in `session`'s database."""
    if session.engine == "postgres":
        return _postgres(session)
    return _duckdb(session)


# --- PostgreSQL -----------------------------------------------------------------------------------

_PG_TABLES = """
SELECT c.oid, n.nspname, c.relname, c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND n.nspname NOT LIKE 'pg_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname"""
_PG_COLUMNS = """
SELECT a.attrelid, a.attname,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
            ELSE format_type(a.atttypid, a.atttypmod) END,
       NOT (a.attnotnull OR (t.typtype = 'd' AND t.typnotnull)),
       pg_get_expr(d.adbin, d.adrelid),
       a.attidentity <> '' OR a.attgenerated <> ''
           OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%'
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum"""
_PG_CONSTRAINTS = """
SELECT con.conrelid, con.contype,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i),
       fn.nspname || '.' || fc.relname,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i),
       pg_get_constraintdef(con.oid)
FROM pg_constraint con LEFT JOIN pg_class fc ON fc.oid = con.confrelid
     LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.conrelid = ANY(%s) AND con.contype IN ('p', 'u', 'f', 'c')
ORDER BY con.conrelid, con.conname"""
_PG_INDEXES = """
SELECT i.indrelid, ic.relname,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
             FROM generate_series(1, i.indnkeyatts) k),
       i.indisunique, i.indisprimary, pg_get_expr(i.indpred, i.indrelid)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY(%s) ORDER BY i.indrelid, ic.relname"""
_PG_PARTITIONING = """
SELECT p.partrelid, p.partstrat,
       ARRAY(SELECT a.attname FROM unnest(p.partattrs::int2[]) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_partitioned_table p WHERE p.partrelid = ANY(%s)"""
_PG_PARTITIONS = """
SELECT i.inhparent, c.relname, pg_get_expr(c.relpartbound, c.oid)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = ANY(%s) ORDER BY i.inhparent, c.relname"""
_STRATEGY = {"r": "range", "l": "list", "h": "hash"}


def _pg(session: Session, query: str, oids: list[int]) -> list[tuple[object, ...]]:
    array = "ARRAY[" + ",".join(str(int(o)) for o in oids) + "]::oid[]"
    return session.execute(query.replace("%s", array)) or []


def _postgres(session: Session) -> Catalog:
    found = session.execute(_PG_TABLES) or []
    if not found:
        return Catalog("postgres", {})
    oids = [int(str(row[0])) for row in found]
    columns: dict[int, list[Column]] = {}
    for rel, name, typ, nullable, default, generated in _pg(session, _PG_COLUMNS, oids):
        columns.setdefault(int(str(rel)), []).append(
            Column(str(name), str(typ).lower(), bool(nullable),
                   None if default is None else str(default), bool(generated)))
    keys: dict[int, dict[str, list[object]]] = {}
    for rel, kind, cols, ref, ref_cols, definition in _pg(session, _PG_CONSTRAINTS, oids):
        entry = keys.setdefault(int(str(rel)), {"p": [], "u": [], "f": [], "c": []})
        names = tuple(str(c) for c in (cols or []))  # type: ignore[attr-defined]
        if kind == "f":
            entry["f"].append(ForeignKey(names, str(ref),
                                         tuple(str(c) for c in (ref_cols or []))))  # type: ignore[attr-defined]
        elif kind == "c":
            entry["c"].append(str(definition))
        else:
            entry[str(kind)].append(names)
    indexes: dict[int, list[Index]] = {}
    for rel, name, cols, unique, primary, predicate in _pg(session, _PG_INDEXES, oids):
        indexes.setdefault(int(str(rel)), []).append(
            Index(str(name), tuple(str(c) for c in (cols or [])),  # type: ignore[attr-defined]
                  bool(unique), bool(primary), None if predicate is None else str(predicate)))
    parts: dict[int, list[Partition]] = {}
    for parent, name, bound in _pg(session, _PG_PARTITIONS, oids):
        parts.setdefault(int(str(parent)), []).append(Partition(str(name), str(bound)))
    partitioning: dict[int, Partitioning] = {}
    for rel, strategy, cols in _pg(session, _PG_PARTITIONING, oids):
        oid = int(str(rel))
        partitioning[oid] = Partitioning(_STRATEGY.get(str(strategy), str(strategy)),
                                         tuple(str(c) for c in (cols or [])),  # type: ignore[attr-defined]
                                         tuple(parts.get(oid, [])))
    tables: list[Table] = []
    for oid, schema, name, _kind in ((int(str(r[0])), str(r[1]), str(r[2]), r[3]) for r in found):
        entry = keys.get(oid, {"p": [], "u": [], "f": [], "c": []})
        primary = entry["p"][0] if entry["p"] else ()
        tables.append(Table(
            schema, name, tuple(columns.get(oid, [])), primary,  # type: ignore[arg-type]
            tuple(entry["u"]), tuple(entry["f"]), tuple(entry["c"]),  # type: ignore[arg-type]
            tuple(indexes.get(oid, [])), partitioning.get(oid)))
    return Catalog("postgres", _keyed(tables))


# --- DuckDB ---------------------------------------------------------------------------------------

_DUCK_TABLES = """
SELECT schema_name, table_name FROM duckdb_tables()
WHERE database_name = current_database() AND NOT internal AND NOT temporary
ORDER BY schema_name, table_name"""
_DUCK_COLUMNS = """
SELECT schema_name, table_name, column_name, data_type, is_nullable, column_default,
       is_generated
FROM duckdb_columns() WHERE database_name = current_database() AND NOT internal
ORDER BY schema_name, table_name, column_index"""
_DUCK_CONSTRAINTS = """
SELECT schema_name, table_name, constraint_type, constraint_column_names, referenced_table,
       referenced_column_names, constraint_text
FROM duckdb_constraints() WHERE database_name = current_database()
ORDER BY schema_name, table_name, constraint_index"""
_DUCK_INDEXES = """
SELECT schema_name, table_name, index_name, expressions, is_unique, is_primary
FROM duckdb_indexes() WHERE database_name = current_database()
ORDER BY schema_name, table_name, index_name"""


def _duckdb(session: Session) -> Catalog:
    names = [(str(s), str(t)) for s, t in session.execute(_DUCK_TABLES) or []]
    columns: dict[tuple[str, str], list[Column]] = {}
    for schema, table, name, typ, nullable, default, generated in session.execute(
            _DUCK_COLUMNS) or []:
        columns.setdefault((str(schema), str(table)), []).append(
            Column(str(name), _duck_type(str(typ)), bool(nullable),
                   None if default is None else str(default),
                   bool(generated) or str(default or "").startswith("nextval(")))
    keys: dict[tuple[str, str], dict[str, list[object]]] = {}
    for schema, table, kind, cols, ref, ref_cols, text in session.execute(
            _DUCK_CONSTRAINTS) or []:
        entry = keys.setdefault((str(schema), str(table)), {"p": [], "u": [], "f": [], "c": []})
        names_ = tuple(str(c) for c in cols or [])
        if kind == "PRIMARY KEY":
            entry["p"].append(names_)
        elif kind == "UNIQUE":
            entry["u"].append(names_)
        elif kind == "FOREIGN KEY":
            # DuckDB names no schema for the referenced table: the referencing one's first
            entry["f"].append(ForeignKey(names_, f"{schema}.{str(ref).lower()}",
                                         tuple(str(c) for c in ref_cols or [])))
        elif kind == "CHECK":
            entry["c"].append(str(text))
    indexes: dict[tuple[str, str], list[Index]] = {}
    for schema, table, name, exprs, unique, primary in session.execute(_DUCK_INDEXES) or []:
        cols = tuple(c.strip() for c in str(exprs or "").strip("[]").split(",") if c.strip())
        indexes.setdefault((str(schema), str(table)), []).append(
            Index(str(name), cols, bool(unique), bool(primary)))
    tables: list[Table] = []
    for schema, name in names:
        entry = keys.get((schema, name), {"p": [], "u": [], "f": [], "c": []})
        primary = entry["p"][0] if entry["p"] else ()
        tables.append(Table(
            schema, name, tuple(columns.get((schema, name), [])), primary,  # type: ignore[arg-type]
            tuple(entry["u"]), tuple(entry["f"]), tuple(entry["c"]),  # type: ignore[arg-type]
            tuple(indexes.get((schema, name), []))))
    return Catalog("duckdb", _keyed(tables))


def _keyed(tables: list[Table]) -> dict[str, Table]:
    """`tables` (named `schema.relation` nowhere yet) keyed and named as the Catalog says:
    bare names, qualified where two schemas share one (the default schema's keeps it bare);
    foreign keys (given as `schema.relation`) renamed to match."""
    by_relation: dict[str, list[Table]] = {}
    for table in tables:
        by_relation.setdefault(table.relation.lower(), []).append(table)

    def key(table: Table) -> str:
        shared = len(by_relation[table.relation.lower()]) > 1
        return f"{table.schema.lower()}.{table.relation}" if shared and \
            table.schema.lower() not in DEFAULT_SCHEMAS else table.relation

    names = {t.schema_name: key(t) for t in tables}

    def referenced(qualified: str) -> str:
        if qualified.lower() in names:
            return names[qualified.lower()]
        relation = qualified.lower().rpartition(".")[2]
        same = [names[t.schema_name] for t in by_relation.get(relation, [])]
        return same[0] if len(same) == 1 else relation

    out: dict[str, Table] = {}
    for table in tables:
        fks = tuple(ForeignKey(fk.columns, referenced(fk.table), fk.ref_columns)
                    for fk in table.foreign_keys)
        name = key(table)
        out.setdefault(name.lower(), replace(table, name=name, relation=table.relation,
                                             foreign_keys=fks))
    return out


def _duck_type(typ: str) -> str:
    lowered = typ.lower()
    return {"timestamp with time zone": "timestamp with time zone",
            "timestamp": "timestamp without time zone"}.get(lowered, lowered)
