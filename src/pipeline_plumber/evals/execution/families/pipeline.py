"""`pipeline` and `etl`: the answer's load, replayed on synthetic batches, keeps the target right.

The flow comes from the Program and the catalog, never from names in the prompt: the target is
the table the data lands in (a load's target that no other load reads; bookkeeping tables such
as a watermark or run log are replayed but never the target), the roots are the tables the
loads read and nothing writes (staging, the source, a one-row run table). Each scenario runs on
a fresh database in autocommit, so every statement is its own transaction and `now()` moves
between runs, as it does between a job and its retry.

- first-run-empty-target: a batch loaded into an empty target leaves rows in it (a NULL
  `max(updated_at)` watermark loads nothing);
- idempotent-rerun: the same batch loaded again leaves the table's contents unchanged;
- no-duplicate-keys: a batch holding an exact duplicate, loaded twice, leaves one row per key
  (the key without columns the clock fills: `(event_id, received_at DEFAULT now())` is
  `event_id`);
- change-applied: a later batch that changes every row (newer ordering column, other values)
  changes the target (`ON CONFLICT DO NOTHING` does not);
- several-changes-one-key: three changes to one key in one batch, shuffled, leave one row with
  the latest value (when the source has an ordering column);
- late-older-change: a change older than the stored one, arriving later, does not win, where
  the answer claims ordering (its SQL compares or orders by the column, or its prose says so);
- retry-separate-transactions: the retry in a later transaction stores no key twice and loses
  no change (a watermark set to `now()` loses rows edited during the run);
- maintenance-runs: the answer's own backfill and retention statements run on the loaded data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..catalog import Catalog, Column, Table, quote
from ..engine import Broken, Rejected, Session, TimedOut
from ..program import Program, Step
from ..properties import Finding, ProbeInput, family
from ..scd2 import scd2_tables
from ..synth import BASE_DAY, Row, allowed_values, insert_sql, literal, populate

PROPERTIES = ("first-run-empty-target", "idempotent-rerun", "no-duplicate-keys",
              "change-applied", "several-changes-one-key", "late-older-change",
              "retry-separate-transactions", "maintenance-runs")
_BOOKKEEPING = re.compile(r"(watermark|checkpoint|bookmark|high_?water|_state$|^etl_|_runs?$|"
                          r"control|_log$|audit|offsets?$|cursor|_meta(data)?$|^load_|_loads$)",
                          re.I)
_ORDERING = re.compile(r"(updated|modified|changed|version|_seq|^seq|sequence|lsn|offset|"
                       r"ts_ms|_ts$|^ts$|valid_from|effective)", re.I)
_CLOCK = re.compile(r"(now\(\)|current_timestamp|get_current_timestamp|localtimestamp|"
                    r"clock_timestamp|statement_timestamp|transaction_timestamp|current_date)",
                    re.I)
_AUDIT = re.compile(r"(loaded|inserted|ingested|processed|etl|synced|refreshed|_load|batch|"
                    r"run_id|created_in_dw|dw_)", re.I)
_CLAIMS_ORDER = re.compile(r"\b(out[- ]of[- ]order|older (change|update|version|row)s?|"
                           r"late[- ]arriving (change|update)s?|recency guard|newer wins|"
                           r"latest (change|update|version) wins|never rolls? back|"
                           r"stale (change|update|row)s?)\b", re.I)
_KEYISH = re.compile(r"(_id|_key|_code|_no|_number|sku|_nk|_bk)$|^id$", re.I)
# Facts that happen once and never change: a re-delivered copy is the same fact.
_IMMUTABLE = re.compile(r"(event|click|pageview|page_view|impression|\bhits?\b|_hits?\b|"
                        r"\blogs?\b|_logs?\b|message|reading|measurement)", re.I)


@dataclass(frozen=True)
class Flow:
    """Where the answer's data goes: the loads to replay, the tables the probes fill, the
    target and its business key."""

    target: Table
    steps: tuple[Step, ...]
    roots: tuple[Table, ...]  # data roots first
    controls: tuple[Table, ...]  # one-row tables the loads read (run date, watermark)
    key: tuple[str, ...]
    order: Column | None  # the data root's ordering column
    ordered: bool  # the answer claims the latest change wins
    current: str | None  # SCD2 target: the condition of its current rows

    @property
    def data(self) -> Table:
        return self.roots[0]


@family("pipeline", "etl", properties=PROPERTIES)
def pipeline_family(probe: ProbeInput) -> list[Finding]:
    flow = find_flow(probe.program, probe.execution.catalog, probe.answer.prose, probe.prompt)
    if isinstance(flow, str):
        return [Finding.not_applicable(p, flow) for p in PROPERTIES]
    found: dict[str, Finding] = {}
    with _fresh(probe) as session:
        found.update(_main_scenario(probe, session, flow))
    with _fresh(probe) as session:
        found.update(_several_changes_scenario(session, probe.execution.catalog, flow))
    return [found.get(p) or Finding.not_applicable(p, "not reached") for p in PROPERTIES]


@contextmanager
def _fresh(probe: ProbeInput) -> Iterator[Session]:
    with probe.fresh() as execution:
        yield execution.session


# --- the flow -------------------------------------------------------------------------------------


def find_flow(program: Program, catalog: Catalog, prose: str, prompt: str = "") -> Flow | str:
    """The answer's flow, or why there is none to probe. Where the prompt names tables the
    loads write, the target is one of those: an audit copy of the rows a load replaces
    (`fx_rates_superseded`, filled from the target) is not the table the user asked for."""
    loads = [s for s in program.of_kind("load") if s.target]
    if not loads:
        return "the answer has no load statement"
    written = {s.target for s in loads if s.statement not in ("DELETE", "TRUNCATE")}
    read_by = {s.index: set(program.tables_in(s)) - {s.target} for s in loads}
    read_anywhere = set().union(*read_by.values())
    candidates = [t for t in written if t and not _BOOKKEEPING.search(t)
                  and catalog.table(t) is not None] or [
        t for t in written if t and (table := catalog.table(t)) is not None
        and not _is_control(table) and len(table.columns) > 2]  # `shipment_state` holds data
    named = [t for t in candidates if re.search(rf"(?<![\w.]){re.escape(t)}(?![\w])", prompt)]
    candidates = named or candidates
    sinks = [t for t in candidates if t not in read_anywhere] or candidates
    if not sinks:
        return "no load writes a table the answer creates, other than bookkeeping"
    target = max((catalog.tables[t] for t in sinks),
                 key=lambda t: (len(t.columns), max(s.index for s in loads if s.target == t.name)))
    upstream = {target.name}
    for step in reversed(loads):
        if step.target in upstream:
            upstream |= read_by[step.index]
    chain_targets = {t for t in written if t in upstream or (t and _BOOKKEEPING.search(t))}
    roots_names = {name for name in upstream - chain_targets if catalog.table(name) is not None}
    steps = tuple(s for s in loads if s.target in chain_targets or (
        s.target in roots_names and s.statement not in ("DELETE", "TRUNCATE")))
    missing = sorted(n for s in steps for n in read_by[s.index]
                     if catalog.table(n) is None and n not in written)
    if missing:
        return f"the load reads {', '.join(missing)}, which the answer never creates"
    tables = [catalog.tables[n] for n in sorted(roots_names)]
    controls = tuple(t for t in tables if _is_control(t))
    data = sorted((t for t in tables if t not in controls),
                  key=lambda t: -len({c.name for c in t.columns} & {c.name for c in
                                                                     target.columns}))
    if not data:
        return f"no table feeds {target.name} that a probe could fill"
    key = business_key(target)
    order = _ordering(data[0], key)
    target_sql = " ".join(s.sql for s in steps)
    ordered = (order is not None and _compares(order.name, target_sql)) or bool(
        _CLAIMS_ORDER.search(prose))
    current = next((c for t, c in scd2_tables(catalog) if t.name == target.name), None)
    return Flow(target, steps, tuple(data), controls, key, order, ordered, current)


def _is_control(table: Table) -> bool:
    data_columns = [c for c in table.columns if not c.generated]
    return len(data_columns) <= 2 and not table.primary_key and (
        bool(_BOOKKEEPING.search(table.name)) or len(data_columns) == 1)


def business_key(table: Table) -> tuple[str, ...]:
    """The key a re-run must not repeat: the primary key without columns the clock or a
    sequence fills, else a unique key, else the id-like columns."""
    def data_only(columns: tuple[str, ...]) -> tuple[str, ...]:
        kept = []
        for name in columns:
            column = table.column(name)
            if column is None or column.generated or _CLOCK.search(column.default or ""):
                continue
            kept.append(name)
        return tuple(kept)

    for candidate in (table.primary_key, *table.uniques):
        kept = data_only(candidate)
        if kept:
            return kept
    return data_only(tuple(c.name for c in table.columns if _KEYISH.search(c.name)))


def _ordering(table: Table, key: tuple[str, ...]) -> Column | None:
    usable = [c for c in table.columns if c.name not in key and not c.generated and (
        c.is_timestamp or c.type == "date" or re.match(r"(big|small|u)?int|integer", c.type))
        and _ORDERING.search(c.name)]
    return usable[0] if usable else None


def _compares(column: str, sql: str) -> bool:
    name = re.escape(column)
    return bool(re.search(
        rf"\b{name}\b\s*(>=?|<=?)|(>=?|<=?)\s*[\w.]*\b{name}\b|ORDER\s+BY[^;]*?\b{name}\b|"
        rf"max\s*\(\s*[\w.]*\b{name}\b|arg_?max\s*\(", sql, re.I))


# --- running --------------------------------------------------------------------------------------


class LoadFailed(Exception):
    """The answer's own load statement failed on synthetic data."""

    def __init__(self, step: Step, error: Exception) -> None:
        super().__init__(f"{step.where} ({step.statement} into {step.target}) fails: {error}")
        # an object the answer never creates, or synthetic rows the target's own CHECK or
        # foreign keys refuse: the probe could not show anything, the answer did nothing wrong
        self.missing_object = bool(re.search(
            r"does not exist|not found|Catalog Error|check constraint|CHECK constraint|"
            r"foreign key", str(error), re.I))


def run_load(session: Session, flow: Flow) -> None:
    """One run of the answer's loads, each statement its own transaction."""
    for step in flow.steps:
        try:
            session.execute(step.sql)
        except TimedOut:
            raise
        except (Rejected, Broken) as err:
            raise LoadFailed(step, err) from err


def contents(session: Session, table: Table, skip: set[str]) -> list[str]:
    columns = [c.name for c in table.columns if c.name not in skip]
    if not columns:
        return []
    found = session.execute(f"SELECT {', '.join(quote(c) for c in columns)} "
                            f"FROM {table.qualified}") or []
    return sorted(repr(tuple(str(v) for v in row)) for row in found)


def duplicate_keys(session: Session, flow: Flow) -> int:
    key = flow.key or tuple(c.name for c in flow.target.columns if not c.generated)
    if not key:
        return 0
    where = f" WHERE {flow.current}" if flow.current else ""
    keys = ", ".join(quote(c) for c in key)
    found = session.execute(f"SELECT count(*) FROM (SELECT {keys} FROM {flow.target.qualified}"
                            f"{where} GROUP BY {keys} HAVING count(*) > 1) AS d") or [(0,)]
    return int(str(found[0][0]))


def _volatile(flow: Flow) -> set[str]:
    """Target columns a correct re-run may rewrite: generated keys, load timestamps."""
    root_columns = {c.name for t in flow.roots for c in t.columns}
    return {c.name for c in flow.target.columns if c.generated or _CLOCK.search(
        c.default or "") or (c.is_timestamp and c.name not in root_columns and _AUDIT.search(
            c.name))}


def _fill(session: Session, catalog: Catalog, flow: Flow, n: int = 3) -> dict[str, list[Row]]:
    """Rows in the tables the roots reference, the roots and the empty control tables."""
    needed = {t.name for t in flow.roots}
    for table in reversed(catalog.tables_in_fk_order()):
        if table.name in needed:
            needed |= {fk.table for fk in table.foreign_keys}
    needed.discard(flow.target.name)
    order = [t for t in catalog.tables_in_fk_order() if t.name in needed]
    stored = populate(session, catalog, n, order)
    if flow.controls and stored.get(flow.data.name):
        stored[flow.data.name] = [*stored[flow.data.name],
                                  *_midnight_rows(session, flow, stored[flow.data.name])]
    for control in flow.controls:
        count = session.execute(f"SELECT count(*) FROM {control.qualified}") or [(0,)]
        if int(str(count[0][0])) == 0:
            populate(session, catalog, 1, [control])
    return stored


def _midnight_rows(session: Session, flow: Flow, batch: list[Row]) -> list[Row]:
    """A row at exactly midnight after the run date (the synthetic run date is the first
    row's day): a window that ends `BETWEEN d AND d + 1` takes it into day d as well as the
    next day, where a half-open `>= d AND < d + 1` leaves it to the next day's run."""
    data = flow.data
    times = [c for c in data.columns if c.is_timestamp and not c.generated]
    keys = [c for c in data.columns if c.name in (*flow.key, *data.primary_key)
            and not c.generated]
    if not times or not keys:
        return []
    midnight = BASE_DAY.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
    row = {**batch[0], **{c.name: literal(c, 97) for c in keys}}
    for column in times:
        row[column.name] = (f"TIMESTAMPTZ '{midnight:%Y-%m-%d %H:%M:%S}+00'"
                            if "zone" in column.type or column.type == "timestamptz"
                            else f"TIMESTAMP '{midnight:%Y-%m-%d %H:%M:%S}'")
    try:
        session.execute(insert_sql(data, [row]))
    except Rejected:
        return []
    return [row]


def _replace(session: Session, table: Table, batch: list[Row]) -> None:
    session.execute(f"DELETE FROM {table.qualified}")
    if batch:
        session.execute(insert_sql(table, batch))


def _value_column(flow: Flow) -> Column | None:
    """A column of the data root a change alters: copied to the target where possible."""
    data = flow.data
    fks = {c for fk in data.foreign_keys for c in fk.columns}
    skip = set(flow.key) | fks | {flow.order.name if flow.order else ""} | set(data.primary_key)
    usable = [c for c in data.columns if c.name not in skip and not c.generated
              and not _KEYISH.search(c.name) and not c.is_timestamp and c.type != "date"
              and c.type not in ("boolean", "bool", "uuid", "json", "jsonb")]
    target_names = {c.name for c in flow.target.columns}
    allowed = allowed_values(data)
    usable.sort(key=lambda c: (c.name not in target_names, c.name in allowed))
    return usable[0] if usable else None


def _changed(flow: Flow, row: Row, i: int, shift: int, column: Column) -> Row:
    allowed = allowed_values(flow.data).get(column.name)
    value = (allowed[(allowed.index(row[column.name]) + shift) % len(allowed)]
             if allowed and row[column.name] in allowed else literal(column, i + 40 * shift))
    out = {**row, column.name: value}
    if flow.order is not None:
        out[flow.order.name] = literal(flow.order, i + 20 * shift)
    return out


def _target_value(session: Session, flow: Flow, row: Row, column: str) -> list[str] | None:
    """The target's values of `column` for `row`'s key (None when the key is not in the
    data root or the column is not copied)."""
    if not flow.key or any(k not in row for k in flow.key) or flow.target.column(
            column) is None:
        return None
    where = " AND ".join(f"{quote(k)} = {row[k]}" for k in flow.key)
    if flow.current:
        where += f" AND {flow.current}"
    found = session.execute(f"SELECT {quote(column)} FROM {flow.target.qualified} "
                            f"WHERE {where}") or []
    return [str(r[0]) for r in found]


def _value_of(session: Session, literal_sql: str, like: Column | None = None) -> str:
    """How the engine prints `literal_sql` stored in a column like `like` (50.5 in a
    numeric(18,8) reads 50.50000000)."""
    if like is not None and like.type.startswith(("numeric", "decimal")):
        literal_sql = f"CAST({literal_sql} AS {like.type})"
    found = session.execute(f"SELECT {literal_sql}") or [("",)]
    return str(found[0][0])


def _main_scenario(probe: ProbeInput, session: Session, flow: Flow) -> dict[str, Finding]:
    """First run on an empty target, a re-run, the batch with a duplicate row, then a batch
    that changes every row; every statement its own transaction."""
    first, rerun, dupes = "first-run-empty-target", "idempotent-rerun", "no-duplicate-keys"
    out: dict[str, Finding] = {}
    stored = _fill(session, probe.execution.catalog, flow)
    batch = stored.get(flow.data.name, [])
    if not batch:
        return {first: Finding.not_applicable(first, f"no synthetic row fits {flow.data.name}")}
    try:
        run_load(session, flow)
    except LoadFailed as err:
        return {p: _load_failed(p, err) for p in (first, rerun, dupes, "change-applied",
                                                  "retry-separate-transactions")}
    count = session.execute(f"SELECT count(*) FROM {flow.target.qualified}") or [(0,)]
    if int(str(count[0][0])) == 0:
        return {first: Finding.failed(first, f"the first run on an empty {flow.target.name} "
                                      f"loaded no row from {len(batch)} in {flow.data.name}")}
    out[first] = Finding.passed(first, f"the first run loaded {count[0][0]} row(s) into an "
                                f"empty {flow.target.name}")
    skip = _volatile(flow)
    before = contents(session, flow.target, skip)
    try:
        run_load(session, flow)
        after = contents(session, flow.target, skip)
        out[rerun] = (
            Finding.passed(rerun, "a second run of the same batch changed nothing")
            if before == after else Finding.failed(
                rerun, f"a second run of the same batch changed {flow.target.name}: "
                f"{len(before)} row(s) before, {len(after)} after"))
    except LoadFailed as err:
        out[rerun] = _load_failed(rerun, err)
    out[dupes] = _duplicate_in_batch(session, flow, batch)
    try:
        out.update(_change(session, flow, batch))
    except LoadFailed as err:
        out["change-applied"] = _load_failed("change-applied", err)
    out["retry-separate-transactions"] = _retry_verdict(flow, out)
    out["maintenance-runs"] = _maintenance(session, probe.program)
    return out


def _load_failed(prop: str, err: LoadFailed) -> Finding:
    return (Finding.not_applicable(prop, str(err)) if err.missing_object
            else Finding.failed(prop, str(err)))


def _duplicate_in_batch(session: Session, flow: Flow, batch: list[Row]) -> Finding:
    """The batch again with one row twice, loaded twice: one row per key."""
    prop = "no-duplicate-keys"
    keys = ", ".join(flow.key) or "all columns"
    with contextlib.suppress(Rejected):  # the staging table may refuse a duplicate itself
        session.execute(insert_sql(flow.data, [batch[0]]))
    try:
        run_load(session, flow)
        run_load(session, flow)
    except LoadFailed as err:
        return _load_failed(prop, err)
    finally:
        _replace(session, flow.data, batch)
    found = duplicate_keys(session, flow)
    if found:
        return Finding.failed(prop, f"{found} {keys} value(s) stored more than once after a "
                              "batch with a duplicate row was loaded twice")
    return Finding.passed(prop, f"one row per {keys} after a batch with a duplicate row, "
                          "loaded twice")


def _change(session: Session, flow: Flow, batch: list[Row]) -> dict[str, Finding]:
    prop = "change-applied"
    column = _value_column(flow)
    if column is None:
        return {prop: Finding.not_applicable(prop, f"no column of {flow.data.name} to change")}
    if flow.order is None and _IMMUTABLE.search(" ".join((flow.target.name, *flow.key))):
        return {prop: Finding.not_applicable(prop, f"{flow.target.name} records immutable "
                                             "events (no version or updated-at column): "
                                             "keeping the first copy is right")}
    skip = _volatile(flow)
    before = contents(session, flow.target, skip)
    unique = list({repr(r): r for r in batch}.values())
    changed = [_changed(flow, row, i, 1, column) for i, row in enumerate(unique)]
    try:
        _replace(session, flow.data, changed)
    except Rejected as err:
        return {prop: Finding.not_applicable(prop, f"the changed batch is refused: {err}")}
    run_load(session, flow)
    expected = _value_of(session, changed[0][column.name], flow.target.column(column.name))
    got = _target_value(session, flow, changed[0], column.name)
    if got is not None:
        if got != [expected]:
            return {prop: Finding.failed(prop, f"{flow.target.name}.{column.name} holds "
                                         f"{', '.join(got) or 'no row'} after a later batch "
                                         f"changed it to {expected}")}
        return {prop: Finding.passed(prop, f"a later batch's change to {column.name} was "
                                     "applied")}
    if contents(session, flow.target, skip) == before:
        return {prop: Finding.failed(prop, f"a later batch changing every {column.name} left "
                                     f"{flow.target.name} as it was")}
    return {prop: Finding.passed(prop, f"a later batch changing {column.name} changed "
                                 f"{flow.target.name}")}


def _retry_verdict(flow: Flow, found: dict[str, Finding]) -> Finding:
    prop = "retry-separate-transactions"
    clock_keys = [c for c in (*flow.target.primary_key, *(u for k in flow.target.uniques
                                                          for u in k))
                  if _CLOCK.search((flow.target.column(c) or Column(c, "", True)).default or "")]
    dupes, change = found.get("no-duplicate-keys"), found.get("change-applied")
    if dupes is not None and dupes.status == "fail" and clock_keys:
        return Finding.failed(prop, f"a retry in a later transaction stored the same rows again: "
                              f"the key includes {', '.join(clock_keys)}, which the clock fills")
    if change is not None and change.status == "fail" and _CLOCK.search(
            " ".join(s.sql for s in flow.steps if s.target != flow.target.name) or ""):
        return Finding.failed(prop, "a change made between two runs was lost: the watermark is "
                              "the clock at the end of the run, not the data's own time")
    failed = [f for f in (dupes, change) if f is not None and f.status == "fail"]
    if failed:
        return Finding.failed(prop, f"runs in separate transactions: {failed[0].detail}")
    return Finding.passed(prop, "runs in separate transactions stored no row twice and lost no "
                          "change")


def _maintenance(session: Session, program: Program) -> Finding:
    prop = "maintenance-runs"
    steps = program.of_kind("maintenance")
    if not steps:
        return Finding.not_applicable(prop, "no backfill or retention statement")
    for step in steps:
        try:
            session.execute(step.sql)
        except TimedOut:
            raise
        except (Rejected, Broken) as err:
            return Finding.failed(prop, f"{step.where} ({step.note or step.statement}) fails on "
                                  f"the loaded data: {err}")
    return Finding.passed(prop, f"{len(steps)} maintenance statement(s) ran on the loaded data")


def _one_row_with_latest(prop: str, flow: Flow, column: Column, got: list[str] | None,
                         latest: str) -> Finding:
    """After a batch with three changes to one key: one row, holding the latest change where
    the answer orders changes."""
    if got is None:
        return Finding.not_applicable(prop, f"{column.name} is not copied to {flow.target.name}")
    if len(got) != 1:
        return Finding.failed(prop, f"{len(got)} rows for one key after a batch with three "
                              "changes to it")
    if flow.order is not None and got != [latest]:
        return Finding.failed(prop, f"{flow.target.name}.{column.name} is {got[0]}, not the "
                              f"latest change {latest} (by {flow.order.name})")
    return Finding.passed(prop, "three changes to one key in one batch left one row"
                          + (" with the latest" if flow.order else ""))


def _late_older_change(prop: str, session: Session, flow: Flow, column: Column, first: Row,
                       batch: list[Row]) -> Finding:
    """A change older than every stored one, loaded next, must not win (where the answer claims
    the latest change wins)."""
    if not flow.ordered or flow.order is None:
        return Finding.not_applicable(prop, "the answer does not claim that the latest change "
                                      "wins")
    older = {**_changed(flow, first, 0, 3, column), flow.order.name: literal(flow.order, -10)}
    _replace(session, flow.data, [older, *batch[1:]])
    run_load(session, flow)
    now = _target_value(session, flow, first, column.name)
    stale = _value_of(session, older[column.name], flow.target.column(column.name))
    if now is not None and stale in now:
        return Finding.failed(prop, f"an older change arriving late overwrote "
                              f"{flow.target.name}.{column.name} with {stale}")
    return Finding.passed(prop, "an older change arriving late did not win")


def _several_changes_scenario(session: Session, catalog: Catalog, flow: Flow
                              ) -> dict[str, Finding]:
    """Three changes to one key in one batch, shuffled; then a change older than all of them."""
    several, late = "several-changes-one-key", "late-older-change"
    column = _value_column(flow)
    if column is None or not flow.key or any(flow.data.column(k) is None for k in flow.key):
        reason = ("no column to change" if column is None else
                  f"the key {', '.join(flow.key) or '(none)'} of {flow.target.name} is not in "
                  f"{flow.data.name}")
        return {several: Finding.not_applicable(several, reason),
                late: Finding.not_applicable(late, reason)}
    out: dict[str, Finding] = {}
    try:
        stored = _fill(session, catalog, flow)
        batch = stored.get(flow.data.name, [])
        if not batch:
            raise _NotApplicable(f"no synthetic row fits {flow.data.name}")
        first = batch[0]
        changes = [_changed(flow, first, 0, shift, column) for shift in (1, 2)]
        shuffled = [first, changes[1], changes[0], *batch[1:]]
        try:
            _replace(session, flow.data, shuffled)
        except Rejected as err:
            raise _NotApplicable(f"{flow.data.name} keeps one row per key ({err})") from err
        run_load(session, flow)
        latest = _value_of(session, changes[1][column.name], flow.target.column(column.name))
        out[several] = _one_row_with_latest(
            several, flow, column, _target_value(session, flow, first, column.name), latest)
        out[late] = _late_older_change(late, session, flow, column, first, batch)
    except LoadFailed as err:
        for prop in (several, late):
            out.setdefault(prop, _load_failed(prop, err))
    except _NotApplicable as err:
        for prop in (several, late):
            out.setdefault(prop, Finding.not_applicable(prop, str(err)))
    return out


class _NotApplicable(Exception):
    pass

