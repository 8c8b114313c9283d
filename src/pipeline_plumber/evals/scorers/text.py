"""Text scorers: contains, any, all, regex, concept. Each can be negated and limited to prose
or code.

Prose is graded fairly: a `concept` is a small synonym set (backfill = reprocess / recompute /
rebuild past partitions / re-run a date range ...), so an answer that says "recomputing old
months" is credited like one that says "backfill". `concept` checks one or more of them;
`any` and `regex` take `concepts:` too, as alternatives to their own texts. An item that
execution decides (the answer's load is idempotent, its money is exact) is graded by
`executes`/`behaves`, not by a word.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Literal

from ..answers import Answer
from . import REGISTRY, Context, Score, ScoreFn, scorer

Where = Literal["all", "prose", "code"]

# One entry per concept: the phrasings that say it, as case-insensitive regular expressions.
# Keep each small and specific: a synonym that also means something else makes a keyword pass.
CONCEPTS: dict[str, tuple[str, ...]] = {
    "backfill": (r"back-?fill", r"re-?process", r"re-?comput",
                 r"re-?build(s|ing)? (the )?(past|old|earlier|historical|previous|prior|a range|"
                 r"whole|affected)",
                 r"re-?load(s|ing)? (the )?(past|old|history|historical|earlier)",
                 r"re-?run(s|ning)? (it |the (load|job|pipeline|dag) )?(for |over )?(past|old|"
                 r"earlier|historical|a (date )?range|the (affected|missing))", r"catch-?up run",
                 r"historical (re)?load", r"replay"),
    "idempotent": (r"idempoten", r"re-?runn?able",
                   r"safe to (re-?run|retry|run (it )?again|repeat)", r"retry-?safe",
                   r"safely (re-?run|retried|retry|repeated)",
                   r"re-?run(ning|s)? (it |the load |the job )?changes nothing",
                   r"(running|run) (it )?twice (changes nothing|gives the same|leaves)",
                   r"same result (on|after|every) (each |a )?(re-?run|retry|run)",
                   r"no duplicates? (on|after) (a )?(re-?run|retry)"),
    "incremental": (r"incremental", r"\bCDC\b", r"change data capture", r"watermark",
                    r"high[- ]water", r"since the last (successful )?(run|load|sync|extract)",
                    r"(only|just) (the )?(new|changed|updated) rows", r"\bdelta(s)?\b",
                    r"cursor (column|value)"),
    "deduplicate": (r"de-?dup", r"duplicates?", r"DISTINCT ON", r"ROW_NUMBER\(", r"QUALIFY",
                    r"(latest|last|newest) (row|version|change|record) per",
                    r"one row per (key|id)"),
    "staging": (r"stag(e|ing)", r"landing (table|zone|area)", r"\w+_candidate\b",
                r"candidate table", r"scratch table", r"temp(orary)? table", r"swap",
                r"shadow table", r"build (it )?(aside|next to)"),
    "late-arriving": (r"late[- ]arriv", r"arriv\w* late", r"out[- ]of[- ]order",
                      r"older (change|update|version|event)s? (arriv|come|land)", r"straggler",
                      r"event[- ]time"),
    "quality-gate": (r"validat", r"quality", r"\bdq\b", r"assert", r"reject", r"quarantin",
                     r"sanity check", r"fails? (the )?(run|pipeline|load|task)",
                     r"stops? the (run|load|pipeline)", r"block(s|ing)? (the )?(load|publish)"),
    "monitoring": (r"row[ _-]?counts?", r"freshness", r"stale", r"alert", r"monitor",
                   r"metrics?\b", r"\blag\b", r"page[sd]?\b", r"\bSLA\b", r"on-?call"),
    "retention": (r"retention", r"retain", r"expir", r"\bTTL\b", r"purge",
                  r"drop(s|ping)? (the )?(old|oldest|expired) partitions?",
                  r"detach(es|ing)? (the )?(old|oldest)", r"keep (only )?the last \d+",
                  r"kept for",
                  r"delet(es?|ed|ing) (it |them |the \w+ )?after \d+ (days|months|years)"),
    "pruning": (r"prun", r"partition elimination", r"partitions scanned",
                r"bytes (processed|scanned|billed)", r"scans? only", r"reads? only",
                r"skips? (the )?other (partitions|months|days|weeks)"),
    "grain": (r"\bgrain", r"granularity", r"one row per",
              r"each row (is|represents|records|stands for)",
              r"a row (is|represents|records) (one|a|each)"),
    "scd2": (r"\bSCD ?2?\b", r"slowly[- ]changing", r"type[- ]?2\b", r"keeps? (the )?history",
             r"history of (every |each )?(change|version)", r"new version", r"valid_from",
             r"effective[- ](from|dat)", r"versioned (rows|dimension)"),
    "evolution": (r"evolv", r"additive", r"backward[- ]compatib", r"expand[ -]and[ -]contract",
                  r"migration", r"add(ing)? a (nullable )?column", r"without breaking",
                  r"columns? (arrive|arrives|are added|is added|come in|comes in) (as )?nullable",
                  r"(nothing|no column) is (ever )?(renamed|retyped|dropped) in place",
                  r"(insert|add)(ing)? a (new )?row (in|into|to) the (lookup|reference|code)",
                  r"existing rows stay valid", r"no consumer (notices|breaks)"),
    "alerting": (r"on_failure_callback", r"email_on_failure", r"alert", r"notif", r"Slack",
                 r"PagerDuty", r"page", r"on[- ]call", r"on-?call"),
    "freshness": (r"fresh", r"stale", r"\blag\b", r"latency", r"recency",
                  r"arriv(ed|es) (late|on time)", r"newest (row|record|event)", r"staleness",
                  r"last (successful )?(load|run)", r"(file|data|batch|feed) is late",
                  r"arriv(es|ed|ing) late", r"(age|date|time) of the (newest|latest)",
                  r"newest \w+ (is|must be) (yesterday|today|older)"),
    "volume": (r"volume", r"row count", r"row[- ]count", r"number of rows", r"too few rows",
               r"drop in rows", r"how many rows", r"(unusually|suspiciously) (few|many) rows",
               r"row totals?"),
    "placement": (r"before (the )?(load|publish|release|swap|downstream|consumers|dashboards)",
                  r"before (publishing|releasing|loading)",
                  r"before (anything|any (row|data)|the (batch|data|rows)|data) (is |are |goes |"
                  r"go |gets? )?(released|published|loaded|exposed|shared|visible|live)",
                  r"after (the )?(load|model)", r"quarantine",
                  r"fails? (the )?(run|pipeline|load|task|scheduled query)",
                  r"blocks? (the )?(publish|release|load|run|refresh)",
                  r"stops? the (run|pipeline|load|publish|release)",
                  r"(holds?|holding|keeps?) (the (batch|data|rows)|it) back",
                  r"nothing is (released|published|loaded)"),
    "etl-or-elt": (r"\bE(TL|LT)\b", r"extract,? transform,? (and )?load",
                   r"transform(s|ed|ing)? (it |them |the data )?(inside|in|within) (the "
                   r")?(warehouse|database|duckdb|snowflake|bigquery|postgres\w*)",
                   r"load(s|ed)? (it |the data )?raw,? (and )?then transform"),
    "extract-mode": (r"incremental", r"\bCDC\b", r"change data capture",
                     r"full (load|extract|snapshot|reload|file|day)", r"watermark",
                     r"high[- ]water", r"since the last (run|load|sync)", r"changed rows",
                     r"cursor",
                     r"(only|just) (the )?(previous |new |latest )?(day's|day|new) (files?|"
                     r"folder|partition)"),
    "checks-placed": (r"quality", r"validat", r"\bdq\b", r"assert", r"reject", r"quarantin",
                      r"sanity check",
                      r"checks? (run )?(before|after) the (load|swap|merge|move|insert)",
                      r"rolls? (the transaction |it )?back"),
    "row-counts": (r"row[ _-]?counts?", r"rows? (loaded|read|written)", r"count\(\*\)"),
    "pii": (r"\bPII\b", r"personal data", r"personally identifiable", r"direct identifier",
            r"special category", r"personal (information|details)",
            r"identif(y|ies) (a|the|one) (person|individual)"),
    "erasure": (r"erasure", r"right to be forgotten", r"deletion request", r"Article 17",
                r"delete"),
    "ownership": (r"owner", r"\baccountable", r"steward", r"custodian", r"data controller",
                  r"who (owns|approves|answers for)",
                  r"(is|are) responsible for (the )?(table|data|dataset)"),
    "lineage": (r"lineage", r"downstream", r"copies", r"backups?", r"replica",
                r"where (the )?data (flows|goes|comes from|ends up)", r"upstream"),
    "column-order": (r"equality", r"leftmost", r"left-most", r"prefix", r"first column",
                     r"leading column", r"column order",
                     r"(the )?equal(s|ity)? (column|test|filter)s? (comes? )?(first|before)",
                     r"sorted by (the )?(key|column)s? in (that|this) order"),
    "index-kind": (r"B-?tree", r"partial", r"covering", r"INCLUDE", r"BRIN", r"GIN", r"hash index",
                   r"\bART\b", r"radix tree", r"zone ?maps?",
                   r"(expression|functional) index", r"index on (an |the )?expression"),
    "index-cost": (r"write", r"storage", r"disk", r"\bspace\b",
                   r"\b\d+(\.\d+)? ?([KMGT]i?B|bytes)\b", r"redundant", r"bloat", r"insert",
                   r"update cost", r"maintenance cost", r"upkeep", r"overhead",
                   r"maintain(ed|s|ing)? (on|with|at|for|by|during) (every|each|all)"),
    "diagnosis": (r"EXPLAIN", r"seq(uential)? scan", r"full (table )?scan", r"query plan",
                  r"bytes (processed|scanned)", r"profile", r"execution plan",
                  r"(the )?plan (shows|reads|says)"),
    "supporting-structures": (r"\bindex", r"partition", r"cluster(ing)? (key|by)", r"CLUSTER BY",
                              r"materialized"),
    "plan-evidence": (r"EXPLAIN\s*\(?\s*ANALYZE", r"query profile",
                      r"bytes (processed|scanned|billed)", r"dry[- ]run"),
    "partition-size": (r"per partition", r"partition size", r"granularity", r"\b[GT]B\b",
                       r"\d+ ?MB\b",
                       r"million rows", r"\b(daily|monthly|weekly|hourly) partitions",
                       r"rows (a|per) (day|month)", r"one partition per"),
    "deletes": (r"delete", r"tombstone", r"soft[- ]delete", r"remov(ed|al|als|es|ing)\b",
                r"purg(e|ed|es|ing)", r"clos(ed|es|ing)\b", r"disappear"),
    "validation": (r"validat", r"quality", r"check", r"assert", r"reject", r"quarantin",
                   r"screen(ed|s|ing)?\b", r"set aside", r"sanity", r"held back",
                   r"hold(s)? (it|them|the batch) back"),
    "surrogate-key": (r"surrogate", r"synthetic key", r"warehouse key", r"meaningless key",
                      r"(generated|identity|integer) key (of|for) (the|each) dimension",
                      # in DDL: a `*_key` column the database numbers itself
                      r"\w+_key\s+(?:NUMBER|INT\w*|BIGINT|SMALLINT)\b[^,;\n]{0,60}?"
                      r"\b(?:IDENTITY|AUTOINCREMENT|GENERATED|nextval)",
                      r"\w+_key\s+(?:BIG)?SERIAL\b"),
    "natural-key": (r"natural key", r"business key", r"source (system )?(key|id)", r"durable key",
                    r"(id|key|identifier) (from|of) the source",
                    r"(crm|erp|shop|app)'?s? (own )?(id|key)",
                    # in DDL: a table keyed by `team_key` that also holds the source's `team_id`
                    r"(?P<entity>[a-z]\w*)_key\b[^;]{0,400}?\b(?P=entity)_(?:id|code|number)\b"),
    "scd": (r"\bSCD", r"slowly changing", r"type[- ]?[0-7]\b", r"keeps? (the )?history",
            r"history of", r"new version", r"overwrit"),
}


def _haystack(answer: Answer, where: Where) -> str:
    if where == "prose":
        return answer.prose
    if where == "code":
        return "\n".join(block.code for block in answer.code_blocks)
    return answer.text


def _haystacks(answer: Answer, where: Where) -> tuple[str, ...]:
    """Where a phrase is looked for: the text as written, then (outside code) its prose with the
    whitespace of each paragraph collapsed to one space, so "business\nkey" reads "business
    key". The text as written comes first: line anchors and code fences still match there."""
    hay = _haystack(answer, where)
    if where == "code":
        return (hay,)
    key = ("prose, whitespace collapsed",)
    flat = answer.cache.get(key)
    if flat is None:
        flat = "\n\n".join(re.sub(r"\s+", " ", paragraph).strip()
                           for paragraph in re.split(r"\n[ \t]*\n", answer.prose)
                           if paragraph.strip())
        answer.cache[key] = flat
    return (hay, str(flat))


def _scope(where: Where) -> str:
    return {"all": "the answer", "prose": "the answer's prose", "code": "the answer's code"}[where]


def concept_patterns(names: list[str]) -> list[re.Pattern[str]]:
    """Compiled synonym patterns of the named concepts; ValueError naming an unknown one."""
    unknown = [n for n in names if n not in CONCEPTS]
    if unknown:
        raise ValueError(f"unknown concept(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(CONCEPTS))}")
    return [re.compile(rf"(?<![\w-])(?:{'|'.join(CONCEPTS[n])})\w*", re.IGNORECASE | re.MULTILINE)
            for n in names]


def _said(pattern: re.Pattern[str], hays: tuple[str, ...]) -> str | None:
    match = next((m for hay in hays if (m := pattern.search(hay))), None)
    return match.group(0)[:60] if match else None


def _find(needles: list[str], answer: Answer, where: Where, case_sensitive: bool) -> list[bool]:
    hays = _haystacks(answer, where)
    if not case_sensitive:
        hays = tuple(hay.lower() for hay in hays)
        needles = [needle.lower() for needle in needles]
    return [any(needle in hay for hay in hays) for needle in needles]


def _verdict(found: bool, negate: bool, present: str, absent: str) -> Score:
    if negate:
        return Score.fail(present) if found else Score.ok(absent)
    return Score.ok(present) if found else Score.fail(absent)


@scorer("contains")
def contains(
    *, text: str, negate: bool = False, case_sensitive: bool = False, where: Where = "all"
) -> ScoreFn:
    """The answer contains `text` (case-insensitive unless `case_sensitive`).

    Passes: `{text: "ON CONFLICT"}` on "... ON CONFLICT (order_id) DO UPDATE ...".
    Fails:  `{text: "ON CONFLICT"}` on "INSERT INTO orders SELECT ..." with
            "'ON CONFLICT' does not appear in the answer".
    Negated, `{text: "SELECT *", negate: true}` fails on an answer that says SELECT *.
    """

    def score(answer: Answer, ctx: Context) -> Score:
        (found,) = _find([text], answer, where, case_sensitive)
        return _verdict(found, negate, f"{text!r} appears in {_scope(where)}",
                        f"{text!r} does not appear in {_scope(where)}")

    return score


@scorer("any", version=2)
def any_of(
    *, texts: list[str], concepts: list[str] | None = None, negate: bool = False,
    case_sensitive: bool = False, where: Where = "all"
) -> ScoreFn:
    """At least one of `texts` appears, or a phrasing of one of `concepts`.

    Passes: `{texts: [COMMENT ON, OPTIONS(description]}` on "COMMENT ON TABLE orders IS ...";
            `{texts: [backfill], concepts: [backfill]}` on "recomputing old months".
    Fails:  the same on an answer without either, with "none of 'COMMENT ON', ... appears".
    """
    synonyms = concept_patterns(concepts or [])

    def score(answer: Answer, ctx: Context) -> Score:
        found = _find(texts, answer, where, case_sensitive)
        hits = [t for t, f in zip(texts, found, strict=True) if f]
        hays = _haystacks(answer, where)
        hits += [said for p in synonyms if (said := _said(p, hays))]
        listed = ", ".join([repr(t) for t in texts] + [f"concept {c}" for c in concepts or []])
        return _verdict(bool(hits), negate, f"{hits[0]!r} appears in {_scope(where)}" if hits
                        else "", f"none of {listed} appears in {_scope(where)}")

    return score


@scorer("all")
def all_of(
    *, texts: list[str], negate: bool = False, case_sensitive: bool = False, where: Where = "all"
) -> ScoreFn:
    """Every one of `texts` appears; the score is the share found.

    Passes: `{texts: [EXPLAIN, ANALYZE]}` on "run EXPLAIN (ANALYZE, BUFFERS) ...".
    Fails:  `{texts: [row count, freshness]}` on an answer without 'freshness', with
            "missing from the answer: 'freshness'".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        found = _find(texts, answer, where, case_sensitive)
        missing = [t for t, f in zip(texts, found, strict=True) if not f]
        share = 1 - len(missing) / len(texts) if texts else 1.0
        if negate:
            present = [t for t, f in zip(texts, found, strict=True) if f]
            if len(present) == len(texts):
                return Score.fail(f"all of them appear in {_scope(where)}")
            return Score.ok(f"not all appear; missing {', '.join(map(repr, missing))}")
        if missing:
            return Score.fail(f"missing from {_scope(where)}: {', '.join(map(repr, missing))}",
                              share)
        return Score.ok(f"all {len(texts)} appear in {_scope(where)}")

    return score


@scorer("regex", version=2)
def regex(
    *, pattern: str, concepts: list[str] | None = None, negate: bool = False,
    case_sensitive: bool = False, where: Where = "all"
) -> ScoreFn:
    """The answer matches the regular expression `pattern` (Python syntax, multi-line), or a
    phrasing of one of `concepts`.

    Passes: `{pattern: "retries'?\\s*[=:]\\s*[1-9]"}` on "default_args={'retries': 3}".
    Fails:  the same on an answer without retries, with "no match for /retries.../".
    """
    compiled = re.compile(pattern, re.MULTILINE | (0 if case_sensitive else re.IGNORECASE))
    synonyms = concept_patterns(concepts or [])

    def score(answer: Answer, ctx: Context) -> Score:
        hays = _haystacks(answer, where)
        said = _said(compiled, hays)
        if said is None:
            said = next((s for p in synonyms if (s := _said(p, hays))), None)
        also = f" or concept {', '.join(concepts)}" if concepts else ""
        return _verdict(said is not None, negate, f"/{pattern}/{also} matches {said!r}",
                        f"no match for /{pattern}/{also} in {_scope(where)}")

    return score


@scorer("concept")
def concept(
    *, concepts: list[str], require: Literal["any", "all"] = "all", negate: bool = False,
    where: Where = "prose"
) -> ScoreFn:
    """The answer says each of `concepts` (or any one, with `require: any`) in any of its usual
    phrasings: the synonym sets of `plumber eval scorers concept`. The score is the share said.

    Passes: `{concepts: [backfill]}` on "to recompute old months, re-run it for the date range";
            `{concepts: [idempotent]}` on "the load is safe to rerun".
    Fails:  `{concepts: [backfill]}` on an answer that never says how past data is reloaded,
            with "not said in the answer's prose: backfill (backfill, reprocess, ...)".
    """
    patterns = concept_patterns(concepts)
    if not concepts:
        raise ValueError("name at least one concept")

    def score(answer: Answer, ctx: Context) -> Score:
        hays = _haystacks(answer, where)
        said = {name: _said(p, hays) for name, p in zip(concepts, patterns, strict=True)}
        missing = [n for n, s in said.items() if s is None]
        found = [f"{n} ({s!r})" for n, s in said.items() if s is not None]
        ok = bool(found) if require == "any" else not missing
        present = f"said in {_scope(where)}: " + ", ".join(found)
        absent = f"not said in {_scope(where)}: " + ", ".join(
            f"{n} ({', '.join(_plain(CONCEPTS[n][:3]))}, ...)" for n in missing)
        if negate or ok or require == "any":
            return _verdict(ok, negate, present, absent)
        return Score.fail(absent, 1 - len(missing) / len(concepts))

    return score


def _plain(patterns: tuple[str, ...]) -> list[str]:
    """Patterns shown as words in explanations: `re-?process` reads `reprocess`."""
    return [re.sub(r"\\b|\(.*?\)|[?\\^$*+]", "", p).replace("-", "") for p in patterns]


def _concept_table() -> str:
    """The synonym sets, for `plumber eval scorers concept`."""
    return "\n".join(f"  {name}: /{' | '.join(patterns)}/"
                     for name, patterns in sorted(CONCEPTS.items()))


REGISTRY["concept"] = replace(REGISTRY["concept"], doc=REGISTRY["concept"].doc
                              + "\n\nConcepts (regular expressions, case-insensitive, each "
                              "matched from the start of a word):\n" + _concept_table())
