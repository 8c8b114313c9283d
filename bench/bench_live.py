"""How close `plumber eval run --live` comes to the ideal time, against a fake API at 200 ms.

Starts the tests' fake API (`python -m support.fake_api --latency 0.2`, from tests/) in its own
process, writes an eval folder of N free-prompt cases with one `contains` check each (plus the
repository's rubrics), and runs `plumber eval run --live` as a user would, a fresh process each
time, at -j 1, 8 and 32; medians of R runs. Every run is fresh (`--fresh`, a new run folder), so
every case is a request.

- wall: the whole process, start-up included;
- start-up: a run of 1 case, minus one request's latency (interpreter, imports, build, load);
- ideal: latency x waves, where the prompt-cache warm-up is one wave of its own and the other
  N-1 requests go `j` at a time: 0.2 x (1 + ceil((N-1)/j));
- ratio: wall / (ideal + start-up); overhead/case: (wall - start-up - ideal) / N.

    .venv/bin/python bench/bench_live.py [--cases 200] [--runs 3] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def write_suite(root: Path, cases: int) -> None:
    (root / "cases").mkdir(parents=True)
    shutil.copytree(REPO / "evals" / "rubrics", root / "rubrics")
    data = {"cases": [{"id": f"bench-{i:04d}", "prompt": f"Say hello to table t{i}.",
                       "checks": [{"scorer": "contains", "args": {"text": "hello"}}]}
                      for i in range(cases)]}
    (root / "cases" / "bench.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


def timed_run(base_url: str, evals: Path, work: Path, jobs: int, cases: int) -> float:
    env = {**os.environ, "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": "bench-key"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    run_dir = Path(tempfile.mkdtemp(dir=work)) / "run"
    argv = [str(Path(sys.executable).parent / "plumber"), "eval", "run", "--live", "--fresh",
            "--evals", str(evals), "--kb", str(REPO / "kb"), "-j", str(jobs),
            "--run-dir", str(run_dir), "--cache-dir", str(work / "cache")]
    if cases:
        argv += ["--case", "bench-0000"] if cases == 1 else []
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    # The fake API is test support, not shipped: started from tests/, where it lives.
    server = subprocess.Popen([sys.executable, "-m", "support.fake_api", "--latency",
                               str(args.latency), "--reply", "hello from the fake"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO / "tests")
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            write_suite(work / "evals", args.cases)
            one = statistics.median(timed_run(base_url, work / "evals", work, 1, 1)
                                    for _ in range(args.runs))
            startup = one - args.latency
            print(f"start-up (1 case minus one request): {startup:.2f} s; "
                  f"{args.cases} cases, latency {args.latency * 1000:.0f} ms, "
                  f"medians of {args.runs}")
            print(f"{'jobs':>5} {'wall s':>8} {'ideal s':>8} {'ideal+start s':>14} "
                  f"{'ratio':>6} {'overhead/case ms':>17}")
            for jobs in args.jobs:
                wall = statistics.median(timed_run(base_url, work / "evals", work, jobs, 0)
                                         for _ in range(args.runs))
                ideal = args.latency * (1 + math.ceil((args.cases - 1) / jobs))
                overhead = (wall - startup - ideal) / args.cases
                print(f"{jobs:>5} {wall:>8.2f} {ideal:>8.2f} {ideal + startup:>14.2f} "
                      f"{wall / (ideal + startup):>6.3f} {overhead * 1000:>17.2f}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
