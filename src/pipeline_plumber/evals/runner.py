"""Run cases against an answer source; calibrate scorers against the labelled answers.

An answer source is any `(case) -> list[Answer]`: the hand-written references, flawed or
correct answers, or recordings replayed from disk (live runs in `live/` send them first).
The runner gathers every answer first, so a missing recording fails the run before anything
is scored.

Recorded answers are replayed from the recording format, which `recordings.py` owns. A
recording whose `prompt_sha256` no longer matches its case is stale and ignored; an unreadable
file is a miss, never a crash. Changing a case's checks or a rubric keeps the recordings valid:
re-scoring needs no new model call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .. import __version__
from ..errors import InputError, Problem
from .answers import Answer
from .cases import Case, Suite
from .recordings import RECORDING_FORMAT as RECORDING_FORMAT  # re-exported
from .recordings import RECORDING_VERSION as RECORDING_VERSION
from .recordings import case_folder, read_recording, save_recording
from .scorers import REGISTRY, Resources
from .scorers.judge import JUDGE_MODEL
from .scoring import CaseResult, score_case

LOG_FORMAT = "pipeline-plumber/eval-log"
LOG_VERSION = 1

AnswerSource = Callable[[Case], list[Answer]]


def reference_source(suite: Suite) -> AnswerSource:
    return lambda case: [suite.answers[case.id].reference]


def flawed_source(suite: Suite) -> AnswerSource:
    return lambda case: list(suite.answers[case.id].flawed)


def recorded_source(folder: Path) -> AnswerSource:
    """Answers replayed from `folder/answers/<case-id>/*.json`, in repeat order."""

    def answers(case: Case) -> list[Answer]:
        found = []
        unreadable = []
        for path in sorted(case_folder(folder, case.id).glob("*.json")):
            data = read_recording(path)
            if data is None:
                unreadable.append(path)
                continue
            if data.get("case_id") != case.id:
                continue
            if data.get("prompt_sha256") != case.prompt_digest:
                continue  # stale: the case's prompt changed since it was recorded
            meta = {"model": str(data.get("model", "")), "repeat": str(data.get("repeat", 0)),
                    "key": str(data.get("key", ""))}
            found.append((int(data.get("repeat") or 0), path.as_posix(),
                          Answer(data["response"]["text"], "recorded", path.as_posix(),
                                 meta=meta)))
        if not found and unreadable:  # say why the one that is there does not count
            raise RecordingMissing([Problem(
                f"not a {RECORDING_FORMAT} version {RECORDING_VERSION} file: record case "
                f"'{case.id}' again with a live run and --record",
                file=unreadable[0].as_posix())])
        return [answer for _, _, answer in sorted(found, key=lambda item: item[:2])]

    return answers


def write_recording(folder: Path, case: Case, *, key: str, repeat: int, model: str,
                    request: dict[str, Any], response: dict[str, Any]) -> Path:
    """Write one recording of `case`'s answer (see `recordings.save_recording`)."""
    return save_recording(folder, case_id=case.id, prompt_sha256=case.prompt_digest, key=key,
                          repeat=repeat, model=model, request=request, response=response)


class RecordingMissing(InputError):
    """Cases with no usable recording: exit 2, with the list, before anything is scored."""


@dataclass
class RunResult:
    spec: dict[str, Any]
    results: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.status == "pass" for r in self.results)

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "not-scored": 0}
        for result in self.results:
            out[result.status] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        checks = [c for r in self.results for c in r.checks]
        return {
            "format": LOG_FORMAT,
            "version": LOG_VERSION,
            "spec": self.spec,
            "summary": {
                "cases": self.counts(),
                "checks": {s: sum(c.status == s for c in checks)
                           for s in ("pass", "fail", "not-scored")},
                "passed": self.passed,
            },
            "results": [r.to_json() for r in self.results],
        }


def run_spec(suite: Suite, cases: tuple[Case, ...], answers: str) -> dict[str, Any]:
    """What a run depends on, so any report can be reproduced."""
    used = {c.scorer for case in cases for c in suite.checks_for(case)}
    commands = {case.command for case in cases if case.command}
    return {
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "plumber_version": __version__,
        "answers": answers,
        "kb_digest": suite.kb_digest,
        "cases": {case.id: case.digest for case in cases},
        "rubrics": {name: suite.rubrics[name].digest for name in sorted(commands)
                    if name in suite.rubrics},
        "scorers": {name: REGISTRY[name].version for name in sorted(used)},
        "judge_model": JUDGE_MODEL,
    }


def run(suite: Suite, cases: tuple[Case, ...], source: AnswerSource, *, answers: str,
        resources: Resources, progress: Callable[[int], None] | None = None,
        jobs: int = 1) -> RunResult:
    """Score every answer `source` gives for `cases`. Raises RecordingMissing before scoring if
    any case has no answer."""
    gathered = [(case, source(case)) for case in cases]
    missing = [case for case, found in gathered if not found]
    if missing:
        raise RecordingMissing([
            Problem(f"no recorded answer for case '{case.id}' (or only stale ones); record it "
                    "with a live run, or score the hand-written references with "
                    "--answers references", file=case.file, line=case.line, field="id")
            for case in missing])
    result = RunResult(run_spec(suite, cases, answers))
    work = [(case, answer) for case, found in gathered for answer in found]
    result.results.extend(in_order(
        lambda item: scored_in_scope(item[0], item[1], suite, resources), work, jobs, progress))
    return result


def scored_in_scope(case: Case, answer: Answer, suite: Suite, resources: Resources
                    ) -> CaseResult:
    """`score_case` with all of the answer's checks in one answer scope: its checks and probes
    share the databases it used, never another answer's."""
    with resources.answer_scope():
        return score_case(case, answer, suite.rubric_for(case), resources=resources)


def import_lazy_modules() -> None:
    """Import what scorers import lazily (sqlglot's dialects, the property families) before
    worker threads start: two threads importing one module at once can deadlock."""
    from sqlglot.dialects.dialect import Dialect

    from .execution.properties import load_families
    from .scorers import load_all

    load_all()
    load_families()
    for dialect in ("postgres", "duckdb", "snowflake", "bigquery"):
        Dialect.get_or_raise(dialect)


T = TypeVar("T")
R = TypeVar("R")


def in_order(fn: Callable[[T], R], items: list[T], jobs: int,
             progress: Callable[[int], None] | None = None) -> list[R]:
    """`fn` over `items` on `jobs` worker threads (each answer opens its own sandbox session);
    the results in the items' order."""
    if jobs <= 1:
        out: list[R] = []
        for item in items:
            out.append(fn(item))
            if progress:
                progress(1)
        return out
    import_lazy_modules()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="plumber-score") as pool:
        futures = [pool.submit(fn, item) for item in items]
        results = []
        try:
            for future in futures:
                results.append(future.result())
                if progress:
                    progress(1)
        except BaseException:  # Ctrl-C or a failed answer: drop the queue, finish what runs
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        return results


# --- calibration ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """Agreement with the labels: true/false passes and fails, and what was not scored."""

    true_pass: int = 0
    false_pass: int = 0
    true_fail: int = 0
    false_fail: int = 0
    not_scored: int = 0

    def add(self, expected_pass: bool, status: str) -> bool:
        """Count one verdict; True when it agrees with the label (or was not scored)."""
        if status == "not-scored":
            self.not_scored += 1
            return True
        got = status == "pass"
        if expected_pass and got:
            self.true_pass += 1
        elif expected_pass:
            self.false_fail += 1
        elif got:
            self.false_pass += 1
        else:
            self.true_fail += 1
        return got == expected_pass

    @property
    def scored(self) -> int:
        return self.true_pass + self.false_pass + self.true_fail + self.false_fail

    @property
    def agreement(self) -> float | None:
        return (self.true_pass + self.true_fail) / self.scored if self.scored else None

    def to_json(self) -> dict[str, Any]:
        return {"true_pass": self.true_pass, "false_pass": self.false_pass,
                "true_fail": self.true_fail, "false_fail": self.false_fail,
                "not_scored": self.not_scored, "agreement": self.agreement}


@dataclass
class Calibration:
    """Agreement of every scorer, and of the case verdict, with the labelled answers.

    `false_passes` are flawed answers whose case passed; `false_fails` are reference or
    correct answers whose case failed: the two ways the harness can be wrong about an answer.
    """

    scorers: dict[str, Tally] = field(default_factory=dict)
    cases: Tally = field(default_factory=Tally)
    disagreements: list[str] = field(default_factory=list)
    answers: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    false_passes: list[str] = field(default_factory=list)
    false_fails: list[str] = field(default_factory=list)

    @property
    def full_agreement(self) -> bool:
        return not self.disagreements

    def to_json(self) -> dict[str, Any]:
        return {"answers": self.answers, "by_kind": dict(sorted(self.by_kind.items())),
                "full_agreement": self.full_agreement,
                "false_passes": self.false_passes, "false_fails": self.false_fails,
                "cases": self.cases.to_json(),
                "scorers": {n: t.to_json() for n, t in sorted(self.scorers.items())},
                "disagreements": self.disagreements}


def calibrate(suite: Suite, cases: tuple[Case, ...], *, resources: Resources,
              progress: Callable[[int], None] | None = None, jobs: int = 1) -> Calibration:
    """Run every check on every labelled answer and compare with the labels: a reference or
    correct answer passes every check and its case; a flawed answer fails exactly the checks
    in its `fails` and fails its case."""
    out = Calibration()
    work = [(case, answer) for case in cases for answer in suite.answers[case.id].labelled]
    scored = in_order(lambda item: scored_in_scope(item[0], item[1], suite, resources), work,
                      jobs, progress)
    for (case, answer), result in zip(work, scored, strict=True):
        out.answers += 1
        out.by_kind[answer.provenance] = out.by_kind.get(answer.provenance, 0) + 1
        fails = set(answer.label.fails) if answer.label else set()
        for check in result.checks:
            tally = out.scorers.setdefault(check.scorer, Tally())
            expected_pass = check.id not in fails
            if not tally.add(expected_pass, check.status):
                want = "pass" if expected_pass else "fail"
                out.disagreements.append(
                    f"{answer.source}: check {check.id} ({check.scorer}) should {want} but "
                    f"got {check.status}: {check.explanation}")
        expected_case = answer.provenance != "flawed"
        if not out.cases.add(expected_case, result.status):
            want = "pass" if expected_case else "fail"
            score = "n/a" if result.score is None else f"{result.score:.2f}"
            (out.false_fails if expected_case else out.false_passes).append(answer.source)
            out.disagreements.append(
                f"{answer.source}: case {case.id} should {want} but got {result.status} "
                f"(score {score}, threshold {result.threshold:.2f})")
    return out
