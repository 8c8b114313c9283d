"""`plumber eval compare RUN_A RUN_B`: which cases got worse or better, and which only moved
within noise.

Each run folder's `report.json` gives, per case of the agent arm, how many of its scored
repeats passed. A change is called a regression (or an improvement) only when Fisher's exact
test says a difference at least that large is unlikely to be noise (one-sided p <= `alpha`):
with 3 repeats that takes 3/3 -> 0/3; with 5, 5/5 -> 1/5. Smaller moves are listed as `noise`.
Without repeats (k = 1) no change can be told from noise, and the list says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import Literal

from .report import REPORT_JSON, read_report

Change = Literal["regression", "improvement", "noise", "unchanged", "added", "removed"]


@dataclass(frozen=True)
class CaseChange:
    case_id: str
    change: Change
    before: tuple[int, int] | None  # (passes, scored)
    after: tuple[int, int] | None
    p_value: float | None

    def describe(self) -> str:
        def rate(value: tuple[int, int] | None) -> str:
            return "-" if value is None else f"{value[0]}/{value[1]}"

        p = "" if self.p_value is None else f" (p={self.p_value:.3f})"
        return f"{self.change:11} {self.case_id}: {rate(self.before)} -> {rate(self.after)}{p}"


def fisher_one_sided(a_pass: int, a_n: int, b_pass: int, b_n: int) -> float:
    """P(B passes this few or fewer | the row and column totals), Fisher's exact test."""
    total_pass, total = a_pass + b_pass, a_n + b_n
    denominator = comb(total, total_pass)
    return sum(comb(b_n, x) * comb(a_n, total_pass - x)
               for x in range(0, b_pass + 1) if 0 <= total_pass - x <= a_n) / denominator


def load_report(folder: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(case, arm) -> (passes, scored) for every row of the folder's report with a scored
    repeat; a report that is missing or malformed is one InputError naming the file."""
    report = read_report(folder / REPORT_JSON)
    return {(row.case_id, row.arm): (row.passes, row.scored)
            for row in report.cases if row.scored}


def compare(run_a: Path, run_b: Path, *, alpha: float = 0.05,
            arm: str = "agent") -> list[CaseChange]:
    before, after = load_report(run_a), load_report(run_b)
    ids = sorted({c for c, a in before if a == arm} | {c for c, a in after if a == arm})
    changes = []
    for case_id in ids:
        a, b = before.get((case_id, arm)), after.get((case_id, arm))
        if a is None or b is None:
            changes.append(CaseChange(case_id, "added" if a is None else "removed", a, b, None))
            continue
        rate_a, rate_b = a[0] / a[1], b[0] / b[1]
        if rate_a == rate_b:
            changes.append(CaseChange(case_id, "unchanged", a, b, None))
            continue
        worse = rate_b < rate_a
        p = fisher_one_sided(*a, *b) if worse else fisher_one_sided(*b, *a)
        kind: Change = ("regression" if worse else "improvement") if p <= alpha else "noise"
        changes.append(CaseChange(case_id, kind, a, b, p))
    return changes


def summary(changes: list[CaseChange]) -> dict[Change, int]:
    counts: dict[Change, int] = {}
    for change in changes:
        counts[change.change] = counts.get(change.change, 0) + 1
    return counts
