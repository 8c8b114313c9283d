"""How fast are answers graded with full execution? Prints answers per second and the median
seconds per answer for each command.

Takes every labelled answer of the suite (reference, correct and flawed), replicates them to N
answers (default 1,000), each copy a new Answer with nothing cached, and grades each against
its case exactly as `plumber eval calibrate` does: every case check and rubric check, the
answer's SQL set up in the sandbox, the command's property family and the case's probes run
(one PostgreSQL cluster and Airflow's warm process for the run, started before timing; each
answer's databases its own, shared by its checks; DuckDB in memory). Judge criteria are
looked up in an empty store: not scored. Besides wall time it prints the CPU this process
used per answer and the CPU of the engines' processes (PostgreSQL's server and backends,
Airflow's warm process): on a 2-core machine their sum bounds the rate.

    .venv/bin/python bench/bench_execution.py [--answers 1000] [--jobs N] [--evals evals]
                                              [--profile out.pstats]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pipeline_plumber.evals.answers import Answer  # noqa: E402
from pipeline_plumber.evals.cases import Case, Suite, load_checklists, load_suite  # noqa: E402
from pipeline_plumber.evals.runner import in_order, scored_in_scope  # noqa: E402
from pipeline_plumber.evals.scorers import Resources  # noqa: E402
from pipeline_plumber.evals.scorers.judge import JudgeStore  # noqa: E402
from pipeline_plumber.evals.scoring import CaseResult  # noqa: E402

TARGET = 20.0  # answers per second on a 2-core machine


def workload(suite: Suite, count: int) -> list[tuple[Case, Answer]]:
    """`count` (case, answer) pairs cycling through the labelled answers; fresh Answer objects,
    so no per-answer cache (parsed program, family verdicts) carries from one copy to the next."""
    pool = [(case, answer) for case in suite.cases for answer in suite.answers[case.id].labelled]
    return [(case, Answer(answer.text, answer.provenance, answer.source, answer.label))
            for case, answer in (pool[i % len(pool)] for i in range(count))]


def warm_airflow() -> str:
    """Start the warm process that imports answers' DAGs (like the cluster, once per run);
    what it took, or why there is none (the airflow answers' DAGs are then not imported)."""
    from pipeline_plumber.errors import EnvironmentProblem
    from pipeline_plumber.evals.execution.families.airflow import import_dags

    start = time.perf_counter()
    try:
        import_dags(["from airflow.sdk import DAG\nwith DAG('warm', schedule=None):\n    pass\n"])
    except EnvironmentProblem as err:
        return f"Airflow's warm process did not start, DAGs not imported: {err}"
    return f"Airflow's warm process started before timing, in {time.perf_counter() - start:.1f} s"


def _children_cpu() -> float:
    """CPU seconds of the child processes that have exited (a server counts its backends)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--answers", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--evals", type=Path, default=REPO / "evals")
    parser.add_argument("--profile", type=Path, default=None,
                        help="Write cProfile statistics of the timed part here (this "
                        "process's CPU time, the main thread's calls: use with --jobs 1).")
    args = parser.parse_args()

    suite = load_suite(args.evals, load_checklists(REPO / "kb"))
    work = workload(suite, args.answers)
    seconds: dict[str, list[float]] = defaultdict(list)

    def grade(item: tuple[Case, Answer]) -> CaseResult:
        case, answer = item
        start = time.perf_counter()
        result = scored_in_scope(case, answer, suite, resources)
        seconds[case.command or "(free)"].append(time.perf_counter() - start)
        return result

    children = _children_cpu()
    with tempfile.TemporaryDirectory() as empty, \
            Resources(judge_store=JudgeStore(Path(empty))) as resources:
        with resources.answer_session("postgres") as session:  # start the cluster untimed
            session.execute("SELECT 1")
        warm = warm_airflow()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
        start, cpu = time.perf_counter(), time.process_time()
        results = in_order(grade, work, args.jobs)
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)

    executed = sum(any(c.scorer in ("executes", "behaves", "sql_behaves") and
                       c.status != "not-scored" for c in r.checks) for r in results)
    rate = len(results) / took
    print(f"{len(results)} answers ({len(suite.cases)} cases, {executed} with SQL executed) "
          f"graded in {took:.1f} s with {args.jobs} worker(s): {rate:.1f} answers/s "
          f"(target {TARGET:g}: {rate / TARGET:.2f}x)")
    print(f"({warm})")
    load = os.getloadavg()[0]
    engines = _children_cpu() - children  # the cluster and Airflow's process have exited
    print(f"this process used {cpu / len(results) * 1000:.0f} ms of CPU per answer, the engines' "
          f"processes {engines / len(results) * 1000:.0f} ms (PostgreSQL and Airflow, their start "
          f"included); load average {load:.1f} on {os.cpu_count()} CPUs")
    print("median seconds per answer, by command:")
    for command, times in sorted(seconds.items()):
        print(f"  {command:12} {statistics.median(times):.3f} s  ({len(times)} answers)")


if __name__ == "__main__":
    main()
