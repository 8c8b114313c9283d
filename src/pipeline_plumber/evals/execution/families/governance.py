"""`governance`: PII hashing, grants and masking, judged on the answer's SQL and its catalog.

The PII columns are the catalog's columns whose names say so (email, phone, names, addresses,
national ids, birth dates, IP addresses, card numbers).

- pii-hash-salted: a hash of a PII column (sha256, md5, ...) without a key or salt (hmac, a
  secret or salt concatenated in) while the answer calls the result anonymised or
  pseudonymised fails: the same e-mail always hashes alike and a dictionary reverses it;
- grants-parse: every GRANT, REVOKE and masking or row policy parses;
- grants-name-pii: the masking SQL (views, policies, column grants) names at least one PII
  column the schema has;
- no-broad-grant: a masking view beside `GRANT SELECT ON ALL TABLES` or a grant on the base
  table itself to a role lets that role read the raw PII: a fail.

Grants are not run: roles live outside the sandbox, whose own role may not create them.
"""

from __future__ import annotations

import re

from ..catalog import Catalog
from ..program import Step
from ..properties import Finding, ProbeInput, family

PROPERTIES = ("pii-hash-salted", "grants-parse", "grants-name-pii", "no-broad-grant")
_PII = re.compile(r"(e_?mail|phone|mobile|first_?name|last_?name|full_?name|surname|"
                  r"^name$|address|street|postcode|zip|ssn|national_id|passport|tax_id|"
                  r"birth|dob|ip_addr|ip$|card_number|iban)", re.I)
_HASH = re.compile(r"\b(sha256|sha2|sha512|sha1|md5|digest|hash|farm_fingerprint|"
                   r"to_hex\s*\(\s*sha256)\s*\(([^;]*?)\)", re.I)
_KEYED = re.compile(r"\b(hmac|salt|pepper|secret|key|current_setting|keyed)\w*", re.I)
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_LITERAL_ONLY = re.compile(r"\s*'(?:[^']|'')*'\s*(::\s*\w+\s*)?")
_ANONYMISED = re.compile(r"\b(anonymi[sz]\w*|pseudonymi[sz]\w*|de-?identif\w*)", re.I)
_GRANT = re.compile(r"^\s*(GRANT|REVOKE)\b", re.I)
_GRANT_SHAPE = re.compile(r"^\s*(GRANT|REVOKE)\s+[\w\s,()\"]+?\s+ON\s+.+?\s+(TO|FROM)\s+\S+",
                          re.I | re.S)
_POLICY = re.compile(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(MASKING\s+POLICY|ROW\s+ACCESS\s+POLICY|"
                     r"POLICY)\b", re.I)
_POLICY_SHAPE = re.compile(r"POLICY\s+[\w.\"]+\s+(AS\s*\(.*\)\s*RETURNS\s+\w+\s*->|ON\s+[\w.\"]+)",
                           re.I | re.S)
_BROAD = re.compile(r"GRANT\s+(SELECT|ALL)\b[^;]*?\bON\s+ALL\s+TABLES\b", re.I | re.S)
_ON_TABLE = re.compile(r"GRANT\s+(?:SELECT|ALL(?:\s+PRIVILEGES)?)\s+ON\s+(?:TABLE\s+)?"
                       r"([\w.\"]+(?:\s*,\s*[\w.\"]+)*)\s+TO", re.I)
_DEFAULT_GRANT = re.compile(r"^\s*ALTER\s+DEFAULT\s+PRIVILEGES\b[^;]*?\bGRANT\s+(SELECT|ALL)\b"
                            r"[^;]*?\bON\s+TABLES\b", re.I | re.S)
_COLUMN_GRANT = re.compile(r"^\s*GRANT\s+(?:SELECT|ALL(?:\s+PRIVILEGES)?)\s*\(([^)]*)\)\s*ON\s+"
                           r"(?:TABLE\s+)?([\w.\"]+)\s+TO", re.I)


@family("governance", properties=PROPERTIES)
def governance_family(probe: ProbeInput) -> list[Finding]:
    catalog = probe.execution.catalog
    steps = probe.program.steps
    pii = pii_columns(catalog)
    return [pii_hash_salted(steps, pii, probe.answer.prose), grants_parse(steps),
            grants_name_pii(steps, pii), no_broad_grant(steps, catalog, pii)]


def pii_columns(catalog: Catalog) -> dict[str, set[str]]:
    """Table -> its PII columns."""
    out: dict[str, set[str]] = {}
    for table in catalog.tables.values():
        names = {c.name for c in table.columns if _PII.search(c.name)}
        if names:
            out[table.name] = names
    return out


def _all_pii(pii: dict[str, set[str]]) -> set[str]:
    return {c for names in pii.values() for c in names}


def pii_hash_salted(steps: tuple[Step, ...], pii: dict[str, set[str]], prose: str) -> Finding:
    prop = "pii-hash-salted"
    names = _all_pii(pii)
    unkeyed = []
    hashed = 0
    for step in steps:
        for match in _HASH.finditer(step.original or step.sql):
            args = match.group(2)
            hit = [n for n in names if re.search(rf"\b{re.escape(n)}\b", args, re.I)]
            if not hit and not (not names and _PII.search(args)):
                continue
            hashed += 1
            if not _KEYED.search(_LITERAL.sub("''", args)) and not _KEYED.search(
                    match.group(1)):
                unkeyed.append(f"{match.group(1)}({', '.join(hit) or args.strip()[:40]}) in "
                               f"{step.where}")
        for match in re.finditer(r"\bhmac\s*\(", step.original or step.sql, re.I):
            parts = _arguments(step.original or step.sql, match.end())
            if len(parts) < 2 or not any(re.search(rf"\b{re.escape(n)}\b", parts[0], re.I)
                                         for n in names):
                continue
            hashed += 1
            if _LITERAL_ONLY.fullmatch(parts[1]):
                unkeyed.append(f"hmac({parts[0].strip()[:40]}) keyed by a literal written in "
                               f"the SQL, which every reader of the view's definition sees, "
                               f"in {step.where}")
    if not hashed:
        return Finding.not_applicable(prop, "no PII column is hashed")
    if unkeyed and _ANONYMISED.search(prose):
        return Finding.failed(prop, f"an unsalted, unkeyed hash called anonymised: "
                              f"{unkeyed[0]}; the same value always hashes alike and a "
                              "dictionary of e-mails or phones reverses it")
    return Finding.passed(prop, f"{hashed} hash(es) of PII are keyed or salted, or not called "
                          "anonymised")


def _arguments(text: str, start: int) -> list[str]:
    """The top-level arguments of the call whose parenthesis opens just before `start`."""
    parts, depth, current, quoted = [], 0, "", False
    for char in text[start:]:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            if depth == 0:
                break
            depth -= 1
        elif not quoted and char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def _privilege_steps(steps: tuple[Step, ...]) -> list[Step]:
    return [s for s in steps if _GRANT.match(s.original or s.sql) or _POLICY.match(
        s.original or s.sql)]


def grants_parse(steps: tuple[Step, ...]) -> Finding:
    prop = "grants-parse"
    found = _privilege_steps(steps)
    if not found:
        return Finding.not_applicable(prop, "no GRANT or policy")
    for step in found:
        text = step.original or step.sql
        shape = _GRANT_SHAPE if _GRANT.match(text) else _POLICY_SHAPE
        if not shape.search(text):
            return Finding.failed(prop, f"{step.where} does not parse as a "
                                  f"{'grant' if shape is _GRANT_SHAPE else 'policy'}: "
                                  f"{' '.join(text.split())[:80]}")
    return Finding.passed(prop, f"{len(found)} grant(s) and policies parse")


def grants_name_pii(steps: tuple[Step, ...], pii: dict[str, set[str]]) -> Finding:
    prop = "grants-name-pii"
    names = _all_pii(pii)
    masking = [s for s in steps if _POLICY.match(s.original or s.sql) or (
        s.statement == "CREATE VIEW")]
    if not names:
        return Finding.not_applicable(prop, "the schema has no PII column")
    column_grants = [s for s in steps if _COLUMN_GRANT.match(s.original or s.sql)]
    if not masking and column_grants:
        # a column grant masks by leaving PII out; naming PII there is what no-broad-grant fails
        return Finding.passed(prop, f"{len(column_grants)} column grant(s) choose the columns "
                              "a role reads")
    if not masking:
        return Finding.not_applicable(prop, "no masking view, policy or column grant")
    text = "\n".join(s.original or s.sql for s in masking)
    named = sorted(n for n in names if re.search(rf"\b{re.escape(n)}\b", text, re.I))
    if not named:
        return Finding.failed(prop, f"the masking SQL names none of the PII columns "
                              f"{', '.join(sorted(names))}")
    return Finding.passed(prop, f"the masking SQL covers {', '.join(named)}")


def no_broad_grant(steps: tuple[Step, ...], catalog: Catalog, pii: dict[str, set[str]]
                   ) -> Finding:
    from sqlglot import exp

    prop = "no-broad-grant"
    views = [s for s in steps if s.statement == "CREATE VIEW"]
    grants = [s for s in steps if _GRANT.match(s.original or s.sql)]
    if not views or not grants:
        return Finding.not_applicable(prop, "no masking view beside grants")
    default = next((s for s in steps if _DEFAULT_GRANT.search(s.original or s.sql)), None)
    if views and default is not None:
        return Finding.failed(prop, f"{default.where} grants SELECT on every table later "
                              "created in the schema (a copy or new version of the PII "
                              "table included), beside the masking view")
    masked = {**_masked_by_views(views), **pii}
    view_names = {_qualified(v.tree.this.this if isinstance(v.tree.this, exp.Schema)
                             else v.tree.this) for v in views if v.tree is not None and
                  isinstance(v.tree, exp.Create) and isinstance(
                      v.tree.this.this if isinstance(v.tree.this, exp.Schema) else v.tree.this,
                      exp.Table)}
    for step in grants:
        text = step.original or step.sql
        if _BROAD.search(text):
            return Finding.failed(prop, f"{step.where} grants SELECT on all tables, the raw "
                                  "PII table included, beside the masking view")
        match = _ON_TABLE.search(text)
        tables = [t.strip().replace('"', "").lower() for t in match.group(1).split(",")
                  ] if match else []
        for table in tables:
            columns = _lookup(masked, table, view_names)
            if columns:
                return Finding.failed(prop, f"{step.where} grants {table} itself, whose "
                                      f"{', '.join(sorted(columns))} the view masks")
        column = _COLUMN_GRANT.match(text)
        columns = _lookup(masked, column.group(2).replace('"', "").lower(), view_names
                          ) if column else set()
        if column and columns:
            named = [c.strip().strip('"').lower() for c in column.group(1).split(",")]
            exposed = sorted(set(named) & columns)
            if exposed:
                return Finding.failed(prop, f"{step.where} grants {', '.join(exposed)} of "
                                      f"{_bare(column.group(2))} itself, beside the masking view")
    granted = " ".join(s.original or s.sql for s in grants).lower()
    for view in views:
        raw = _passed_through(view, pii)
        if raw and view.target and re.search(rf"\b{re.escape(view.target.split('.')[-1])}\b",
                                             granted):
            return Finding.failed(prop, f"the masking view {view.target} ({view.where}) masks "
                                  f"some PII but passes {', '.join(raw)} through unchanged")
    return Finding.passed(prop, "roles are granted the masking view, not the raw table")


def _lookup(masked: dict[str, set[str]], granted: str, views: set[str]) -> set[str]:
    """The PII columns of the granted table (`schema.table` or bare), none for a view."""
    bare = granted.split(".")[-1]
    if granted in views or ("." not in granted and any(v.split(".")[-1] == bare
                                                       for v in views)):
        return set()
    found: set[str] = set()
    for name, columns in masked.items():
        if name == granted or (("." not in name or "." not in granted) and (
                name.split(".")[-1] == bare)):
            found |= columns
    return found


def _bare(name: str) -> str:
    return name.strip().replace('"', "").split(".")[-1].lower()


def _select_of(view: Step) -> object | None:
    from sqlglot import exp

    tree = view.tree
    return tree.expression if isinstance(tree, exp.Create) and isinstance(
        tree.expression, exp.Select) else None


def _masked_by_views(views: list[Step]) -> dict[str, set[str]]:
    """Table -> the PII columns a view over it transforms or replaces (`'***' AS email`,
    `sha256(email)`): how the answer shows that a table the user already has, which the
    catalog lacks, holds PII. A column a view returns as it is masks nothing."""
    from sqlglot import exp

    out: dict[str, set[str]] = {}
    for view in views:
        select = _select_of(view)
        if not isinstance(select, exp.Select):
            continue
        hit: set[str] = set()
        for projection in select.expressions:
            node = projection.this if isinstance(projection, exp.Alias) else projection
            if isinstance(node, exp.Column):
                continue
            names = {str(c.name).lower() for c in node.find_all(exp.Column)}
            names.add(str(projection.alias).lower())
            hit |= {n for n in names if n and _PII.search(n)}
        sources = {_qualified(t) for t in select.find_all(exp.Table)}
        if hit and len(sources) == 1:
            out.setdefault(sources.pop(), set()).update(hit)
    return out


def _qualified(table: object) -> str:
    from sqlglot import exp

    assert isinstance(table, exp.Table)
    return f"{table.db}.{table.name}".lower().lstrip(".")


def _passed_through(view: Step, pii: dict[str, set[str]]) -> list[str]:
    """PII columns a view that masks some of its table's PII returns bare."""
    from sqlglot import exp

    select = _select_of(view)
    if not isinstance(select, exp.Select):
        return []
    sources = {str(t.name).lower() for t in select.find_all(exp.Table)}
    columns = {c for t in sources for c in pii.get(t, set())}
    if not columns:
        return []
    bare, inside = set(), set()
    for projection in select.expressions:
        node = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(node, exp.Column) and str(node.name).lower() in columns:
            bare.add(str(node.name).lower())
        else:
            inside |= {str(c.name).lower() for c in node.find_all(exp.Column)} & columns
    return sorted(bare) if inside - bare else []
