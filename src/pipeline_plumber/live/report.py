"""The live run's report: per case pass@k, pass^k and flakiness, the baseline's difference, cost
and prompt-cache use. Built from the run folder's results and a verdict per answer; pure.

`report.json`::

    {"format": "pipeline-plumber/live-report", "version": 1, "model", "repeats", "pass_rule",
     "cases": [{"case_id", "arm", "k", "answered", "scored", "passes", "pass_rate",
                "pass_at_k", "pass_hat_k", "flaky", "mean_score", "status", "statuses"}],
     "baseline": [{"case_id", "agent_pass_rate", "baseline_pass_rate", "delta",
                   "agent_mean_score", "baseline_mean_score"}],
     "totals": {"items", "ok", "error", "budget_exceeded", "missing", "from_api",
                "from_store", "cost_usd", "estimate_usd", "usage": {...}, "cache":
                {"write_tokens", "read_tokens", "hit_rate", "requests_reading", "requests"}},
     "judge": {"model", "sent", "failed", "skipped_for_budget", "cost_usd"} (when asked),
     "status": "pass|fail|budget_exceeded|incomplete"}

One pydantic model is both what a run writes and what `read_report` (and so `plumber eval
compare`) reads back: a report.json that is malformed, or of another format or version, is one
error naming the file.

A case passes under `pass_rule`: `all` (pass^k: every repeat passes; the default, since a user
meets one answer, not the best of k), `any` (pass@k) or `majority`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_serializer

from .. import untrusted_text as untrusted
from ..errors import InputError, Problem
from ..jsonsource import read_json_file
from ..yamlsource import format_path
from .prices import Usage
from .request import WorkItem

REPORT_FORMAT: Final = "pipeline-plumber/live-report"
REPORT_VERSION: Final = 1
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PassRule = Literal["all", "any", "majority"]
CaseStatus = Literal["pass", "fail", "incomplete"]
RunStatus = Literal["pass", "fail", "budget_exceeded", "incomplete"]
FRESH_SOURCES = ("api", "batch")
ResultLines = Mapping[str, Mapping[str, Any]]
"""The run folder's standing result line per request key (`RunFolder.results`)."""


@dataclass(frozen=True)
class Verdict:
    """How one answer scored: pass, fail or not-scored, with its weighted score."""

    status: str
    score: float | None = None


class _Part(BaseModel):
    """A part of `report.json`: immutable, and no key the format does not name."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseRow(_Part):
    """One case and arm over its repeats."""

    case_id: str
    arm: str
    k: int
    answered: int
    scored: int
    passes: int
    pass_rate: float | None
    pass_at_k: bool | None
    pass_hat_k: bool | None
    flaky: bool
    mean_score: float | None
    status: CaseStatus
    statuses: dict[str, int]


class BaselineRow(_Part):
    """What the agent's system prompt changes for one case."""

    case_id: str
    agent_pass_rate: float | None
    baseline_pass_rate: float | None
    delta: float | None
    agent_mean_score: float | None
    baseline_mean_score: float | None


class CacheUse(_Part):
    write_tokens: int
    read_tokens: int
    hit_rate: float | None
    requests_reading: int
    requests: int


class Totals(_Part):
    """Every answer of the run folder, whichever invocation asked for it."""

    items: int
    ok: int
    error: int
    budget_exceeded: int
    missing: int
    from_api: int
    from_store: int
    cost_usd: float
    estimate_usd: float | None
    usage: Usage
    cache: CacheUse

    @field_serializer("cost_usd", "estimate_usd")
    def _dollars(self, value: float | None) -> float | None:
        return None if value is None else round(value, 6)


class JudgeUse(_Part):
    """The judge's votes in this invocation: sent, failed, not sent for the budget, cost."""

    model: str
    sent: int
    failed: int
    skipped_for_budget: int
    cost_usd: float

    @field_serializer("cost_usd")
    def _dollars(self, value: float) -> float:
        return round(value, 6)


class LiveReport(_Part):
    """The live run's report: `to_json` is `report.json` (and `read_report` reads it back),
    `markdown` is `report.md`."""

    format: Literal["pipeline-plumber/live-report"] = REPORT_FORMAT
    version: Literal[1] = REPORT_VERSION
    model: str
    repeats: int
    pass_rule: PassRule
    status: RunStatus
    cases: list[CaseRow]
    baseline: list[BaselineRow]
    totals: Totals
    judge: JudgeUse | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"judge"} if self.judge is None else None)

    def markdown(self) -> str:
        return markdown(self)

    @property
    def agent_failed(self) -> bool:
        return any(c.status == "fail" for c in self.cases if c.arm == "agent")


def read_report(path: Path) -> LiveReport:
    """A run folder's `report.json`. Anything else (missing, unreadable, not JSON, another
    format or version, a field out of shape) is one InputError naming the file."""
    where = path.as_posix()
    try:
        data = read_json_file(path)
    except FileNotFoundError:
        raise InputError([Problem("no live run report here; run or resume the run first",
                                  file=where)]) from None
    except (OSError, ValueError) as err:
        raise InputError([Problem(f"not a live run report: {untrusted.plain(str(err), 200)}",
                                  file=where)]) from err
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise InputError([Problem(f"not a live run report (format is not '{REPORT_FORMAT}')",
                                  file=where, field="format")])
    if data.get("version") != REPORT_VERSION:
        version = untrusted.plain(repr(data.get("version")), 40)
        raise InputError([Problem(f"report version {version}; this plumber reads version "
                                  f"{REPORT_VERSION}: resume the run with this plumber to "
                                  "rewrite it", file=where, field="version")])
    try:
        return LiveReport.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        more = err.error_count() - 1
        text = str(first["msg"])
        raise InputError([Problem(
            untrusted.plain(text[:1].lower() + text[1:], 200)
            + (f" (and {more} more problem(s))" if more else ""), file=where,
            field=untrusted.plain(format_path(tuple(first["loc"])), 120) or None)]) from err


def build_report(items: Sequence[WorkItem], results: ResultLines,
                 verdicts: Mapping[str, Verdict], *, model: str, repeats: int,
                 pass_rule: PassRule = "all", estimate_usd: float | None = None,
                 judge: JudgeUse | None = None) -> LiveReport:
    groups: dict[tuple[str, str], list[WorkItem]] = {}
    for item in items:
        groups.setdefault((item.case_id, item.arm), []).append(item)
    cases = [_case(case_id, arm, group, results, verdicts, pass_rule)
             for (case_id, arm), group in groups.items()]
    by = {(c.case_id, c.arm): c for c in cases}
    baseline = [BaselineRow(case_id=case.case_id, agent_pass_rate=case.pass_rate,
                            baseline_pass_rate=other.pass_rate,
                            delta=_sub(case.pass_rate, other.pass_rate),
                            agent_mean_score=case.mean_score,
                            baseline_mean_score=other.mean_score)
                for (case_id, arm), case in by.items()
                if arm == "agent" and (other := by.get((case_id, "baseline"))) is not None]
    totals = _totals(items, results, estimate_usd)
    agent = [c for c in cases if c.arm == "agent"]
    status: RunStatus
    if totals.budget_exceeded or (judge is not None and judge.skipped_for_budget):
        status = "budget_exceeded"
    elif any(c.status == "fail" for c in agent):
        status = "fail"
    elif any(c.status == "incomplete" for c in agent):
        status = "incomplete"
    else:
        status = "pass"
    return LiveReport(model=model, repeats=repeats, pass_rule=pass_rule, status=status,
                      cases=cases, baseline=baseline, totals=totals, judge=judge)


def _case(case_id: str, arm: str, group: list[WorkItem], results: ResultLines,
          verdicts: Mapping[str, Verdict], rule: PassRule) -> CaseRow:
    statuses: dict[str, int] = {}
    scored = passes = 0
    scores: list[float] = []
    for item in group:
        status = str(results.get(item.key, {}).get("status", "missing"))
        statuses[status] = statuses.get(status, 0) + 1
        verdict = verdicts.get(item.key)
        if status != "ok" or verdict is None or verdict.status == "not-scored":
            continue
        scored += 1
        passes += verdict.status == "pass"
        if verdict.score is not None:
            scores.append(verdict.score)
    k = len(group)
    complete = scored == k
    case_status: CaseStatus
    if not complete:
        case_status = "incomplete"
    elif rule == "all":
        case_status = "pass" if passes == k else "fail"
    elif rule == "any":
        case_status = "pass" if passes > 0 else "fail"
    else:
        case_status = "pass" if passes * 2 > k else "fail"
    return CaseRow(case_id=case_id, arm=arm, k=k, answered=statuses.get("ok", 0), scored=scored,
                   passes=passes, pass_rate=passes / scored if scored else None,
                   pass_at_k=(passes > 0) if complete else None,
                   pass_hat_k=(passes == k) if complete else None,
                   flaky=0 < passes < scored,
                   mean_score=sum(scores) / len(scores) if scores else None,
                   status=case_status, statuses=statuses)


def _totals(items: Sequence[WorkItem], results: ResultLines,
            estimate_usd: float | None) -> Totals:
    counts = {"ok": 0, "error": 0, "budget_exceeded": 0, "missing": 0}
    fresh = stored = 0
    cost = 0.0
    usage = Usage()
    reading = fresh_agent = 0
    for item in items:
        result = results.get(item.key)
        status = str(result.get("status")) if result else "missing"
        counts[status] = counts.get(status, 0) + 1
        if result is None or status != "ok":
            continue
        if result.get("source") in FRESH_SOURCES:
            fresh += 1
            cost += float(result.get("cost_usd") or 0.0)
            used = Usage.from_json(result.get("usage") or {})
            usage = usage + used
            if item.arm == "agent":
                fresh_agent += 1
                reading += used.cache_read > 0
        else:
            stored += 1
    prompt = usage.prompt
    cache = CacheUse(write_tokens=usage.cache_write, read_tokens=usage.cache_read,
                     hit_rate=usage.cache_read / prompt if prompt else None,
                     requests_reading=reading, requests=fresh_agent)
    return Totals(items=len(items), ok=counts["ok"], error=counts["error"],
                  budget_exceeded=counts["budget_exceeded"], missing=counts["missing"],
                  from_api=fresh, from_store=stored, cost_usd=cost, estimate_usd=estimate_usd,
                  usage=usage, cache=cache)


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def markdown(report: LiveReport) -> str:
    """A short Markdown summary of the report, for a pull request or a job summary."""
    totals, cache = report.totals, report.totals.cache
    lines = [f"## Live eval: {report.status}", "",
             f"Model {untrusted.code(report.model)}, {report.repeats} repeat(s), "
             f"pass rule {untrusted.code(report.pass_rule)}.", "",
             "| case | arm | passes | pass@k | pass^k | flaky | mean score |",
             "|---|---|---|---|---|---|---|"]
    for case in report.cases:
        score = "n/a" if case.mean_score is None else f"{case.mean_score:.2f}"
        lines.append(f"| {untrusted.markdown(case.case_id)} | {untrusted.markdown(case.arm)} | "
                     f"{case.passes}/{case.k} | {_yes(case.pass_at_k)} | "
                     f"{_yes(case.pass_hat_k)} | {'flaky' if case.flaky else ''} | {score} |")
    if report.baseline:
        lines += ["", "### What the agent changes (agent vs no system prompt)", "",
                  "| case | agent | baseline | difference |", "|---|---|---|---|"]
        for row in report.baseline:
            delta = "n/a" if row.delta is None else f"{row.delta:+.0%}"
            lines.append(f"| {untrusted.markdown(row.case_id)} | {_pct(row.agent_pass_rate)} | "
                         f"{_pct(row.baseline_pass_rate)} | {delta} |")
    estimate = totals.estimate_usd
    lines += ["", f"- answers: {totals.ok} ok, {totals.error} error, "
              f"{totals.budget_exceeded} budget_exceeded; {totals.from_api} from the API, "
              f"{totals.from_store} from stored answers",
              f"- cost: ${totals.cost_usd:.4f}"
              + ("" if estimate is None else f" (estimated at most ${estimate:.4f})"),
              f"- prompt cache: {cache.write_tokens} tokens written, {cache.read_tokens} "
              f"read, hit rate {_pct(cache.hit_rate)} "
              f"({cache.requests_reading}/{cache.requests} requests read the cache)"]
    judge = report.judge
    if judge:
        lines.append(f"- judge {judge.model}: {judge.sent} votes sent, cost "
                     f"${judge.cost_usd:.4f}; {judge.skipped_for_budget} not sent "
                     f"(budget), {judge.failed} failed")
    return "\n".join(lines) + "\n"


def _yes(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")
