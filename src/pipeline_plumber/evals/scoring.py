"""Score one answer to one case: run every check, weigh the scored ones, apply the threshold."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from .answers import Answer, without_quoted_code
from .cases import Case, Check, Rubric
from .scorers import REGISTRY, Context, Resources, Score, Status

CaseStatus = Literal["pass", "fail", "not-scored"]


@dataclass(frozen=True)
class CheckResult:
    id: str
    scorer: str
    origin: str
    weight: float
    status: Status
    value: float | None
    explanation: str
    seconds: float
    blocker: bool = False

    @property
    def blocks(self) -> bool:
        """A failed blocker: the case fails whatever its weighted mean."""
        return self.blocker and self.status == "fail"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "scorer": self.scorer, "origin": self.origin,
                "weight": self.weight, "status": self.status, "value": self.value,
                "explanation": self.explanation, "seconds": round(self.seconds, 6),
                "blocker": self.blocker}


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    command: str | None
    answer: Answer
    checks: tuple[CheckResult, ...]
    score: float | None
    threshold: float
    status: CaseStatus

    @property
    def not_scored(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status == "not-scored")

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        """The failed checks, blockers first: reports lead with why the case cannot pass."""
        failed = [c for c in self.checks if c.status == "fail"]
        return tuple(sorted(failed, key=lambda c: not c.blocks))

    @property
    def blockers(self) -> tuple[CheckResult, ...]:
        """The failed blocker checks: why the case fails whatever its score."""
        return tuple(c for c in self.checks if c.blocks)

    def to_json(self) -> dict[str, Any]:
        answer = self.answer
        label = answer.label
        return {
            "case_id": self.case_id,
            "command": self.command,
            "answer": {
                "provenance": answer.provenance,
                "source": answer.source,
                "label": label.model_dump(mode="json") if label else None,
                **({"meta": answer.meta} if answer.meta else {}),
            },
            "status": self.status,
            "score": None if self.score is None else round(self.score, 6),
            "threshold": self.threshold,
            "checks": [c.to_json() for c in self.checks],
        }


# Scorers that see the whole answer: the judge reads it as a reviewer would, and the execution
# scorers leave out quoted statements themselves (see execution.program).
_SEES_QUOTES = {"judge", "execution", "behaviour"}


def _scored(check: Check, answer: Answer, ctx: Context) -> Score:
    try:
        return check.fn(answer, ctx)
    except Exception as err:  # a scorer bug must not take the run down; it shows as a failure
        return Score.fail(f"scorer {check.scorer} raised {type(err).__name__}: {err}")


def run_check(check: Check, answer: Answer, ctx: Context) -> CheckResult:
    """One check; a scorer that raises is a failed check with the error as its explanation.

    Code the answer quotes from the prompt never counts against it: a check that fails is
    scored again without the quoted code, and that verdict stands when it is better.
    """
    start = time.perf_counter()
    score = _scored(check, answer, ctx)
    if score.status == "fail" and ctx.prompt and REGISTRY[check.scorer].family not in \
            _SEES_QUOTES:
        own = without_quoted_code(answer, ctx.prompt)
        if own is not answer:
            again = _scored(check, own, ctx)
            if again.status != "fail":
                score = replace(again, explanation=again.explanation
                                + " (code quoted from the prompt left out)")
    return CheckResult(check.id, check.scorer, check.origin, check.weight, score.status,
                       score.value, score.explanation, time.perf_counter() - start,
                       score.blocker)


def combine(results: tuple[CheckResult, ...], threshold: float) -> tuple[float | None, CaseStatus]:
    """Weighted mean of the scored checks; not-scored checks are left out, never counted as
    passes. With nothing scored the case is not scored. A failed blocker check fails the case
    whatever the mean: a keyword never outweighs a failed execution."""
    scored = [r for r in results if r.status != "not-scored" and r.value is not None]
    total = sum(r.weight for r in scored)
    if not scored or total == 0:
        return None, "not-scored"
    value = sum(r.weight * (r.value or 0.0) for r in scored) / total
    if any(r.blocks for r in scored):
        return value, "fail"
    return value, "pass" if value >= threshold - 1e-9 else "fail"


def score_case(case: Case, answer: Answer, rubric: Rubric | None = None, *,
               resources: Resources | None = None,
               threshold: float | None = None) -> CaseResult:
    """Grade `answer` by the case's own checks and the command's rubric, against the case's
    threshold unless `threshold` is given."""
    ctx = Context(dialect=case.spec.dialect, prompt=case.spec.prompt, case_id=case.id,
                  command=case.command, resources=resources or Resources())
    checks = case.checks + (rubric.checks if rubric else ())
    results = tuple(run_check(check, answer, ctx) for check in checks)
    bar = case.spec.threshold if threshold is None else threshold
    value, status = combine(results, bar)
    return CaseResult(case.id, case.command, answer, results, value, bar, status)


def score_with_rubric(rubric: Rubric, answer: Answer, *, dialect: str | None = None,
                      prompt: str = "", threshold: float = 0.8,
                      resources: Resources | None = None) -> CaseResult:
    """Grade any answer by a command's rubric alone (`plumber eval score`)."""
    ctx = Context(dialect=dialect, prompt=prompt, case_id="", command=rubric.command,
                  resources=resources or Resources())
    results = tuple(run_check(check, answer, ctx) for check in rubric.checks)
    value, status = combine(results, threshold)
    return CaseResult("", rubric.command, answer, results, value, threshold, status)
