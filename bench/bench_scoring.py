"""How fast are recorded answers scored offline? Prints answers per second.

Writes N recordings (default 1,000) built from the hand-written answers, each made unique, into a
temporary recordings folder, then times `plumber eval`'s offline path (read the recordings, score
every case check and rubric check, no LLM judge: judge criteria are looked up, missed, and
reported as not scored). Two figures:

- static: text, SQL (sqlglot parsing and AST checks), Python and Airflow scorers;
- with sandboxes: the same plus the behaviour probes (in-memory DuckDB per probe; one PostgreSQL
  cluster for the run, a fresh database per PostgreSQL answer).

    .venv/bin/python bench/bench_scoring.py [--answers 1000] [--repeats 3] [--static-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pipeline_plumber.evals.cases import Suite, load_checklists, load_suite  # noqa: E402
from pipeline_plumber.evals.runner import recorded_source, run, write_recording  # noqa: E402
from pipeline_plumber.evals.scorers import Resources  # noqa: E402
from pipeline_plumber.evals.scorers.judge import JudgeStore  # noqa: E402


def record(suite: Suite, folder: Path, count: int) -> None:
    pool = [(case, answer) for case in suite.cases
            for answer in (suite.answers[case.id].reference, *suite.answers[case.id].flawed)]
    for i in range(count):
        case, answer = pool[i % len(pool)]
        text = f"{answer.text}\n\n(Recorded answer {i}: a benchmark copy of a hand-written one.)\n"
        write_recording(folder, case, key=f"{i:064x}", repeat=i, model="bench-hand-written",
                        request={"bench": i}, response={"text": text})


def without_behaviour(suite: Suite) -> Suite:
    cases = tuple(dataclasses.replace(c, checks=tuple(k for k in c.checks
                                                     if k.scorer != "sql_behaves"))
                  for c in suite.cases)
    return dataclasses.replace(suite, cases=cases)


def time_run(suite: Suite, folder: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with Resources(judge_store=JudgeStore(folder / "judge")) as resources:
        result = run(suite, suite.cases, recorded_source(folder), answers="recorded",
                     resources=resources)
    return time.perf_counter() - start, len(result.results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--static-only", action="store_true")
    args = parser.parse_args()
    suite = load_suite(REPO / "evals", load_checklists(REPO / "kb"))
    with tempfile.TemporaryDirectory(prefix="plumber-bench-") as tmp:
        folder = Path(tmp)
        record(suite, folder, args.answers)
        variants = [("static (text, SQL, Python, Airflow)", without_behaviour(suite))]
        if not args.static_only:
            variants.append(("with sandboxes (DuckDB, PostgreSQL probes)", suite))
        for label, variant in variants:
            times = []
            scored = 0
            for _ in range(args.repeats):
                seconds, scored = time_run(variant, folder)
                times.append(seconds)
            median = statistics.median(times)
            print(f"{label}: {scored} answers in {median:.2f} s (median of {args.repeats}), "
                  f"{scored / median:,.0f} answers/s")


if __name__ == "__main__":
    main()
