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
    "backfill": (r"back-?fill", r"re-?process", r"re-?comput", r"re-?build(s|ing)? (the )?"
                 r"(past|old|earlier|historical|previous|prior|a range|whole|affected)",
                 r"replay(s|ing)? (the )?(history|past|old)", r"re-?load(s|ing)? (the )?"
                 r"(past|old|history|historical|earlier)",
                 r"re-?run(s|ning)? (it |the (load|job|pipeline|dag) )?(for |over )?"
                 r"(past|old|earlier|historical|a (date )?range|the (affected|missing))",
                 r"catch-?up run", r"historical (re)?load"),
    "idempotent": (r"idempoten", r"re-?runn?able", r"safe to (re-?run|retry|run (it )?again|"
                   r"repeat)", r"retry-?safe", r"safely (re-?run|retried|retry|repeated)",
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
                      r"older (change|update|version|event)s? (arriv|come|land)",
                      r"straggler", r"event[- ]time"),
    "quality-gate": (r"validat", r"quality", r"\bdq\b", r"assert", r"reject", r"quarantin",
                     r"sanity check", r"fails? (the )?(run|pipeline|load|task)",
                     r"stops? the (run|load|pipeline)", r"block(s|ing)? (the )?(load|publish)"),
    "monitoring": (r"row[ _-]?counts?", r"freshness", r"stale", r"alert", r"monitor",
                   r"metrics?\b", r"\blag\b", r"page[sd]?\b", r"\bSLA\b", r"on-?call"),
    "retention": (r"retention", r"retain", r"expir", r"\bTTL\b", r"purge",
                  r"drop(s|ping)? (the )?(old|oldest|expired) partitions?",
                  r"detach(es|ing)? (the )?(old|oldest)", r"keep (only )?the last \d+"),
    "pruning": (r"prun", r"partition elimination", r"(scans?|reads?) only (the |one )?"
                r"(relevant |matching )?(partition|day|month)", r"partitions scanned",
                r"bytes (processed|scanned|billed)", r"skips? (the )?other partitions"),
    "grain": (r"\bgrain", r"granularity", r"one row per", r"each row (is|represents|records|"
              r"stands for)", r"a row (is|represents|records) (one|a|each)"),
    "scd2": (r"\bSCD ?2?\b", r"slowly[- ]changing", r"type[- ]?2\b", r"keeps? (the )?history",
             r"history of (every |each )?(change|version)", r"new version", r"valid_from",
             r"effective[- ](from|dat)", r"versioned (rows|dimension)"),
    "evolution": (r"evolv", r"additive", r"backward[- ]compatib", r"expand[ -]and[ -]contract",
                  r"migration", r"add(ing)? a (nullable )?column", r"without breaking",
                  r"columns? (arrive|arrives|are added|is added|come in|comes in) (as )?nullable",
                  r"(nothing|no column) is (ever )?(renamed|retyped|dropped) in place"),
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
