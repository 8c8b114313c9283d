"""`star`: every table has a primary key, facts reference the dimensions' keys, money is exact,
SCD2 change statements keep one current row per natural key even when a sale already points at
the version they close, and the answer's analytical query runs on synthetic data.

Property ids:

- `primary-keys`: every table has a primary key that refuses a duplicate.
- `facts-reference-dimensions`: each fact's `*_key` columns reference a dimension by a foreign
  key that refuses an orphan; where the engine does not enforce foreign keys (Snowflake,
  BigQuery) a dimension key of the same name is enough. A key whose dimension the answer never
  creates is reported, not failed.
- `exact-money`: money columns are exact numerics.
- `scd2-one-current`: the answer's SCD2 statements, run twice after every synthetic fact row
  points at a current version, leave one current row per natural key, are not refused (DuckDB
  refuses an UPDATE of a referenced row when the columns it sets are indexed), and every fact
  row still finds its version.
- `example-query-runs`: the answer's queries that read a fact run on synthetic rows, and one of
  them aggregates facts by a dimension (a missing example query is a non-blocking failure).
- `history-kept`: an attribute the user says changes over time ("customers change segment and
  country") is kept as of each fact: in a versioned dimension (valid_from/valid_to, is_current,
  ...) or on the fact itself, never only in a dimension that overwrites it.
- `tz-aware`: where the prompt speaks of time zones, the timestamps are time-zone aware (n/a
  otherwise: a star fed from one zone may keep local times).
"""

from __future__ import annotations

import re

from ..catalog import Catalog, Table
from ..engine import Broken, Rejected, Session
from ..program import WAREHOUSES
from ..properties import Finding, ProbeInput, family
from ..scd2 import natural_key, one_current, open_versions, scd2_tables, sources, stage_changes
from ..synth import Row, allowed_values, insert_sql, orphan, populate, rows
from .schema import STAGING, _with_parents, exact_money, scratch, tz_aware

PROPERTIES = ("primary-keys", "facts-reference-dimensions", "exact-money", "scd2-one-current",
              "example-query-runs", "history-kept", "tz-aware")
_FACT_NAME = re.compile(r"^(fact|fct|f)_|_(fact|facts|fct)$", re.I)


@family("star", properties=PROPERTIES)
def star_family(probe: ProbeInput) -> list[Finding]:
    execution = probe.execution
    if not execution.catalog.tables:
        return [Finding.failed(p, "the answer's setup creates no table") for p in PROPERTIES]
    return [dimension_primary_keys(probe), facts_reference_dimensions(probe),
            exact_money(execution.catalog), scd2_one_current(probe), example_query_runs(probe),
            history_kept(probe), zoned_times(probe)]




def dimension_primary_keys(probe: ProbeInput) -> Finding:
    """Every fact and dimension has a primary key that refuses a duplicate; staging tables
    (`stg_*`, `*_staging`, ...) hold raw batches and need none."""
    prop = "primary-keys"
    catalog = probe.execution.catalog
    modelled = [t for t in catalog.tables_in_fk_order() if not STAGING.search(t.name)]
    missing = [t.name for t in modelled if not t.primary_key]
    if missing:
        return Finding.failed(prop, f"no primary key on {', '.join(missing)}")
    for table in modelled:
        with scratch(probe) as session:
            stored = populate(session, catalog, 1, _with_parents(catalog, table))
            first = stored.get(table.name)
            if not first or any(c not in first[0] for c in table.primary_key):
                continue  # no row stored, or the engine generates the key
            other = rows(table, 1, stored, start=1)[0]
            again = {c: first[0][c] if c in table.primary_key else other.get(c, v)
                     for c, v in first[0].items()}
            try:
                with session.savepoint():
                    session.execute(insert_sql(table, [again]))
            except Rejected:
                continue
        return Finding.failed(prop, f"{table.name} stored a second row with the same "
                              f"{', '.join(table.primary_key)}")
    return Finding.passed(prop, f"all {len(modelled)} fact and dimension table(s) have a "
                          "primary key that refuses a duplicate")


# --- history -----------------------------------------------------------------------------------

_CHANGES = re.compile(r"\b(chang(e|es|ed|ing)|evolv(e|es|ing)|moves?|history)\b", re.I)
_VERSIONED = re.compile(r"^(valid|effective|eff|row|version)_|_(from|to|until|start|end|version)$|"
                        r"^(is_current|current_flag|is_latest|version)$", re.I)


def _changing_attributes(prompt: str, catalog: Catalog) -> set[str]:
    """Columns of the answer named by a sentence of the prompt that says they change: the
    descriptive attributes, not keys or the change's own timestamp."""
    columns = {c.name.lower() for t in catalog.tables.values() for c in t.columns
               if not re.search(r"(_id|_key|_at|_on|_date|_ts)$", c.name, re.I)}
    out: set[str] = set()
    for sentence in re.split(r"(?<=[.;:!?])\s+", prompt):
        if _CHANGES.search(sentence):
            out |= {w for w in re.findall(r"[a-z_]+", sentence.lower()) if w in columns}
    return out


def history_kept(probe: ProbeInput) -> Finding:
    """The attributes the user says change are kept as of each fact: the fact holds them, or a
    dimension holding them keeps versions."""
    prop = "history-kept"
    catalog = probe.execution.catalog
    changing = _changing_attributes(probe.prompt, catalog)
    if not changing:
        return Finding.not_applicable(prop, "the prompt names no attribute that changes")
    facts = {t.name for t in fact_tables(catalog)}
    overwritten: list[str] = []
    for name in sorted(changing):
        holders = [t for t in catalog.tables.values() if not STAGING.search(t.name)
                   and any(c.name.lower() == name for c in t.columns)]
        if not holders or any(t.name in facts or any(_VERSIONED.search(c.name) for c in t.columns)
                              for t in holders):
            continue
        overwritten.append(f"{name} ({', '.join(t.name for t in holders)})")
    if overwritten:
        return Finding.failed(prop, "the prompt says these change, but only a dimension without "
                              f"versions holds them, so facts report today's value: "
                              f"{'; '.join(overwritten)}")
    return Finding.passed(prop, f"{', '.join(sorted(changing))}: kept as of each fact")


_ZONES = re.compile(r"time[- ]?zones?\b", re.I)


def zoned_times(probe: ProbeInput) -> Finding:
    """Timestamps carry a zone when the user says the events happen in several time zones."""
    if not _ZONES.search(probe.prompt):
        return Finding.not_applicable("tz-aware", "the prompt names no time zones")
    return tz_aware(probe.execution.catalog)


# --- facts and dimensions -------------------------------------------------------------------------


def dimension_keys(catalog: Catalog) -> dict[str, Table]:
    """Single-column primary or unique keys of tables, by column name: what a fact's
    `*_key` column can point at."""
    out: dict[str, Table] = {}
    for table in catalog.tables.values():
        for key in (table.primary_key, *table.uniques):
            if len(key) == 1:
                out.setdefault(key[0], table)
    return out


def fact_tables(catalog: Catalog) -> list[Table]:
    """Tables named as facts, or referencing two or more other tables (by foreign key or by
    `*_key` columns that are other tables' keys)."""
    keys = dimension_keys(catalog)
    out = []
    for table in catalog.tables.values():
        referenced = {fk.table for fk in table.foreign_keys} | {
            keys[c].name for c in _key_columns(table) if c in keys and keys[c] is not table}
        if _FACT_NAME.search(table.name) or len(referenced - {table.name}) >= 2:
            out.append(table)
    return out


def _key_columns(table: Table) -> list[str]:
    """The fact's dimension-key columns: `*_key` columns other than its own surrogate key."""
    own = table.primary_key if len(table.primary_key) == 1 else ()
    return [c.name for c in table.columns if c.name.endswith("_key") and c.name not in own]


def facts_reference_dimensions(probe: ProbeInput) -> Finding:
    prop = "facts-reference-dimensions"
    catalog = probe.execution.catalog
    facts = fact_tables(catalog)
    if not facts:
        return Finding.failed(prop, "no fact table: no table references two or more others")
    enforced = probe.program.dialect not in WAREHOUSES
    keys = dimension_keys(catalog)
    unlinked: list[str] = []
    absent: list[str] = []
    linked = 0
    for fact in facts:
        declared = {c for fk in fact.foreign_keys for c in fk.columns}
        for fk in fact.foreign_keys:
            if catalog.table(fk.table) is None:
                return Finding.failed(prop, f"{fact.name} references {fk.table}, which does "
                                      "not exist")
        linked += len(fact.foreign_keys)
        for column in _key_columns(fact):
            if column in declared:
                continue
            dimension = keys.get(column)
            if dimension is None or dimension is fact:
                absent.append(f"{fact.name}.{column}")
            elif enforced:
                unlinked.append(f"{fact.name}.{column} (a key of {dimension.name})")
            else:
                linked += 1
    if unlinked:
        return Finding.failed(prop, "no foreign key from " + ", ".join(unlinked))
    by_natural_key = _facts_by_natural_key(catalog, facts)
    if by_natural_key:
        return Finding.failed(prop, by_natural_key)
    if not linked:
        return Finding.failed(prop, f"{', '.join(f.name for f in facts)} reference(s) no "
                              "dimension key")
    if enforced:
        refused = _orphans_refused(probe, facts)
        if refused is not None:
            return Finding.failed(prop, refused)
    how = "foreign keys refuse an orphan" if enforced else (
        f"keys match dimension keys (foreign keys are not enforced in {probe.program.dialect})")
    note = f"; dimensions the answer does not create: {', '.join(absent)}" if absent else ""
    return Finding.passed(prop, f"{len(facts)} fact table(s): {how}{note}")


def _facts_by_natural_key(catalog: Catalog, facts: list[Table]) -> str | None:
    """Why a fact holds an SCD2 dimension's natural key instead of a key of one version (its
    rows then join to every version, or only to the current one: not to the version in force
    when the fact happened), or None."""
    for dimension, _ in scd2_tables(catalog):
        key = natural_key(dimension)
        own = set(dimension.primary_key)
        if not key or set(key) <= own:
            continue
        for fact in facts:
            if fact is dimension or not set(key) <= {c.name for c in fact.columns}:
                continue
            if any(fk.table == dimension.name for fk in fact.foreign_keys):
                continue
            if any(c in own for c in _key_columns(fact)):
                continue
            return (f"{fact.name} holds {dimension.name}'s natural key "
                    f"({', '.join(key)}) and no key of a version: a row cannot keep the "
                    f"version of {dimension.name} in force when it happened")
    return None


def _orphans_refused(probe: ProbeInput, facts: list[Table]) -> str | None:
    """Why a fact stored a row pointing at no dimension row, or None when every foreign key of
    every fact refused one."""
    catalog = probe.execution.catalog
    for fact in facts:
        for fk in fact.foreign_keys:
            with scratch(probe) as session:
                stored = populate(session, catalog, 1, _with_parents(catalog, fact))
                bad = orphan(rows(fact, 1, stored, start=5)[0], fk.columns, fact)
                try:
                    with session.savepoint():
                        session.execute(insert_sql(fact, [bad]))
                except Rejected:
                    continue
            return (f"{fact.name} stored a row whose {', '.join(fk.columns)} has no "
                    f"{fk.table}")
    return None


# --- SCD2 with facts pointing at the versions -----------------------------------------------------


def scd2_one_current(probe: ProbeInput) -> Finding:
    """Facts point at every current version first; the answer's SCD2 statements then run twice
    over changed staging rows. One current row per natural key, no refusal, no fact row left
    without its version."""
    prop = "scd2-one-current"
    catalog = probe.execution.catalog
    targets = [(t, c) for t, c in scd2_tables(catalog) if probe.program.writes(t.name)]
    if not targets:
        return Finding.not_applicable(prop, "no SCD2 change statements")
    with probe.fresh() as execution:
        session = execution.session
        stored = populate(session, catalog, 3)
        for table, _ in targets:
            open_versions(session, table)
        referencing = _point_facts_at(session, catalog, [t for t, _ in targets], stored)
        for table, current in targets:
            key = natural_key(table)
            if not key:
                return Finding.not_applicable(prop, f"no natural key found on {table.name}")
            statements = probe.program.writes(table.name)
            read = {s.name: s for st in statements for s in sources(st, catalog)}
            stage_changes(session, list(read.values()), stored,
                          allowed_values(table))
            for _ in range(2):
                for statement in statements:
                    try:
                        with session.savepoint():
                            session.execute(statement.sql)
                    except (Rejected, Broken) as err:
                        facts = f" while {referencing} fact row(s) reference it" if (
                            referencing) else ""
                        return Finding.failed(prop, f"{statement.where} is refused{facts}: "
                                              f"{_first_line(err)}")
            verdict = one_current(session, table, key, current)
            if verdict:
                return Finding.failed(prop, verdict)
        lost = _facts_without_version(session, catalog, [t for t, _ in targets])
        if lost:
            return Finding.failed(prop, lost)
    referenced = f", {referencing} fact row(s) pointing at the versions" if referencing else ""
    return Finding.passed(prop, "one current row per natural key after the SCD2 statements ran "
                          f"twice{referenced}")


def _point_facts_at(session: Session, catalog: Catalog, dimensions: list[Table],
                    stored: dict[str, list[Row]]) -> int:
    """Fact rows referencing each stored version of the SCD2 `dimensions` (keys read back from
    the database: a generated surrogate key is not in the synthetic rows). Rows stored."""
    names = {d.name for d in dimensions}
    count = 0
    for fact in catalog.tables.values():
        fks = [fk for fk in fact.foreign_keys if fk.table in names]
        if not fks or fact.name in names:
            continue
        parents = dict(stored)
        for fk in fks:
            dimension = catalog.tables[fk.table]
            found = session.execute(
                f"SELECT {', '.join(fk.ref_columns)} FROM {dimension.qualified}") or []
            parents[fk.table] = [
                {ref: _literal(value) for ref, value in zip(fk.ref_columns, row, strict=True)}
                for row in found]
        session.execute(f"DELETE FROM {fact.qualified}")
        for row in rows(fact, max(3, max(len(p) for p in parents.values())), parents,
                        start=20):
            try:
                with session.savepoint():
                    session.execute(insert_sql(fact, [row]))
            except Rejected:
                continue
            count += 1
    return count


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _facts_without_version(session: Session, catalog: Catalog,
                           dimensions: list[Table]) -> str | None:
    names = {d.name for d in dimensions}
    for fact in catalog.tables.values():
        for fk in fact.foreign_keys:
            if fk.table not in names or fact.name in names:
                continue
            on = " AND ".join(f"d.{r} = f.{c}" for c, r in zip(fk.columns, fk.ref_columns,
                                                              strict=True))
            lost = session.execute(
                f"SELECT count(*) FROM {fact.qualified} AS f WHERE NOT EXISTS (SELECT 1 FROM "
                f"{catalog.tables[fk.table].qualified} AS d WHERE {on})") or [(0,)]
            if lost[0][0]:
                return (f"{lost[0][0]} {fact.name} row(s) lost their {fk.table} version after "
                        "the answer's SCD2 statements ran")
    return None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --- the example query ----------------------------------------------------------------------------


def example_query_runs(probe: ProbeInput) -> Finding:
    """Each query of the answer that reads a fact runs on synthetic rows; one aggregates."""
    prop = "example-query-runs"
    catalog = probe.execution.catalog
    facts = {t.name for t in fact_tables(catalog)}
    queries = [s for s in probe.program.of_kind("query")
               if s.tree is not None and set(_tables_read(s.tree)) & facts]
    if not queries:
        return Finding.failed(prop, "no query reads a fact table", blocker=False)
    aggregating = 0
    with scratch(probe) as session:
        populate(session, catalog, 3)
        for step in queries:
            try:
                with session.savepoint():
                    session.execute(step.sql)
            except (Rejected, Broken) as err:
                return Finding.failed(prop, f"{step.where} does not run: {_first_line(err)}")
            aggregating += _aggregates(step.tree)
    if not aggregating:
        return Finding.failed(prop, f"{len(queries)} query(ies) read a fact, none aggregates it",
                              blocker=False)
    return Finding.passed(prop, f"{len(queries)} query(ies) on the facts ran on synthetic rows")


def _tables_read(tree: object) -> list[str]:
    from sqlglot import exp

    assert isinstance(tree, exp.Expression)
    return [str(t.name).lower() for t in tree.find_all(exp.Table) if t.name]


def _aggregates(tree: object) -> int:
    from sqlglot import exp

    assert isinstance(tree, exp.Expression)
    return int(tree.find(exp.Group) is not None or tree.find(exp.AggFunc) is not None)
