"""Text scorers: contains, any, all, regex. Each can be negated and limited to prose or code."""

from __future__ import annotations

import re
from typing import Literal

from ..answers import Answer
from . import Context, Score, ScoreFn, scorer

Where = Literal["all", "prose", "code"]


def _haystack(answer: Answer, where: Where) -> str:
    if where == "prose":
        return answer.prose
    if where == "code":
        return "\n".join(block.code for block in answer.code_blocks)
    return answer.text


def _scope(where: Where) -> str:
    return {"all": "the answer", "prose": "the answer's prose", "code": "the answer's code"}[where]


def _find(needles: list[str], answer: Answer, where: Where, case_sensitive: bool) -> list[bool]:
    hay = _haystack(answer, where)
    if not case_sensitive:
        hay = hay.lower()
        return [needle.lower() in hay for needle in needles]
    return [needle in hay for needle in needles]


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


@scorer("any")
def any_of(
    *, texts: list[str], negate: bool = False, case_sensitive: bool = False, where: Where = "all"
) -> ScoreFn:
    """At least one of `texts` appears.

    Passes: `{texts: [COMMENT ON, OPTIONS(description]}` on "COMMENT ON TABLE orders IS ...".
    Fails:  the same on an answer without either, with "none of 'COMMENT ON', ... appears".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        found = _find(texts, answer, where, case_sensitive)
        hits = [t for t, f in zip(texts, found, strict=True) if f]
        listed = ", ".join(repr(t) for t in texts)
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


@scorer("regex")
def regex(
    *, pattern: str, negate: bool = False, case_sensitive: bool = False, where: Where = "all"
) -> ScoreFn:
    """The answer matches the regular expression `pattern` (Python syntax, multi-line).

    Passes: `{pattern: "retries'?\\s*[=:]\\s*[1-9]"}` on "default_args={'retries': 3}".
    Fails:  the same on an answer without retries, with "no match for /retries.../".
    """
    compiled = re.compile(pattern, re.MULTILINE | (0 if case_sensitive else re.IGNORECASE))

    def score(answer: Answer, ctx: Context) -> Score:
        match = compiled.search(_haystack(answer, where))
        present = f"/{pattern}/ matches {match.group(0)[:60]!r}" if match else ""
        return _verdict(match is not None, negate, present,
                        f"no match for /{pattern}/ in {_scope(where)}")

    return score
