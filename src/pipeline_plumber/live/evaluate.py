"""`plumber eval run --live`, as one library call in five steps: plan (or resume), send the
answers, ask the judge, score, write the reports.

The answers are scored by the same scorers as the offline run (`evals.scoring.score_case`) and
reported twice: the offline run's reports (eval-log.json, junit.xml, summary.md, agent arm,
every repeat) and the live report (report.json, report.md: pass@k, pass^k, flakiness, the
baseline's difference, cost and the prompt cache).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import atomic
from ..errors import BudgetExceeded, CheckFailed, InputError, PlumberError, Problem, RequestsFailed
from ..evals.answers import Answer
from ..evals.cases import Case, Suite
from ..evals.runner import RunResult, run_spec
from ..evals.scorers import Resources
from ..evals.scorers.judge import JUDGE_MODEL
from ..evals.scoring import score_case
from .answers import AnswerStore, Stores, send_answers
from .budget import estimate
from .judging import (
    JudgeSummary,
    LayeredJudgeStore,
    ask_judge,
    check_model_differs_from_judge,
    estimate_judge,
    pending_votes,
)
from .prices import Prices
from .report import REPORT_JSON, REPORT_MD, LiveReport, PassRule, Verdict, build_report
from .request import CaseInput, LiveConfig, PackPrompts, WorkItem, plan_items
from .run_folder import RunFolder, RunPlan, write_json_atomic
from .sender import Progress, SendCounts, Sender, SendOptions, require_key

Announce = Callable[[str], None]


@dataclass(frozen=True)
class LiveRequest:
    """Everything `plumber eval run --live` was asked to do."""

    evals_dir: Path
    kb_dir: Path
    templates_dir: Path
    run_dir: Path
    resume: bool
    config: LiveConfig
    options: SendOptions
    prices: Prices
    repeats: int = 1
    baseline: bool = False
    batch: bool = False
    record: bool = False
    cache_dir: Path | None = None
    recordings_dir: Path | None = None
    case_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    pass_rule: PassRule = "all"
    poll_interval: float = 10.0
    api_key: str | None = None
    base_url: str | None = None

    @property
    def recordings(self) -> Path:
        return self.recordings_dir or self.evals_dir / "recordings"


@dataclass
class LiveOutcome:
    """What a live run did: its folder and plan, this invocation's counts, the report, the
    offline run's results (for its reports) and the recordings pruned."""

    folder: RunFolder
    plan: RunPlan
    counts: SendCounts
    report: LiveReport
    offline_run: RunResult
    judge_errors: list[str] = field(default_factory=list)
    pruned: list[Path] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        """What the terminal shows after the run: flaky, unsent and failed cases, the
        baseline's difference, requests and cost, the judge."""
        report, counts = self.report, self.counts
        lines = []
        for case in report.cases:
            if case.flaky:
                lines.append(f"flaky: {case.case_id} ({case.arm}) passed {case.passes}/"
                             f"{case.scored} repeats")
            if case.statuses.get("budget_exceeded"):
                lines.append(f"budget_exceeded: {case.case_id} ({case.arm}): "
                             f"{case.statuses['budget_exceeded']} answer(s) not asked")
            if case.statuses.get("error"):
                lines.append(f"error: {case.case_id} ({case.arm}): {case.statuses['error']} "
                             f"answer(s) failed after retries; see {self.folder.results_path}")
        for row in report.baseline:
            delta = "" if row.delta is None else f" ({row.delta:+.0%})"
            lines.append(f"baseline: {row.case_id}: agent {_pct(row.agent_pass_rate)}, "
                         f"without it {_pct(row.baseline_pass_rate)}{delta}")
        totals, cache = report.totals, report.totals.cache
        lines.append(
            f"{counts.sent} request(s) sent ({counts.attempts} attempts), {counts.from_store} "
            f"answered from stored answers, {counts.skipped} already in the run; cost "
            f"${totals.cost_usd:.4f}; cache {cache.write_tokens} written, {cache.read_tokens} "
            f"read, hit rate {_pct(cache.hit_rate)}; status {report.status}")
        judge = report.judge
        if judge and (judge.sent or judge.skipped_for_budget or judge.failed):
            lines.append(f"judge {judge.model}: {judge.sent} vote(s) sent, cost "
                         f"${judge.cost_usd:.4f}; {judge.skipped_for_budget} not sent (budget), "
                         f"{judge.failed} failed")
        return lines

    def failure(self) -> PlumberError | None:
        """The error that carries the run's exit code, or None when every case passes. The
        budget comes first (a partial run gives no verdict on the suite; the failures it found
        are still listed), then a failed case, then requests that failed for good."""
        totals, judge = self.report.totals, self.report.judge
        votes = judge.skipped_for_budget if judge else 0
        if totals.budget_exceeded or votes:
            return BudgetExceeded(f"--max-usd stopped the run: {totals.budget_exceeded} "
                                  f"answer(s) and {votes} judge vote(s) not sent")
        if self.report.agent_failed:
            return CheckFailed()
        if totals.error or totals.missing:
            return RequestsFailed(f"{totals.error + totals.missing} answer(s) missing after "
                                  f"their retries; see {self.folder.results_path}")
        return None


@dataclass
class _Run:
    """What the steps share: the suite, the plan, where answers and votes live, the sender."""

    req: LiveRequest
    suite: Suite
    folder: RunFolder
    plan: RunPlan
    stores: Stores
    judge_store: LayeredJudgeStore
    sender: Sender
    estimate_usd: float | None = None

    def case(self, item: WorkItem) -> Case:
        return next(c for c in self.suite.cases if c.id == item.case_id)


def evaluate_live(req: LiveRequest, *, announce: Announce | None = None,
                  progress: Progress | None = None) -> LiveOutcome:
    """Plan (or resume), send, judge, score and write (see the module docstring)."""
    say = announce or (lambda _: None)
    run = _plan(req)
    if not req.api_key and not req.options.replay:
        _require_stored(run)
    if not req.resume:
        run.folder.start(run.plan)
    _announce_estimate(run, say)
    counts = _send(run, progress)
    judge = None if req.options.replay else _judge(run, say, progress)
    report, offline_run = _score(run, judge)
    pruned = _write(run, report)
    return LiveOutcome(run.folder, run.plan, counts, report, offline_run,
                       judge.errors if judge else [], pruned)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _plan(req: LiveRequest) -> _Run:
    """Load the suite, plan the items (or read them back from the run folder), open the
    stores; nothing is written yet."""
    from ..build import build_pack
    from ..evals import cases as cases_mod

    suite = cases_mod.load_suite(req.evals_dir, cases_mod.load_checklists(req.kb_dir),
                                 with_answers=False)
    folder = RunFolder(req.run_dir)
    if req.resume:
        plan = folder.load_plan()
    else:
        chosen = cases_mod.select(suite.cases, ids=req.case_ids, tags=req.tags,
                                  commands=req.commands)
        pack = build_pack(req.kb_dir, req.templates_dir, plugin=False)
        prompts = PackPrompts.from_files(pack.files, pack.kb.agent.name)
        inputs = [CaseInput(c.id, c.command, c.spec.prompt, c.prompt_digest) for c in chosen]
        items = plan_items(inputs, prompts, req.config, repeats=req.repeats,
                           baseline=req.baseline)
        plan = RunPlan(req.config, tuple(items), prompts.agent_body, req.repeats, req.baseline,
                       req.batch, suite.kb_digest, {"pass_rule": req.pass_rule})
    missing = sorted({i.case_id for i in plan.items} - {c.id for c in suite.cases})
    if missing:
        raise InputError([Problem(f"the run has case '{c}', which the eval folder no longer "
                                  "has", file=folder.spec_path.as_posix()) for c in missing])
    check_model_differs_from_judge(plan.config.model)
    return _Run(req, suite, folder, plan, _stores(req), _judge_store(req),
                Sender(req.options, req.prices, req.api_key, req.base_url,
                       spent_usd=folder.spent_usd() if req.resume else 0.0))


def _stores(req: LiveRequest) -> Stores:
    record_store = AnswerStore(req.recordings)
    lookup: list[tuple[str, AnswerStore]] = [("recording", record_store)]
    cache = AnswerStore(req.cache_dir) if req.cache_dir else None
    if cache is not None:
        lookup.append(("cache", cache))
    return Stores(lookup=lookup, cache=cache, record_to=record_store if req.record else None)


def _judge_store(req: LiveRequest) -> LayeredJudgeStore:
    """Votes are read from the recordings, then the cache; written where answers are kept."""
    cache = req.cache_dir / "judge" if req.cache_dir else None
    write = req.recordings / "judge" if req.record else cache
    return LayeredJudgeStore([req.recordings / "judge", *([cache] if cache else [])], write)


def _require_stored(run: _Run) -> None:
    """Without a key, every answer and every judge vote the run needs must already be stored;
    checked before the run folder is created or anything is sent (one line, exit 2)."""
    done = run.folder.results() if run.folder.spec_path.is_file() else {}
    texts: list[tuple[Case, str]] = []
    unanswered = 0
    for item in run.plan.items:
        result = done.get(item.key, {})
        text = (result.get("text") if result.get("status") == "ok"
                else run.stores.stored_text(item))
        if isinstance(text, str):
            texts.append((run.case(item), text))
        else:
            unanswered += 1
    if unanswered:
        require_key(None, unanswered, "request(s) have no stored answer",
                    "run offline from recordings with --replay")
    votes = pending_votes(run.suite, texts, run.judge_store)
    if votes:
        require_key(None, len(votes), "judge vote(s) on stored answers have no stored verdict",
                    "record the votes once with a live run and --record")


def _announce_estimate(run: _Run, say: Announce) -> None:
    """Before sending: at most what the answers left to ask cost, and, apart, the votes."""
    req, model = run.req, run.plan.config.model
    done = run.folder.results()
    left = [i for i in run.plan.items if done.get(i.key, {}).get("status") != "ok"]
    price = req.prices.find(model)
    if price is not None:
        est = estimate(left, req.prices, price, batch=run.plan.batch)
        run.estimate_usd = est.max_usd
        say(f"estimate: at most ${est.max_usd:.4f} for {est.requests} request(s) to {model} "
            f"(input ${est.input_usd:.4f}, output at most ${est.output_max_usd:.4f}); "
            "stored answers cost nothing")
    else:
        say(f"estimate: no price for model '{model}' in {req.prices.source}")
    if req.options.replay:
        return
    vote_count, judge_usd = estimate_judge(run.suite, [run.case(i) for i in left],
                                           run.plan.config.max_tokens, req.prices)
    if vote_count:
        bound = "no price known" if judge_usd is None else f"at most ${judge_usd:.4f}"
        say(f"estimate: judge {JUDGE_MODEL}, at most {vote_count} vote(s), {bound}; "
            "stored votes cost nothing")


def _send(run: _Run, progress: Progress | None) -> SendCounts:
    """Bring every planned item to a result line: through the sender, or Message Batches."""
    if run.plan.batch:
        from .batch import execute_batch

        return execute_batch(run.plan.items, run.folder, sender=run.sender, stores=run.stores,
                             model=run.plan.config.model, ttl=run.plan.config.cache_ttl,
                             poll_interval=run.req.poll_interval, progress=progress)
    return send_answers(run.plan.items, run.folder, sender=run.sender, stores=run.stores,
                        progress=progress)


def _judge(run: _Run, say: Announce, progress: Progress | None) -> JudgeSummary:
    """Ask the judge for every vote the answers need and no store holds, through the same
    sender, held to what the run has spent so far."""
    results = run.folder.results()
    answered = [(run.case(item), str(results[item.key].get("text") or ""))
                for item in run.plan.items if results.get(item.key, {}).get("status") == "ok"]
    votes = pending_votes(run.suite, answered, run.judge_store)
    if votes:
        say(f"judge: asking {JUDGE_MODEL} for {len(votes)} vote(s)")
    run.sender.budget.spent = run.folder.spent_usd()
    summary = ask_judge(votes, run.judge_store, run.sender, progress=progress)
    for error in summary.errors[:3]:
        say(f"judge: {error}")
    return summary


def _score(run: _Run, judge: JudgeSummary | None) -> tuple[LiveReport, RunResult]:
    """Score every answer with the offline scorers; the live report and the offline run."""
    results = run.folder.results()
    verdicts: dict[str, Verdict] = {}
    offline_results = []
    with Resources(judge_store=run.judge_store) as resources:
        for item in run.plan.items:
            result = results.get(item.key)
            if not result or result.get("status") != "ok":
                continue
            case = run.case(item)
            scored = score_case(case, _answer(run, item, result), run.suite.rubric_for(case),
                                resources=resources)
            verdicts[item.key] = Verdict(scored.status, scored.score)
            if item.arm == "agent":
                offline_results.append(scored)
    chosen = tuple(run.case(i) for i in {i.case_id: i for i in run.plan.items}.values())
    model = run.plan.config.model
    offline_run = RunResult(
        {**run_spec(run.suite, chosen, "live"),
         "live_run": run.req.run_dir.as_posix(), "model": model}, offline_results)
    report = build_report(run.plan.items, results, verdicts, model=model,
                          repeats=run.plan.repeats, pass_rule=run.req.pass_rule,
                          estimate_usd=run.estimate_usd,
                          judge=judge.use() if judge is not None else None)
    return report, offline_run


def _answer(run: _Run, item: WorkItem, result: Mapping[str, Any]) -> Answer:
    provenance: Literal["live", "recorded"] = (
        "live" if result.get("source") in ("api", "batch") else "recorded")
    return Answer(str(result.get("text") or ""), provenance,
                  f"{run.folder.results_path.as_posix()}#{item.key[:12]}",
                  meta={"model": str(result.get("model") or run.plan.config.model),
                        "repeat": str(item.repeat), "key": item.key, "arm": item.arm,
                        "source": str(result.get("source"))})


def _write(run: _Run, report: LiveReport) -> list[Path]:
    """The live report into the run folder; with `--record`, older recordings of every case
    whose repeats are all answered are pruned (the offline run replays every recording)."""
    write_json_atomic(run.folder.path / REPORT_JSON, report.to_json())
    atomic.write_atomic(run.folder.path / REPORT_MD, report.markdown())
    if not run.req.record or run.stores.record_to is None:
        return []
    results = run.folder.results()
    groups: dict[tuple[str, str], list[WorkItem]] = {}
    for item in run.plan.items:
        groups.setdefault((item.case_id, item.arm), []).append(item)
    removed: list[Path] = []
    for (case_id, arm), group in groups.items():
        if all(results.get(i.key, {}).get("status") == "ok" for i in group):
            removed += run.stores.record_to.prune(case_id, arm, {i.key for i in group})
    return removed
