"""The LLM judge in a live run: votes asked of the pinned judge model, concurrently, priced, and
held to the run's budget.

Offline, judge checks read recorded verdicts (`evals/recordings/judge/`). In a live run, once the
answers are in, every vote the answers' judge checks need and no store holds is sent to the
judge model, `-j` at a time (the SDK retries 429/529 honouring `retry-after`), and stored beside
the answers: in the recordings with `--record`, else in the local cache. Scoring then reads them
like recorded ones, so a rerun or a replay asks nothing. A vote that would pass `--max-usd` is
not sent: its check is "not scored" and the run ends with the budget status. `--replay` sends
no vote.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, Problem
from ..evals.cases import Case, Suite
from ..evals.scorers.judge import (
    DEFAULT_VOTES,
    JUDGE_MAX_TOKENS,
    JUDGE_MODEL,
    JudgeStore,
    judge_request,
    request_key,
)
from .prices import MTOK, ModelPrice, Prices, Usage, estimate_tokens
from .runner import RunOptions, redact

_DATE_SUFFIX = re.compile(r"-\d{8}$")


def same_model(a: str, b: str) -> bool:
    """`claude-x-1` and `claude-x-1-20250101` are the same model."""
    return _DATE_SUFFIX.sub("", a) == _DATE_SUFFIX.sub("", b)


def check_model_differs_from_judge(model: str) -> None:
    """A model grading its own answers flatters itself: refuse to test the judge model."""
    if same_model(model, JUDGE_MODEL):
        raise InputError([Problem(
            f"'{model}' is the pinned judge model; test another model, so that answers are "
            "not graded by the model that wrote them", field="--model")])


class LayeredJudgeStore(JudgeStore):
    """Reads verdicts from the recordings, then the cache; writes where the run keeps answers."""

    def __init__(self, read: list[Path], write: Path | None) -> None:
        super().__init__(write or read[0])
        self._read = [JudgeStore(folder) for folder in read]
        self._write = JudgeStore(write) if write else None
        self._memory: dict[str, str] = {}  # this run's votes, when there is nowhere to keep them

    def get(self, key: str) -> str | None:
        if key in self._memory:
            return self._memory[key]
        for store in self._read:
            text = store.get(key)
            if text is not None:
                return text
        return None

    def put(self, key: str, vote: int, request: dict[str, Any], text: str) -> Path:
        self._memory[key] = text
        if self._write is None:
            return self.folder / f"{key}.json"
        return self._write.put(key, vote, request, text)


@dataclass(frozen=True)
class Vote:
    key: str
    vote: int
    request: dict[str, Any]


def pending_votes(suite: Suite, answered: Iterable[tuple[Case, str]],
                  store: JudgeStore) -> list[Vote]:
    """Every vote that the judge checks of these (case, answer text) pairs need and `store`
    does not hold, each once."""
    seen: set[str] = set()
    out = []
    for case, text in answered:
        for check in suite.checks_for(case):
            if check.scorer != "judge":
                continue
            request = judge_request(str(check.args["criterion"]), case.spec.prompt, text)
            for vote in range(int(check.args.get("votes", DEFAULT_VOTES))):
                key = request_key(request, vote)
                if key not in seen and store.get(key) is None:
                    seen.add(key)
                    out.append(Vote(key, vote, request))
    return out


def vote_bound_usd(request: dict[str, Any], price: ModelPrice, *, extra_tokens: int = 0) -> float:
    """At most what one vote costs: its input (plus `extra_tokens`) at the dearer input rate,
    and all of its `max_tokens` written."""
    text = str(request.get("system", "")) + str(request.get("messages", ""))
    tokens = estimate_tokens(text) + extra_tokens
    return (tokens * max(price.input, price.cache_write_5m)
            + int(request.get("max_tokens", JUDGE_MAX_TOKENS)) * price.output) / MTOK


def estimate_judge(suite: Suite, cases: Iterable[Case], answer_max_tokens: int,
                   prices: Prices) -> tuple[int, float | None]:
    """At most how many votes the answers to `cases` (one entry per answer) can need, and at
    most what they cost: each vote reads the prompt, the criterion and an answer as long as
    `max_tokens`, and writes `JUDGE_MAX_TOKENS`. None when the judge model has no price."""
    price = prices.find(JUDGE_MODEL)
    count = 0
    usd = 0.0
    for case in cases:
        for check in suite.checks_for(case):
            if check.scorer != "judge":
                continue
            request = judge_request(str(check.args["criterion"]), case.spec.prompt, "")
            n = int(check.args.get("votes", DEFAULT_VOTES))
            count += n
            if price is not None:
                usd += n * vote_bound_usd(request, price, extra_tokens=answer_max_tokens)
    return count, (usd if price is not None else None)


@dataclass
class JudgeSummary:
    sent: int = 0
    failed: int = 0
    skipped_for_budget: int = 0
    cost_usd: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"model": JUDGE_MODEL, "sent": self.sent, "failed": self.failed,
                "skipped_for_budget": self.skipped_for_budget,
                "cost_usd": round(self.cost_usd, 6)}


def ask_judge(votes: list[Vote], store: JudgeStore, *, options: RunOptions, prices: Prices,
              spent_before: float, api_key: str | None, base_url: str | None) -> JudgeSummary:
    """Send `votes`, at most `options.jobs` at a time, storing each verdict as it arrives."""
    summary = JudgeSummary()
    if votes and not api_key:
        raise InputError([Problem(
            f"ANTHROPIC_API_KEY is not set and {len(votes)} judge vote(s) have no stored "
            "verdict; set the key, or record the votes once with a live run and --record")])
    if votes:
        asyncio.run(_ask(votes, store, options, prices, spent_before, api_key, base_url,
                         summary))
    return summary


async def _ask(votes: list[Vote], store: JudgeStore, options: RunOptions, prices: Prices,
               spent_before: float, api_key: str | None, base_url: str | None,
               summary: JudgeSummary) -> None:
    import anthropic  # slow to import: only where a live call is made

    price = prices.find(JUDGE_MODEL)
    limit = asyncio.Semaphore(options.jobs)
    reserved = 0.0

    async def one(client: anthropic.AsyncAnthropic, vote: Vote) -> None:
        nonlocal reserved
        async with limit:
            cost_bound = 0.0
            if options.max_usd is not None:
                cost_bound = (vote_bound_usd(vote.request, price) if price is not None
                              else float("inf"))
                if spent_before + summary.cost_usd + reserved + cost_bound > options.max_usd:
                    summary.skipped_for_budget += 1
                    return
                reserved += cost_bound
            try:
                message = await client.messages.create(**vote.request)
            except anthropic.APIError as err:
                summary.failed += 1
                summary.errors.append(redact(f"{type(err).__name__}: {err}", api_key))
                return
            finally:
                reserved -= cost_bound
            summary.sent += 1
            if price is not None:
                summary.cost_usd += prices.cost(price, Usage.from_api(message.usage.model_dump()))
            text = "".join(b.text for b in message.content if b.type == "text")
            store.put(vote.key, vote.vote, vote.request, text)

    client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url,
                                      max_retries=options.max_retries, timeout=options.timeout)
    try:
        await asyncio.gather(*(one(client, vote) for vote in votes))
    finally:
        await client.close()
