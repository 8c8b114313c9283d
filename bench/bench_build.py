"""How long `plumber build` and `plumber validate` take, beyond Python's own start-up.

Runs each command as a user would (a fresh process), N times, and prints medians: the bare
interpreter, `plumber --help`, `plumber validate`, `plumber build --check`, and the work beyond
start-up. Also times the in-process stages (load, render, lint) to show where time goes.

    .venv/bin/python bench/bench_build.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def median_seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(runs: int) -> dict[str, float]:
    from pipeline_plumber.kb import load_kb
    from pipeline_plumber.lint import lint_pack
    from pipeline_plumber.render import render

    stages: dict[str, list[float]] = {"load+validate kb": [], "render": [], "lint": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        kb = load_kb(REPO / "kb")
        t1 = time.perf_counter()
        files = render(kb, REPO / "templates")
        t2 = time.perf_counter()
        lint_pack(files)
        t3 = time.perf_counter()
        stages["load+validate kb"].append(t1 - t0)
        stages["render"].append(t2 - t1)
        stages["lint"].append(t3 - t2)
    return {name: statistics.median(values) for name, values in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    py = sys.executable
    bare = median_seconds([py, "-c", "pass"], runs)
    rows = [
        ("python -c pass", bare),
        ("plumber --help", median_seconds([py, "-m", "pipeline_plumber", "--help"], runs)),
        ("plumber validate", median_seconds([py, "-m", "pipeline_plumber", "validate"], runs)),
        ("plumber build --check",
         median_seconds([py, "-m", "pipeline_plumber", "build", "--check"], runs)),
    ]
    print(f"median of {runs} runs, fresh process each")
    print(f"{'command':24} {'wall s':>8} {'beyond start-up s':>18} {'x bare python':>14}")
    for name, seconds in rows:
        print(f"{name:24} {seconds:8.3f} {seconds - bare:18.3f} {seconds / bare:14.1f}")
    print("\nin process (warm), median:")
    for name, seconds in in_process(runs).items():
        print(f"  {name:18} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
