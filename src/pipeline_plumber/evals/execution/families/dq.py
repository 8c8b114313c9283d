"""`dq`: mutation testing of the answer's checks, on the table they check.

The checks are the answer's own: queries (violating rows, or counts), views (one row per failed
check), DO blocks and functions that RAISE, and CHECK constraints (a refused row is a caught
defect). The checked table is the one the checks read most, taken from the catalog. A clean
synthetic batch (accepted values the checks list are used) must raise no alarm; then one defect
at a time is injected into it, and at least one check must fire:

- catches-null-required: a NULL key;
- catches-duplicate-key: a row twice;
- catches-out-of-range: -999999 in the range-checked number (an amount);
- catches-null-in-range: NULL in that number (`NOT (amount BETWEEN ...)` misses it: ternary
  logic);
- catches-future-timestamp: a time in 2099;
- catches-orphan: a reference to a row the referenced table does not have;
- catches-empty-batch: no row at all;
- gate-fails-run: a check whose verdict is only a warning (a `warn` severity row, RAISE
  WARNING/NOTICE) does not stop the run: a defect only warned about fails this property.

A query fires when it returns rows it did not return on the clean batch (rows marked `warn` or
`info` only warn); a count fires when a value that was 0 or false becomes non-zero or true; a
raising check fires when it raises.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ...answers import Answer
from ..catalog import Catalog, Column, Table
from ..engine import Broken, Rejected, Session, TimedOut
from ..program import section_heading, verifies
from ..properties import Finding, ProbeInput, family
from ..synth import Row, future_timestamp, insert_sql, literal, populate, rows

DEFECTS = ("catches-null-required", "catches-duplicate-key", "catches-out-of-range",
           "catches-null-in-range", "catches-future-timestamp", "catches-orphan",
           "catches-empty-batch")
PROPERTIES = ("no-false-alarm", *DEFECTS, "gate-fails-run")
_WARN = re.compile(r"^(warn|warning|info|notice|low|minor|soft)$", re.I)
_RAISES = re.compile(r"\bRAISE\s+EXCEPTION\b|\bRAISE\s+'|\bRAISE\s+SQLSTATE|\bASSERT\b|"
                     r"\berror\s*\(", re.I)
_ONLY_WARNS = re.compile(r"\bRAISE\s+(WARNING|NOTICE|INFO|LOG|DEBUG)\b", re.I)
_LITERAL = r"'(?:[^']|'')*'"
# A checked column, bare or inside the wrappers a check puts around it (`coalesce(status, '?')`,
# `lower(status)`): group 1 is its name.
_CHECKED = (r"(?:\b(?:coalesce|ifnull|nvl|lower|upper|trim|btrim)\s*\(\s*)?\b(\w+)"
            rf"(?:\s*,\s*{_LITERAL}\s*\)|\s*\))?")
_ACCEPTED = re.compile(rf"{_CHECKED}\s+(?:NOT\s+)?IN\s*\(\s*({_LITERAL}(?:\s*,\s*{_LITERAL})*)"
                       r"\s*\)", re.I)
# `currency IS DISTINCT FROM 'EUR' AND currency <> 'USD'`: each value compared as "not this one"
# is one the check lets through, the same list written as a chain.
_ACCEPTED_CHAIN = re.compile(rf"{_CHECKED}\s*(?:\bIS\s+DISTINCT\s+FROM\b|<>|!=)\s*({_LITERAL})",
                             re.I)
# A check relative to the run's clock (`paid_at >= date_trunc('month', now())`) cannot be
# judged on a clean batch of fixed synthetic dates: it may fire on them and still be right.
_CLOCK = re.compile(r"\b(now\s*\(|current_date\b|current_timestamp\b|localtimestamp\b|"
                    r"clock_timestamp|statement_timestamp|transaction_timestamp|"
                    r"get_current_timestamp|today\s*\()", re.I)
_FUNCTION = re.compile(r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE|MACRO)\s+"
                       r"([\w.\"]+)", re.I)
_KEYISH = re.compile(r"(_id|_key|_code|_no|_number|sku)$|^id$", re.I)


@dataclass(frozen=True)
class Check:
    where: str
    sql: str  # what runs
    shape: str  # "raises" | "rows" | "counts"
    source: str = ""  # what defines it (a view's CREATE VIEW)

    @property
    def text(self) -> str:
        return self.source or self.sql


@dataclass(frozen=True)
class Verdict:
    fired: bool
    warned: bool = False
    detail: str = ""


@family("dq", properties=PROPERTIES)
def dq_family(probe: ProbeInput) -> list[Finding]:
    catalog = probe.execution.catalog
    checks = find_checks(probe, catalog)
    table = checked_table(checks, catalog)
    if not checks or table is None:
        reason = ("the answer has no check that runs on a table it creates" if not checks else
                  "its checks read no table the answer creates")
        return [Finding.not_applicable(p, reason) for p in PROPERTIES]
    session = probe.execution.session
    accepted = _accepted_values(checks, table)
    table = _with_stated_formats(checks, table)
    clean = _clean_rows(table, accepted)
    baseline = {c.where: _run_check(session, catalog, table, clean, c, None) for c in checks}
    dated = {c.where for c in checks if _CLOCK.search(c.text)}
    alarms = [f"{w}: {r[1]}" for w, r in baseline.items() if r[0] == "alarm" and w not in dated]
    excused = sorted(w for w, r in baseline.items() if r[0] == "alarm" and w in dated)
    out = [Finding.failed("no-false-alarm", "on a clean batch " + "; ".join(alarms[:3]))
           if alarms else Finding.passed("no-false-alarm", f"{len(checks)} check(s) stay "
                                         "quiet on a clean batch" + (
                                             f" ({', '.join(excused)} compare with the clock "
                                             "and fire on synthetic rows dated in the past)"
                                             if excused else ""))]
    warned: list[str] = []
    for prop, mutate in _defects(catalog, table, clean, accepted).items():
        if mutate is None:
            out.append(Finding.not_applicable(prop, f"{table.name} has no column for it"))
            continue
        verdicts = [_fires(baseline[c.where], _run_check(session, catalog, table, clean, c,
                                                          mutate), c)
                    for c in checks if c.where not in excused
                    or prop == "catches-future-timestamp"]  # a clock check may judge the clock
        if any(v.fired for v in verdicts):
            caught = next(v.detail for v in verdicts if v.fired)
            out.append(Finding.passed(prop, f"caught by {caught}"))
        elif any(v.warned for v in verdicts):
            warned.append(prop.removeprefix("catches-"))
            out.append(Finding.failed(prop, "only a warning fires; the run goes on"))
        else:
            what = (f"NULL in {', '.join(accepted)}, which the checks restrict to a list"
                    if prop.endswith(":list") else
                    prop.removeprefix("catches-").replace("-", " "))
            out.append(Finding.failed(prop, f"no check fires on {table.name} with {what}"))
    out.append(_gate(probe, checks, warned))
    return _merged(out)


def _merged(found: list[Finding]) -> list[Finding]:
    """A second defect of one property (`catches-null-in-range:list`) fails the property when
    its first passed; otherwise the first stands."""
    out: dict[str, Finding] = {}
    for finding in found:
        prop = finding.property.partition(":")[0]
        first = out.get(prop)
        if first is None or (finding.status == "fail" and first.status != "fail") or (
                first.status == "n/a" and finding.status == "pass"):
            out[prop] = replace(finding, property=prop)
    return list(out.values())


# --- the checks -----------------------------------------------------------------------------------


def find_checks(probe: ProbeInput, catalog: Catalog) -> list[Check]:
    from sqlglot import exp

    views = {s.target for s in probe.program.steps if s.kind == "ddl" and s.target and
             s.statement == "CREATE VIEW"}
    functions = {m.group(1).split(".")[-1].lower(): s.sql for s in probe.program.steps
                 if s.kind == "ddl" and (m := _FUNCTION.match(s.sql))}
    found: list[Check] = []
    for step in probe.program.steps:
        if step.kind == "ddl" and step.statement == "CREATE VIEW" and step.target:
            found.append(Check(step.where, f"SELECT * FROM {step.target}", "rows", step.sql))
        elif step.statement == "DO" and _RAISES.search(step.sql):
            found.append(Check(step.where, step.sql, "raises"))
        elif step.statement == "DO" and _ONLY_WARNS.search(step.sql):
            # a gate that only warns: run with its warnings made errors, so a defect it
            # notices shows, as a warning that lets the run go on
            found.append(Check(step.where, _ONLY_WARNS.sub("RAISE EXCEPTION", step.sql),
                               "warns", step.sql))
        elif step.kind == "query" and step.statement in ("SELECT", "WITH", "VALUES") and (
                not _under_verify(probe.answer, step.where)):
            tree = step.tree
            names = {str(t.name).lower() for t in tree.find_all(exp.Table)} if tree else set()
            called = [f for f in functions if re.search(rf"\b{f}\s*\(", step.sql, re.I)]
            if called:
                found.append(Check(step.where, step.sql, "raises", functions[called[0]]))
                continue
            if not names or any(n not in catalog.tables and n not in views for n in names):
                continue
            if names & views:
                continue  # the view is a check already
            found.append(Check(step.where, step.sql, _shape(step.sql, tree)))
    return [c for c in found if c.shape != "report"]


def _under_verify(answer: Answer, where: str) -> bool:
    """A query in the answer's How to verify section shows the checks at work; it is not one
    of them (a duplicate query there does not make the gate catch duplicates)."""
    line = re.search(r"\(line (\d+)\)", where)
    if not line:
        return False
    return verifies(section_heading(answer, int(line.group(1))))


def _shape(sql: str, tree: Any) -> str:
    from sqlglot import exp

    if _RAISES.search(sql):
        return "raises"
    select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select) if tree else None
    if select is None:
        return "report"
    aggregated = any(p.find(exp.AggFunc) for p in select.expressions)
    if aggregated and not select.args.get("group"):
        return "counts"
    if select.args.get("where") or select.args.get("having"):
        return "rows"
    return "report"


def _catalog_name(table: Any, catalog: Catalog) -> str:
    """The catalog's key of a table a check names: `staging.payments` where the catalog keeps
    that name apart from a `payments` in the default schema, else the bare name."""
    qualified = f"{table.db}.{table.name}".lower()
    return qualified if table.db and qualified in catalog.tables else str(table.name).lower()


def checked_table(checks: list[Check], catalog: Catalog) -> Table | None:
    import sqlglot
    from sqlglot import exp

    counts: Counter[str] = Counter()
    for check in checks:
        try:
            tree = sqlglot.parse_one(check.text, read="postgres")
        except Exception:  # a DO block: count the names it mentions
            tree = None
        names = [_catalog_name(t, catalog) for t in tree.find_all(exp.Table)] \
            if tree is not None else []
        known = [n for n in names if n in catalog.tables] or [
            n for n in re.findall(r"\b\w+\b", check.text.lower()) if n in catalog.tables]
        counts.update(known)
    if not counts:
        return None
    best = max(counts.values())
    candidates = [catalog.tables[n] for n, c in counts.items() if c == best]
    return max(candidates, key=lambda t: len(t.columns))


def _accepted_values(checks: list[Check], table: Table) -> dict[str, str]:
    """Columns the checks restrict to a list (`IN (...)`, or a chain of `<>` / IS DISTINCT FROM):
    the first listed value, for clean rows. IN lists win over chains."""
    out: dict[str, str] = {}
    for check in checks:
        for match in (*_ACCEPTED.finditer(check.text), *_ACCEPTED_CHAIN.finditer(check.text)):
            name = match.group(1).lower()
            if table.column(name) is not None and name not in out:
                out[name] = re.findall(_LITERAL, match.group(2))[0]
    return out


# A check that flags a value for not matching a format (`currency !~ '^[A-Z]{3}$'`,
# `NOT regexp_matches(sku, '...')`, `length(currency) <> 3`) states what a valid value looks
# like: clean rows follow it, as they follow the table's own CHECK constraints.
_NOT_MATCHING = re.compile(
    rf"\b(\w+)\s*!~(\*?)\s*({_LITERAL})"
    rf"|\bNOT\s+\(?\s*(\w+)\s*~(\*?)\s*({_LITERAL})"
    rf"|\bNOT\s+(regexp_matches|regexp_full_match|regexp_like)\s*\(\s*(\w+)\s*,\s*({_LITERAL})",
    re.I)
_LENGTH_NOT = re.compile(r"\b(char_length|character_length|length|len|strlen)\s*\(\s*(\w+)"
                         r"\s*\)\s*(?:<>|!=)\s*(\d+)", re.I)


def _with_stated_formats(checks: list[Check], table: Table) -> Table:
    """`table` with the formats its checks demand of valid values added as CHECKs, so that the
    clean batch the checks are tried on is clean by their own definition."""
    from dataclasses import replace

    stated: list[str] = []
    for check in checks:
        for m in _NOT_MATCHING.finditer(check.text):
            if m.group(1):
                column, text = m.group(1), f"{m.group(1)} ~{m.group(2)} {m.group(3)}"
            elif m.group(4):
                column, text = m.group(4), f"{m.group(4)} ~{m.group(5)} {m.group(6)}"
            else:
                column, text = m.group(8), f"{m.group(7)}({m.group(8)}, {m.group(9)})"
            if table.column(column.lower()) is not None:
                stated.append(text)
        for m in _LENGTH_NOT.finditer(check.text):
            if table.column(m.group(2).lower()) is not None:
                stated.append(f"{m.group(1)}({m.group(2)}) = {m.group(3)}")
    return replace(table, checks=(*table.checks, *stated)) if stated else table


def _clean_rows(table: Table, accepted: dict[str, str], n: int = 3, start: int = 0
                ) -> list[Row]:
    return [{**row, **{c: v for c, v in accepted.items() if c in row}}
            for row in rows(table, n, start=start)]


# --- running one check ----------------------------------------------------------------------------

Outcome = tuple[str, Any]  # ("rows", rows) | ("raised", message) | ("refused", message) |
# ("alarm", why) for a baseline that already fires


def _run_check(session: Session, catalog: Catalog, table: Table, clean: list[Row],
               check: Check, mutate: Callable[[Session], object] | None) -> Outcome:
    others = [t for t in catalog.tables_in_fk_order() if t.name != table.name]
    result: Outcome
    with session.savepoint(undo=True):
        try:
            if others:  # populate() fills every table when given none
                populate(session, catalog, 3, others)
            session.execute(insert_sql(table, clean))
            if mutate is not None:
                mutate(session)
        except TimedOut:
            raise
        except (Rejected, Broken) as err:
            return ("refused", str(err))
        try:
            result = ("rows", session.execute(check.sql) or [])
        except TimedOut:
            raise
        except (Rejected, Broken) as err:
            result = ("raised", str(err))
    if mutate is None:
        if result[0] == "raised":
            return ("alarm", f"raises: {result[1]}")
        returned: Any = result[1]
        alarms = _blocking(returned) if check.shape == "rows" else []
        if alarms:
            return ("alarm", f"returns {_short(alarms[0])}")
    return result


def _blocking(found: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [r for r in found if not any(isinstance(v, str) and _WARN.match(v) for v in r)]


def _fires(base: Outcome, mutant: Outcome, check: Check) -> Verdict:
    if mutant[0] == "refused":
        return Verdict(True, detail=f"a constraint ({mutant[1]})")
    if mutant[0] == "raised" and check.shape == "warns":
        return Verdict(False, warned=True)
    if mutant[0] == "raised":
        return Verdict(True, detail=f"a raising check ({mutant[1]})")
    if base[0] != "rows" and base[0] != "alarm":
        return Verdict(False)
    before = base[1] if base[0] == "rows" else []
    after = mutant[1]
    new = list((Counter(map(repr, after)) - Counter(map(repr, before))).elements())
    new_rows = [r for r in after if repr(r) in new]
    if new_rows and len(before) == len(after) == 1 and _counts_rose(before[0], after[0]):
        return Verdict(True, detail=f"a count ({_short(after[0])})")
    if new_rows and _blocking(new_rows) and not (len(before) == len(after) == 1 and
                                                 _numeric(after[0])):
        return Verdict(True, detail=f"a query returning {_short(_blocking(new_rows)[0])}")
    return Verdict(False, warned=bool(new_rows) and not _blocking(new_rows))


def _numeric(row: tuple[Any, ...]) -> bool:
    return all(isinstance(v, (int, float, bool)) or type(v).__name__ == "Decimal" or v is None
               for v in row)


def _counts_rose(before: tuple[Any, ...], after: tuple[Any, ...]) -> bool:
    for old, new in zip(before, after, strict=False):
        if (old in (0, False) or old is None) and new not in (0, False, None) and (
                isinstance(new, (int, float, bool)) or type(new).__name__ == "Decimal"):
            return True
    return False


def _short(row: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(v) for v in row)[:80] + ")"


# --- the defects ----------------------------------------------------------------------------------


def _defects(catalog: Catalog, table: Table, clean: list[Row], accepted: dict[str, str]
             ) -> dict[str, Callable[[Session], object] | None]:
    refs = _references(catalog, table)
    key = _key_column(table, refs)
    number = _range_column(catalog, table, key, refs)
    time = next((c for c in table.columns if c.is_timestamp or c.type == "date"), None)
    listed = next((c for c in table.columns if c.name in accepted and c.nullable
                   and c != key), None)

    def add(column: Column | None, value: Callable[[Column], str], start: int
            ) -> Callable[[Session], object] | None:
        if column is None:
            return None
        base = _clean_rows(table, accepted, 1, start)[0]
        base.update({r.name: clean[0][r.name] for r in refs if r.name in clean[0]})
        row = {**base, column.name: value(column)}
        return lambda session: session.execute(insert_sql(table, [row]))

    orphan_col = refs[0] if refs else None
    return {
        "catches-null-required": add(key, lambda c: "NULL", 10),
        "catches-duplicate-key": (lambda session: session.execute(insert_sql(table, clean[:1])))
        if key is not None else None,
        "catches-out-of-range": add(number, lambda c: "-999999", 11),
        "catches-null-in-range": add(number, lambda c: "NULL", 12),
        # NULL in a column the checks restrict to a list: `currency NOT IN (...)` lets it by
        "catches-null-in-range:list": add(listed, lambda c: "NULL", 15),
        "catches-future-timestamp": add(time, future_timestamp, 13),
        "catches-orphan": add(orphan_col, lambda c: literal(c, 999_998), 14),
        "catches-empty-batch": lambda session: session.execute(
            f"DELETE FROM {table.qualified}"),
    }


def _references(catalog: Catalog, table: Table) -> list[Column]:
    """Columns of `table` that point at another table's key (declared or by name). The key of
    the table the batch is loaded into (`payments` beside `staging.payments`: the same name, or
    the same columns) is the batch's own key, not a reference."""
    declared = [table.column(c) for fk in table.foreign_keys for c in fk.columns]
    own = {c.name for c in table.columns}
    keys = {k for t in catalog.tables.values() if t.name != table.name
            and t.relation != table.relation and {c.name for c in t.columns} != own
            for k in t.primary_key}
    by_name = [c for c in table.columns if c.name in keys and c.name not in table.primary_key]
    out = [c for c in (*declared, *by_name) if c is not None]
    return list(dict.fromkeys(out))


def _key_column(table: Table, refs: list[Column]) -> Column | None:
    if table.primary_key:
        return table.column(table.primary_key[0])
    return next((c for c in table.columns if _KEYISH.search(c.name) and c not in refs
                 and not c.generated), None)


def _range_column(catalog: Catalog, table: Table, key: Column | None, refs: list[Column]
                  ) -> Column | None:
    money = [c for t, c in catalog.money_columns() if t.name == table.name]
    numbers = [c for c in table.columns if re.match(r"(numeric|decimal|double|real|float|int|"
                                                    r"bigint|smallint|integer)", c.type)
               and c != key and c not in refs and not _KEYISH.search(c.name)]
    found = money or numbers
    return found[0] if found else None


# --- the gate -------------------------------------------------------------------------------------


def _gate(probe: ProbeInput, checks: list[Check], warned: list[str]) -> Finding:
    prop = "gate-fails-run"
    if warned:
        return Finding.failed(prop, f"only a warning for: {', '.join(warned)}; the run is not "
                              "stopped")
    text = "\n".join(s.sql for s in probe.program.steps)
    if _ONLY_WARNS.search(text) and not _RAISES.search(text):
        return Finding.failed(prop, "the gate only RAISEs a WARNING or NOTICE; the run goes on")
    if any(c.shape == "raises" for c in checks):
        return Finding.passed(prop, "the gate raises an error, which stops the run")
    return Finding.not_applicable(prop, "the checks return rows; what stops the run is "
                                  "outside the SQL")
