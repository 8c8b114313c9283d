"""`plumber eval run --live`, as one library call: plan (or resume), send, score, report.

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
from ..errors import (
    BudgetExceeded,
    CheckFailed,
    InputError,
    PlumberError,
    Problem,
    RequestsFailed,
)
from ..evals.scorers.judge import JUDGE_MODEL
from .judging import (
    LayeredJudgeStore,
    ask_judge,
    check_model_differs_from_judge,
    estimate_judge,
    pending_votes,
)
from .prices import Prices
from .report import PassRule, Verdict, build_report, markdown
from .request import CaseInput, LiveConfig, PackPrompts, WorkItem, plan_items
from .run import RunPlan, load, start
from .runner import (
    RunOptions,
    Stores,
    Tally,
    estimate,
    execute,
    require_key,
)
from .store import AnswerStore, RunFolder, write_json_atomic

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


@dataclass(frozen=True)
class LiveRequest:
    """Everything `plumber eval run --live` was asked to do."""

    evals_dir: Path
    kb_dir: Path
    templates_dir: Path
    run_dir: Path
    resume: bool
    config: LiveConfig
    options: RunOptions
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


@dataclass
class LiveOutcome:
    folder: RunFolder
    plan: RunPlan
    tally: Tally
    report: dict[str, Any]
    offline_run: Any  # evals.runner.RunResult: the offline run's reports need it
    estimate_usd: float | None
    pruned: list[Path] = field(default_factory=list)

    def failure(self) -> PlumberError | None:
        """The error that carries the run's exit code, or None when every case passes. The
        budget comes first (a partial run gives no verdict on the suite; the failures it found
        are still listed), then a failed case, then requests that failed for good."""
        totals = self.report["totals"]
        unsent = int(totals["budget_exceeded"])
        votes = int(self.report.get("judge", {}).get("skipped_for_budget") or 0)
        if unsent or votes:
            return BudgetExceeded(f"--max-usd stopped the run: {unsent} answer(s) and {votes} "
                                  "judge vote(s) not sent")
        if any(c["status"] == "fail" for c in self.report["cases"] if c["arm"] == "agent"):
            return CheckFailed()
        if totals["error"] or totals["missing"]:
            return RequestsFailed(f"{totals['error'] + totals['missing']} answer(s) missing "
                                  f"after their retries; see {self.folder.results_path}")
        return None


Announce = Callable[[str], None]


def require_key_for_what_is_left(items: tuple[WorkItem, ...], folder: RunFolder, stores: Stores,
                                 suite: Any, judge_store: LayeredJudgeStore) -> None:
    """Without a key, every answer and every judge vote the run needs must already be stored;
    checked before the run folder is created or anything is sent (one line, exit 2)."""
    done = folder.results() if folder.spec_path.is_file() else {}
    texts: list[tuple[WorkItem, str]] = []
    unanswered: list[WorkItem] = []
    for item in items:
        result = done.get(item.key, {})
        text = result.get("text") if result.get("status") == "ok" else _stored_text(item, stores)
        if isinstance(text, str):
            texts.append((item, text))
        else:
            unanswered.append(item)
    if unanswered:
        require_key(None, unanswered)
    by_id = {c.id: c for c in suite.cases}
    votes = pending_votes(suite, [(by_id[i.case_id], t) for i, t in texts if i.case_id in by_id],
                          judge_store)
    if votes:
        raise InputError([Problem(
            f"ANTHROPIC_API_KEY is not set and {len(votes)} judge vote(s) on stored answers have "
            "no stored verdict; set the key, or record the votes once with a live run and "
            "--record")])


def _stored_text(item: WorkItem, stores: Stores) -> str | None:
    for _, store in stores.lookup:
        data = store.get(item.case_id, item.arm, item.key)
        if data is not None:
            text = data.get("response", {}).get("text")
            return text if isinstance(text, str) else None
    return None


def run_live_eval(req: LiveRequest, *, announce: Announce | None = None,
                  progress: Callable[[Mapping[str, Any]], None] | None = None) -> LiveOutcome:
    from ..build import build_pack
    from ..evals import cases as cases_mod
    from ..evals import runner as offline
    from ..evals.answers import Answer
    from ..evals.scorers import Resources
    from ..evals.scoring import score_case

    say = announce or (lambda _: None)
    checklists = cases_mod.load_checklists(req.kb_dir)
    suite = cases_mod.load_suite(req.evals_dir, checklists, with_answers=False)
    folder = RunFolder(req.run_dir)
    if req.resume:
        plan = load(folder)
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
    by_id = {c.id: c for c in suite.cases}
    missing_cases = sorted({i.case_id for i in plan.items} - by_id.keys())
    if missing_cases:
        raise InputError([Problem(f"the run has case '{c}', which the eval folder no longer "
                                  "has", file=folder.spec_path.as_posix()) for c in missing_cases])

    model = plan.config.model
    check_model_differs_from_judge(model)
    recordings = req.recordings_dir or req.evals_dir / "recordings"
    record_store = AnswerStore(recordings)
    lookup: list[tuple[str, AnswerStore]] = [("recording", record_store)]
    cache = AnswerStore(req.cache_dir) if req.cache_dir else None
    if cache is not None:
        lookup.append(("cache", cache))
    stores = Stores(lookup=lookup, cache=cache,
                    record_to=record_store if req.record else None)
    judge_dirs = [recordings / "judge", *([req.cache_dir / "judge"] if req.cache_dir else [])]
    judge_write = recordings / "judge" if req.record else (
        req.cache_dir / "judge" if req.cache_dir else None)
    judge_store = LayeredJudgeStore(judge_dirs, judge_write)
    if not req.api_key and not req.options.replay:
        require_key_for_what_is_left(plan.items, folder, stores, suite, judge_store)
    if not req.resume:
        start(folder, plan)

    done = folder.results()
    left = [i for i in plan.items if done.get(i.key, {}).get("status") != "ok"]
    price = req.prices.find(model)
    estimate_usd = None
    if price is not None:
        est = estimate(left, req.prices, price, batch=plan.batch)
        estimate_usd = est.max_usd
        say(f"estimate: at most ${est.max_usd:.4f} for {est.requests} request(s) to {model} "
            f"(input ${est.input_usd:.4f}, output at most ${est.output_max_usd:.4f}); "
            "stored answers cost nothing")
    else:
        say(f"estimate: no price for model '{model}' in {req.prices.source}")
    if not req.options.replay:
        vote_count, judge_usd = estimate_judge(
            suite, [by_id[i.case_id] for i in left], plan.config.max_tokens, req.prices)
        if vote_count:
            bound = "no price known" if judge_usd is None else f"at most ${judge_usd:.4f}"
            say(f"estimate: judge {JUDGE_MODEL}, at most {vote_count} vote(s), {bound}; "
                "stored votes cost nothing")

    options = req.options
    common: dict[str, Any] = {"options": options, "prices": req.prices, "model": model,
                              "stores": stores, "api_key": req.api_key,
                              "base_url": req.base_url, "ttl": plan.config.cache_ttl,
                              "progress": progress}
    if plan.batch:
        from .batch import execute_batch

        tally = execute_batch(plan.items, folder, poll_interval=req.poll_interval, **common)
    else:
        tally = execute(plan.items, folder, **common)

    results = folder.results()
    verdicts: dict[str, Verdict] = {}
    offline_results = []
    judge = None
    if not options.replay:
        answered = [(by_id[item.case_id], str(results[item.key].get("text") or ""))
                    for item in plan.items
                    if results.get(item.key, {}).get("status") == "ok"]
        votes = pending_votes(suite, answered, judge_store)
        if votes:
            say(f"judge: asking {JUDGE_MODEL} for {len(votes)} vote(s)")
        answers_usd = sum(float(r.get("cost_usd") or 0.0) for r in results.values())
        judge = ask_judge(votes, judge_store, options=options, prices=req.prices,
                          spent_before=answers_usd, api_key=req.api_key, base_url=req.base_url)
    with Resources(judge_store=judge_store) as resources:
        for item in plan.items:
            result = results.get(item.key)
            if not result or result.get("status") != "ok":
                continue
            case = by_id[item.case_id]
            provenance: Literal["live", "recorded"] = (
                "live" if result.get("source") in ("api", "batch") else "recorded")
            answer = Answer(str(result.get("text") or ""), provenance,
                            f"{folder.results_path.as_posix()}#{item.key[:12]}",
                            meta={"model": str(result.get("model") or model),
                                  "repeat": str(item.repeat), "key": item.key,
                                  "arm": item.arm, "source": str(result.get("source"))})
            scored = score_case(case, answer, suite.rubric_for(case), resources=resources)
            verdicts[item.key] = Verdict(scored.status, scored.score)
            if item.arm == "agent":
                offline_results.append(scored)
    chosen_cases = tuple(by_id[c] for c in dict.fromkeys(i.case_id for i in plan.items))
    offline_run = offline.RunResult(
        {**offline.run_spec(suite, chosen_cases, "live"), "live_run": req.run_dir.as_posix(),
         "model": model},
        offline_results)
    report = build_report(plan.items, results, verdicts, model=model, repeats=plan.repeats,
                          pass_rule=req.pass_rule, estimate_usd=estimate_usd)
    if judge is not None:
        report["judge"] = judge.to_json()
        for error in judge.errors[:3]:
            say(f"judge: {error}")
    write_json_atomic(folder.path / REPORT_JSON, report)
    atomic.write_atomic(folder.path / REPORT_MD, markdown(report))

    pruned: list[Path] = []
    if req.record:
        pruned = _prune_recordings(plan.items, results, record_store)
    return LiveOutcome(folder, plan, tally, report, offline_run, estimate_usd, pruned)


def _prune_recordings(items: tuple[WorkItem, ...], results: Mapping[str, Mapping[str, Any]],
                      store: AnswerStore) -> list[Path]:
    """Once every repeat of a case is answered, drop its recordings from earlier runs: the
    offline run replays every recording of a case."""
    groups: dict[tuple[str, str], list[WorkItem]] = {}
    for item in items:
        groups.setdefault((item.case_id, item.arm), []).append(item)
    removed: list[Path] = []
    for (case_id, arm), group in groups.items():
        if all(results.get(i.key, {}).get("status") == "ok" for i in group):
            removed += store.prune(case_id, arm, {i.key for i in group})
    return removed
