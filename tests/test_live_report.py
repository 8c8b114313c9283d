"""`report.json` is one typed model: what a run writes is what `compare` reads back, and a
report.json that is not ours (broken, another version, a field out of shape) is one error line
naming the file, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from pipeline_plumber.errors import InputError
from pipeline_plumber.live.compare import compare, fisher_one_sided, summary
from pipeline_plumber.live.report import (
    REPORT_JSON,
    JudgeUse,
    LiveReport,
    Verdict,
    build_report,
    read_report,
)
from pipeline_plumber.live.request import WorkItem
from support.cli import plumber


def build(rows: Sequence[tuple[str, int, int]], *, baseline: bool = False,
          judge: JudgeUse | None = None) -> LiveReport:
    """A report over cases (id, passes, repeats), through the same builder a live run uses."""
    items, results, verdicts = [], {}, {}
    for case_id, passes, repeats in rows:
        for arm in ("agent", "baseline") if baseline else ("agent",):
            for repeat in range(repeats):
                key = f"{case_id}-{arm}-{repeat}"
                items.append(WorkItem(key, case_id, arm, repeat, {}, "sha"))
                results[key] = {"status": "ok", "source": "api", "cost_usd": 0.0012345678,
                                "usage": {"input": 10, "cache_read": 90, "output": 5}}
                passed = repeat < passes if arm == "agent" else False
                verdicts[key] = Verdict("pass" if passed else "fail", 1.0 if passed else 0.0)
    return build_report(items, results, verdicts, model="claude-test", repeats=max(
        (r for _, _, r in rows), default=1), estimate_usd=0.5, judge=judge)


def write(folder: Path, data: object) -> Path:
    folder.mkdir(exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data)
    (folder / REPORT_JSON).write_text(text)
    return folder


def plumber_compare(a: Path, b: Path, *, process: bool = False
                    ) -> subprocess.CompletedProcess[str]:
    """`plumber eval compare A B`, in-process, or as a real process where what the terminal
    gets (no traceback, exit code) is the point."""
    args = ["eval", "compare", str(a), str(b)]
    if process:
        return subprocess.run([sys.executable, "-m", "pipeline_plumber", *args],
                              capture_output=True, text=True, check=False, timeout=60)
    result = plumber(*args)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def test_what_a_run_writes_reads_back_as_the_same_report(tmp_path: Path) -> None:
    judge = JudgeUse(model="claude-judge", sent=3, failed=0, skipped_for_budget=1,
                     cost_usd=0.0123456789)
    report = build([("x", 2, 3), ("y", 3, 3)], baseline=True, judge=judge)
    data = report.to_json()
    assert data["format"] == "pipeline-plumber/live-report" and data["version"] == 1
    assert data["totals"]["cost_usd"] == round(6 * 2 * 0.0012345678, 6)
    assert data["judge"]["cost_usd"] == 0.012346
    write(tmp_path, data)
    back = read_report(tmp_path / REPORT_JSON)
    assert back.to_json() == data
    assert back.markdown() == report.markdown()
    assert back.cases[0].flaky and back.cases[0].status == "fail"
    assert back.baseline[0].delta == pytest.approx(2 / 3)
    assert back.status == "budget_exceeded"  # a vote left unsent for the budget


def test_a_report_without_judge_leaves_the_key_out() -> None:
    assert "judge" not in build([("x", 1, 1)]).to_json()


def test_compare_tells_change_from_noise(tmp_path: Path) -> None:
    a = write(tmp_path / "a", build([("x", 5, 5), ("y", 3, 5), ("z", 0, 5), ("w", 2, 2)])
              .to_json())
    b = write(tmp_path / "b", build([("x", 0, 5), ("y", 2, 5), ("z", 5, 5), ("w", 2, 2),
                                     ("v", 1, 1)]).to_json())
    changes = compare(a, b)
    assert {c.case_id: c.change for c in changes} == {
        "x": "regression", "y": "noise", "z": "improvement", "w": "unchanged", "v": "added"}
    assert summary(changes) == {"regression": 1, "noise": 1, "improvement": 1, "unchanged": 1,
                                "added": 1}
    assert fisher_one_sided(3, 3, 0, 3) == pytest.approx(0.05)
    cli = plumber_compare(a, b)
    assert cli.returncode == 1 and "regression  x: 5/5 -> 0/5" in cli.stdout


MALFORMED = {
    "not-json": ("{ cases: [", "not a live run report"),
    "a-list": ([1, 2], "format: not a live run report"),
    "other-format": ({"format": "pipeline-plumber/live-run", "version": 1}, "format:"),
    "other-version": ({**build([("x", 1, 1)]).to_json(), "version": 2},
                      "version: report version 2; this plumber reads version 1"),
    "field-out-of-shape": ({**build([("x", 1, 1)]).to_json(), "cases": [{"case_id": "x"}]},
                           "cases[0].arm: field required (and 11 more problem(s))"),
    "passes-not-a-number": (
        {**build([("x", 1, 1)]).to_json(),
         "cases": [{**build([("x", 1, 1)]).to_json()["cases"][0], "passes": "many"}]},
        "cases[0].passes: input should be a valid integer"),
    "unknown-key": ({**build([("x", 1, 1)]).to_json(), "extra": True},
                    "extra: extra inputs are not permitted"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_report_is_one_line_naming_the_file(tmp_path: Path, name: str) -> None:
    data, expected = MALFORMED[name]
    good = write(tmp_path / "good", build([("x", 1, 1)]).to_json())
    bad = write(tmp_path / "bad", data)
    with pytest.raises(InputError) as err:
        read_report(bad / REPORT_JSON)
    assert len(err.value.problems) == 1
    cli = plumber_compare(good, bad, process=name == "not-json")
    assert cli.returncode == 2, cli.stderr
    assert "Traceback" not in cli.stderr and cli.stdout == ""
    line, = cli.stderr.splitlines()
    assert line.startswith(f"error: {(bad / REPORT_JSON).as_posix()}: ")
    assert expected in line


def test_a_folder_without_a_report_says_to_run_it_first(tmp_path: Path) -> None:
    good = write(tmp_path / "good", build([("x", 1, 1)]).to_json())
    (tmp_path / "empty").mkdir()
    cli = plumber_compare(tmp_path / "empty", good)
    assert cli.returncode == 2
    assert cli.stderr.strip() == (f"error: {(tmp_path / 'empty' / REPORT_JSON).as_posix()}: "
                                  "no live run report here; run or resume the run first")


def test_an_oversized_report_is_refused_before_it_is_read(tmp_path: Path) -> None:
    folder = write(tmp_path / "big", "[" + "0," * (5 << 20) + "0]")
    with pytest.raises(InputError, match="larger than"):
        read_report(folder / REPORT_JSON)
