"""LLM judge: a rubric criterion graded by a pinned judge model, several votes, threshold in code.

The judge is asked to reason first and give its verdict last, as `SCORE: <0-10>` on the final
line. Each vote is its own request (the vote number is part of the recording key, since the API
has no temperature to make answers repeatable). The mean of the valid votes, divided by 10, is
compared with `threshold` here, in code, never by the model.

Verdicts come from `evals/recordings/judge/` (a live run asks the judge for the missing ones
before scoring and stores them there or in its cache). With no stored verdict, the check is
"not scored": reported, excluded from the case's score, never counted as a pass.

Recorded verdict, one JSON file per vote, `evals/recordings/judge/<key>.json`::

    {"format": "pipeline-plumber/judge-verdict", "version": 1,
     "key": "<sha256 of the canonical request and vote>", "vote": 0,
     "model": "<JUDGE_MODEL>", "request": {<Messages API request, no key>},
     "text": "<the judge's reply: reasoning, then SCORE: 8>"}
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ... import atomic
from ...jsonsource import read_json_file
from ..answers import Answer
from . import Context, Score, ScoreFn, scorer

JUDGE_MODEL = "claude-opus-5"
"""Pinned, and different from the model under test (a live run refuses to test it); recorded
in every run log."""
JUDGE_MAX_TOKENS = 1024
DEFAULT_VOTES = 3
JUDGE_FORMAT = "pipeline-plumber/judge-verdict"
JUDGE_VERSION = 1

JUDGE_SYSTEM = (
    "You grade one answer of a data-engineering assistant against one criterion. Read the "
    "user's request and the answer. First reason step by step about whether and how well the "
    "answer meets the criterion, quoting it where you can. Only then, on the last line and "
    "nothing after it, write `SCORE: N` where N is an integer from 0 (criterion not met at all) "
    "to 10 (fully met)."
)
_SCORE_LINE = re.compile(r"^\s*\**SCORE:\**\s*(\d+(?:\.\d+)?)\s*$")

def judge_request(criterion: str, prompt: str, answer_text: str) -> dict[str, Any]:
    """The Messages API request for one vote (pure: no I/O, no key)."""
    user = (f"<request>\n{prompt}\n</request>\n\n<answer>\n{answer_text}\n</answer>\n\n"
            f"<criterion>\n{criterion}\n</criterion>")
    return {
        "model": JUDGE_MODEL,
        "max_tokens": JUDGE_MAX_TOKENS,
        "system": JUDGE_SYSTEM,
        "messages": [{"role": "user", "content": user}],
    }


def request_key(request: dict[str, Any], vote: int) -> str:
    canonical = json.dumps({"request": request, "vote": vote}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_verdict(text: str) -> float | None:
    """The verdict on the last non-empty line, `SCORE: N`, as a value in [0, 1]; None when the
    reply does not end with one (a verdict before the reasoning does not count) or N > 10."""
    lines = [line for line in text.splitlines() if line.strip()]
    match = _SCORE_LINE.match(lines[-1]) if lines else None
    if match is None:
        return None
    value = float(match.group(1))
    return value / 10 if 0 <= value <= 10 else None


class JudgeStore:
    """Recorded judge verdicts in a folder; a missing or unreadable file is a miss."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str) -> str | None:
        try:
            data = read_json_file(self.folder / f"{key}.json")
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != JUDGE_FORMAT:
            return None
        text = data.get("text")
        return text if isinstance(text, str) and data.get("key") == key else None

    def put(self, key: str, vote: int, request: dict[str, Any], text: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.json"
        record = {"format": JUDGE_FORMAT, "version": JUDGE_VERSION, "key": key, "vote": vote,
                  "model": request.get("model"), "request": request, "text": text}
        atomic.write_atomic(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        return path


@scorer("judge")
def judge(*, criterion: str, votes: int = DEFAULT_VOTES, threshold: float = 0.7) -> ScoreFn:
    """A criterion graded by the pinned judge model: mean of `votes` verdicts >= `threshold`.

    Passes: `{criterion: "Explains how the schema evolves without breaking consumers"}` with
            recorded votes ending `SCORE: 8`, `SCORE: 9`, `SCORE: 7` (mean 0.80 >= 0.70).
    Fails:  the same with votes 4, 5, 3: "judge mean 0.40 < 0.70 over 3 votes".
    Offline with nothing recorded: not scored, "no recorded judge verdict (3 votes missing)".
    """

    def score(answer: Answer, ctx: Context) -> Score:
        request = judge_request(criterion, ctx.prompt, answer.text)
        store: JudgeStore | None = ctx.resources.judge_store
        values: list[float] = []
        missing = unparsable = 0
        for vote in range(votes):
            key = request_key(request, vote)
            text = store.get(key) if store else None
            if text is None:
                missing += 1
                continue
            value = parse_verdict(text)
            if value is None:
                unparsable += 1
            else:
                values.append(value)
        if missing:
            return Score.not_scored(f"no recorded judge verdict ({missing} of {votes} votes "
                                    f"missing, key {request_key(request, 0)[:12]}); record them "
                                    "with a live run")
        if not values:
            return Score.not_scored(f"no vote ended with a 'SCORE: N' line ({unparsable} "
                                    "unparsable)")
        mean = sum(values) / len(values)
        spread = f", votes {', '.join(f'{v:.1f}' for v in values)}"
        extra = f", {unparsable} unparsable" if unparsable else ""
        if mean >= threshold:
            return Score.ok(f"judge mean {mean:.2f} >= {threshold:.2f} over {len(values)} "
                            f"votes{spread}{extra}", mean)
        return Score.fail(f"judge mean {mean:.2f} < {threshold:.2f} over {len(values)} votes"
                          f"{spread}{extra}", mean)

    return score
