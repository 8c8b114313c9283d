"""The LLM judge in a live run: votes asked of the pinned judge model, concurrently, priced, and
held to the run's budget.

Offline, judge checks read recorded verdicts (`evals/recordings/judge/`). In a live run, once the
answers are in, every vote the answers' judge checks need and no store holds is sent to the
judge model as a work item of the run's one `Sender`: the same concurrency, retries, budget,
billing of failed attempts and key redaction as the answers. Each verdict is stored beside the
answers: in the recordings with `--record`, else in the local cache. Scoring then reads them
like recorded ones, so a rerun or a replay asks nothing. A vote that would pass `--max-usd` is
not sent: its check is "not scored" and the run ends with the budget status. `--replay` sends
no vote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, Problem
from ..evals.cases import Case, Suite
from ..evals.scorers.judge import (
    DEFAULT_VOTES,
    JUDGE_MODEL,
    JudgeStore,
    judge_request,
    request_key,
)
from .budget import request_worst_case_usd
from .prices import Prices
from .report import JudgeUse
from .request import WorkItem
from .sender import Progress, Sender

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
    """One judge request: the vote's index among the check's votes, and its key."""

    key: str
    vote: int
    request: dict[str, Any]
    case_id: str

    def work_item(self) -> WorkItem:
        return WorkItem(self.key, self.case_id, "judge", self.vote, self.request, "")


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
                    out.append(Vote(key, vote, request, case.id))
    return out


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
                usd += n * request_worst_case_usd(request, price,
                                                  extra_tokens=answer_max_tokens)
    return count, (usd if price is not None else None)


@dataclass
class JudgeSummary:
    sent: int = 0
    failed: int = 0
    skipped_for_budget: int = 0
    cost_usd: float = 0.0
    errors: list[str] = field(default_factory=list)

    def use(self) -> JudgeUse:
        return JudgeUse(model=JUDGE_MODEL, sent=self.sent, failed=self.failed,
                        skipped_for_budget=self.skipped_for_budget, cost_usd=self.cost_usd)


def ask_judge(votes: list[Vote], store: JudgeStore, sender: Sender, *,
              progress: Progress | None = None) -> JudgeSummary:
    """Send `votes` through the run's sender, storing each verdict as it arrives."""

    def keep(item: WorkItem, line: dict[str, Any], usage_api: Mapping[str, Any] | None) -> None:
        if line["status"] == "ok":
            store.put(item.key, item.repeat, dict(item.request), str(line["text"]))

    counts = sender.send([v.work_item() for v in votes], keep,
                         what="judge vote(s) have no stored verdict",
                         fix="record the votes once with a live run and --record",
                         progress=progress)
    return JudgeSummary(sent=counts.ok, failed=counts.errors,
                        skipped_for_budget=counts.budget_exceeded, cost_usd=counts.spent_usd,
                        errors=counts.error_texts)
