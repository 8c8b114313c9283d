"""The live run's report: per case pass@k, pass^k and flakiness, the baseline's difference, cost
and prompt-cache use. Built from the run folder's results and a verdict per answer; pure.

`report.json`::

    {"format": "pipeline-plumber/live-report", "version": 1, "model", "repeats", "pass_rule",
     "cases": [{"case_id", "arm", "k", "answered", "scored", "passes", "pass_rate",
                "pass_at_k", "pass_hat_k", "flaky", "mean_score", "status", "statuses"}],
     "baseline": [{"case_id", "agent_pass_rate", "baseline_pass_rate", "delta",
                   "agent_mean_score", "baseline_mean_score"}],
     "totals": {"items", "ok", "error", "budget_exceeded", "from_api", "from_store",
                "cost_usd", "estimate_usd", "usage": {...}, "cache": {"write_tokens",
                "read_tokens", "hit_rate", "requests_reading"}},
     "status": "pass|fail|budget_exceeded|incomplete"}

A case passes under `pass_rule`: `all` (pass^k: every repeat passes; the default, since a user
meets one answer, not the best of k), `any` (pass@k) or `majority`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .. import untrusted_text as untrusted
from .prices import Usage
from .request import WorkItem

REPORT_FORMAT = "pipeline-plumber/live-report"
REPORT_VERSION = 1
PassRule = Literal["all", "any", "majority"]
FRESH_SOURCES = ("api", "batch")


@dataclass(frozen=True)
class Verdict:
    """How one answer scored: pass, fail or not-scored, with its weighted score."""

    status: str
    score: float | None = None


@dataclass(frozen=True)
class CaseRow:
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
    status: str
    statuses: dict[str, int]


@dataclass(frozen=True)
class BaselineRow:
    """What the agent's system prompt changes for one case."""

    case_id: str
    agent_pass_rate: float | None
    baseline_pass_rate: float | None
    delta: float | None
    agent_mean_score: float | None
    baseline_mean_score: float | None


@dataclass(frozen=True)
class CacheUse:
    write_tokens: int
    read_tokens: int
    hit_rate: float | None
    requests_reading: int
    requests: int


@dataclass(frozen=True)
class Totals:
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


@dataclass(frozen=True)
class JudgeUse:
    """The judge's votes in this invocation: sent, failed, not sent for the budget, cost."""

    model: str
    sent: int
    failed: int
    skipped_for_budget: int
    cost_usd: float


@dataclass(frozen=True)
class LiveReport:
    """The live run's report; `to_json` is `report.json`, `markdown` is `report.md`."""

    model: str
    repeats: int
    pass_rule: PassRule
    status: str
    cases: list[CaseRow]
    baseline: list[BaselineRow]
    totals: Totals
    judge: JudgeUse | None = None

    def to_json(self) -> dict[str, Any]:
        totals = asdict(self.totals)
        totals["usage"] = self.totals.usage.to_json()
        totals["cost_usd"] = round(self.totals.cost_usd, 6)
        if self.totals.estimate_usd is not None:
            totals["estimate_usd"] = round(self.totals.estimate_usd, 6)
        out = {"format": REPORT_FORMAT, "version": REPORT_VERSION, "model": self.model,
               "repeats": self.repeats, "pass_rule": self.pass_rule, "status": self.status,
               "cases": [asdict(c) for c in self.cases],
               "baseline": [asdict(b) for b in self.baseline], "totals": totals}
        if self.judge is not None:
            out["judge"] = {**asdict(self.judge), "cost_usd": round(self.judge.cost_usd, 6)}
        return out

    def markdown(self) -> str:
        return markdown(self.to_json())

    @property
    def agent_failed(self) -> bool:
        return any(c.status == "fail" for c in self.cases if c.arm == "agent")


def build_report(items: Sequence[WorkItem], results: Mapping[str, Mapping[str, Any]],
                 verdicts: Mapping[str, Verdict], *, model: str, repeats: int,
                 pass_rule: PassRule = "all", estimate_usd: float | None = None,
                 judge: JudgeUse | None = None) -> LiveReport:
    groups: dict[tuple[str, str], list[WorkItem]] = {}
    for item in items:
        groups.setdefault((item.case_id, item.arm), []).append(item)
    cases = [_case(case_id, arm, group, results, verdicts, pass_rule)
             for (case_id, arm), group in groups.items()]
    by = {(c.case_id, c.arm): c for c in cases}
    baseline = [BaselineRow(case.case_id, case.pass_rate, other.pass_rate,
                            _sub(case.pass_rate, other.pass_rate), case.mean_score,
                            other.mean_score)
                for (case_id, arm), case in by.items()
                if arm == "agent" and (other := by.get((case_id, "baseline"))) is not None]
    totals = _totals(items, results, estimate_usd)
    agent = [c for c in cases if c.arm == "agent"]
    if totals.budget_exceeded or (judge is not None and judge.skipped_for_budget):
        status = "budget_exceeded"
    elif any(c.status == "fail" for c in agent):
        status = "fail"
    elif any(c.status == "incomplete" for c in agent):
        status = "incomplete"
    else:
        status = "pass"
    return LiveReport(model, repeats, pass_rule, status, cases, baseline, totals, judge)


def _case(case_id: str, arm: str, group: list[WorkItem],
          results: Mapping[str, Mapping[str, Any]], verdicts: Mapping[str, Verdict],
          rule: PassRule) -> CaseRow:
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
    answered = statuses.get("ok", 0)
    complete = scored == k
    if not complete:
        case_status = "incomplete"
    elif rule == "all":
        case_status = "pass" if passes == k else "fail"
    elif rule == "any":
        case_status = "pass" if passes > 0 else "fail"
    else:
        case_status = "pass" if passes * 2 > k else "fail"
    return CaseRow(case_id, arm, k, answered, scored, passes,
                   passes / scored if scored else None,
                   (passes > 0) if complete else None, (passes == k) if complete else None,
                   0 < passes < scored, sum(scores) / len(scores) if scores else None,
                   case_status, statuses)


def _totals(items: Sequence[WorkItem], results: Mapping[str, Mapping[str, Any]],
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
    cache = CacheUse(usage.cache_write, usage.cache_read,
                     usage.cache_read / prompt if prompt else None, reading, fresh_agent)
    return Totals(len(items), counts["ok"], counts["error"], counts["budget_exceeded"],
                  counts["missing"], fresh, stored, cost, estimate_usd, usage, cache)


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def markdown(report: Mapping[str, Any]) -> str:
    """A short Markdown summary of a `report.json`, for a pull request or a job summary."""
    totals = report["totals"]
    cache = totals["cache"]
    lines = [f"## Live eval: {report['status']}", "",
             f"Model {untrusted.code(str(report['model']))}, {report['repeats']} repeat(s), "
             f"pass rule {untrusted.code(str(report['pass_rule']))}.", "",
             "| case | arm | passes | pass@k | pass^k | flaky | mean score |",
             "|---|---|---|---|---|---|---|"]
    for case in report["cases"]:
        score = "n/a" if case["mean_score"] is None else f"{case['mean_score']:.2f}"
        lines.append(f"| {untrusted.markdown(case['case_id'])} | {case['arm']} | "
                     f"{case['passes']}/{case['k']} | "
                     f"{_yes(case['pass_at_k'])} | {_yes(case['pass_hat_k'])} | "
                     f"{'flaky' if case['flaky'] else ''} | {score} |")
    if report["baseline"]:
        lines += ["", "### What the agent changes (agent vs no system prompt)", "",
                  "| case | agent | baseline | difference |", "|---|---|---|---|"]
        for row in report["baseline"]:
            delta = row["delta"]
            lines.append(f"| {untrusted.markdown(row['case_id'])} | "
                         f"{_pct(row['agent_pass_rate'])} | "
                         f"{_pct(row['baseline_pass_rate'])} | "
                         f"{'n/a' if delta is None else f'{delta:+.0%}'} |")
    estimate = totals["estimate_usd"]
    lines += ["", f"- answers: {totals['ok']} ok, {totals['error']} error, "
              f"{totals['budget_exceeded']} budget_exceeded; {totals['from_api']} from the API, "
              f"{totals['from_store']} from stored answers",
              f"- cost: ${totals['cost_usd']:.4f}"
              + ("" if estimate is None else f" (estimated at most ${estimate:.4f})"),
              f"- prompt cache: {cache['write_tokens']} tokens written, {cache['read_tokens']} "
              f"read, hit rate {_pct(cache['hit_rate'])} "
              f"({cache['requests_reading']}/{cache['requests']} requests read the cache)"]
    judge = report.get("judge")
    if judge:
        lines.append(f"- judge {judge['model']}: {judge['sent']} votes sent, cost "
                     f"${judge['cost_usd']:.4f}; {judge['skipped_for_budget']} not sent "
                     f"(budget), {judge['failed']} failed")
    return "\n".join(lines) + "\n"


def _yes(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")
