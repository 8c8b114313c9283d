"""The LLM judge in a live run: votes sent to the pinned judge model, priced, and held to the
run's budget.

Offline, judge checks read recorded verdicts (`evals/recordings/judge/`). In a live run the
votes that are not recorded yet are asked of the judge model, one request per vote, and stored
beside the answers (the recordings with `--record`, else the local cache), so a rerun or a
replay asks nothing. A vote that would pass `--max-usd` is not sent: its check is "not scored"
and the run ends with the budget status. `--replay` never sends a vote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, Problem
from ..evals.scorers.judge import JUDGE_MODEL, JudgeStore
from .prices import Prices, Usage, estimate_tokens
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
        self._write = write

    def get(self, key: str) -> str | None:
        for store in self._read:
            text = store.get(key)
            if text is not None:
                return text
        return None

    def put(self, key: str, vote: int, request: dict[str, Any], text: str) -> Path:
        if self._write is None:
            return self.folder / f"{key}.json"
        return JudgeStore(self._write).put(key, vote, request, text)


@dataclass
class LiveJudge:
    """A `JudgeClient`: sends one vote, returns its text; None when the budget forbids it or the
    request failed for good (the check is then "not scored", never a pass)."""

    options: RunOptions
    prices: Prices
    spent_before: float
    api_key: str | None = None
    base_url: str | None = None
    sent: int = 0
    failed: int = 0
    skipped_for_budget: int = 0
    spent_usd: float = 0.0
    errors: list[str] = field(default_factory=list)
    _client: Any = None

    def __call__(self, request: dict[str, Any]) -> str | None:
        price = self.prices.find(str(request["model"]))
        if self.options.max_usd is not None:
            if price is None:
                self.skipped_for_budget += 1
                return None
            text = str(request.get("system", "")) + str(request.get("messages", ""))
            worst = (estimate_tokens(text) * max(price.input, price.cache_write_5m)
                     + int(request["max_tokens"]) * price.output) / 1_000_000
            if self.spent_before + self.spent_usd + worst > self.options.max_usd:
                self.skipped_for_budget += 1
                return None
        import anthropic

        if self._client is None:
            self._client = anthropic.Anthropic(
                api_key=self.api_key, base_url=self.base_url,
                max_retries=self.options.max_retries, timeout=self.options.timeout)
        try:
            message = self._client.messages.create(**request)
        except anthropic.APIError as err:
            self.failed += 1
            self.errors.append(redact(f"{type(err).__name__}: {err}", self.api_key))
            return None
        self.sent += 1
        if price is not None:
            self.spent_usd += self.prices.cost(price, Usage.from_api(message.usage.model_dump()))
        return "".join(block.text for block in message.content if block.type == "text")

    @property
    def budget_exceeded(self) -> bool:
        return self.skipped_for_budget > 0

    def summary(self) -> dict[str, Any]:
        return {"model": JUDGE_MODEL, "sent": self.sent, "failed": self.failed,
                "skipped_for_budget": self.skipped_for_budget,
                "cost_usd": round(self.spent_usd, 6)}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
