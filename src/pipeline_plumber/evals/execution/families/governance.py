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
                       r"([\w.\"]+)\s+TO", re.I)


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
            if not _KEYED.search(args) and not _KEYED.search(match.group(1)):
                unkeyed.append(f"{match.group(1)}({', '.join(hit) or args.strip()[:40]}) in "
                               f"{step.where}")
    if not hashed:
        return Finding.not_applicable(prop, "no PII column is hashed")
    if unkeyed and _ANONYMISED.search(prose):
        return Finding.failed(prop, f"an unsalted, unkeyed hash called anonymised: "
                              f"{unkeyed[0]}; the same value always hashes alike and a "
                              "dictionary of e-mails or phones reverses it")
    return Finding.passed(prop, f"{hashed} hash(es) of PII are keyed or salted, or not called "
                          "anonymised")


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
        s.statement == "CREATE VIEW") or (_GRANT.match(s.original or s.sql) and "(" in (
            s.original or s.sql).split(" ON ")[0])]
    if not names:
        return Finding.not_applicable(prop, "the schema has no PII column")
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
    prop = "no-broad-grant"
    views = [s for s in steps if s.statement == "CREATE VIEW"]
    grants = [s for s in steps if _GRANT.match(s.original or s.sql)]
    if not views or not grants:
        return Finding.not_applicable(prop, "no masking view beside grants")
    for step in grants:
        text = step.original or step.sql
        if _BROAD.search(text):
            return Finding.failed(prop, f"{step.where} grants SELECT on all tables, the raw "
                                  "PII table included, beside the masking view")
        match = _ON_TABLE.search(text)
        table = match.group(1).replace('"', "").split(".")[-1].lower() if match else ""
        if table in pii:
            return Finding.failed(prop, f"{step.where} grants {table} itself, whose "
                                  f"{', '.join(sorted(pii[table]))} the view masks")
    return Finding.passed(prop, "roles are granted the masking view, not the raw table")
