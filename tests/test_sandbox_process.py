"""The process sandbox against real hostile programs: each one ends contained.

Runs as whoever runs the tests; under root the programs run as `nobody`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipeline_plumber.sandbox.process import (
    Limits,
    ProcessResult,
    python_command,
    run_sandboxed,
)
from support.airflow import airflow_python

pytestmark = pytest.mark.engines  # the process sandbox, Airflow included

CANARY = "sk-ant-canary-process-0123456789"
PYTHON, PYTHON_ENV = python_command(Path(sys.executable))


def run_python(code: str, limits: Limits | None = None, keep: tuple[str, ...] = ()
               ) -> ProcessResult:
    return run_sandboxed([*PYTHON, "main.py"], files={"main.py": code}, env=PYTHON_ENV,
                         limits=limits or Limits(wall_s=10, cpu_s=5), keep=keep)


@pytest.fixture(autouse=True)
def canary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)


def test_a_normal_program_runs_and_its_output_is_captured() -> None:
    result = run_python("print('hello'); open('out.txt', 'w').write('kept')", keep=("out.txt",))
    assert result.ok, result
    assert result.stdout == "hello\n"
    assert result.files == {"out.txt": b"kept"}


def test_the_environment_is_an_allow_list() -> None:
    result = run_python("import os; print(sorted(os.environ)); print(os.environ.get('HOME'))")
    out = result.stdout
    assert CANARY[:8] not in out
    assert "ANTHROPIC_API_KEY" not in out
    assert "plumber-run-" in out.splitlines()[1]


def test_proc_environ_of_the_parent_is_not_readable_or_has_no_key() -> None:
    code = (f"import os\ntry:\n    data = open('/proc/{os.getpid()}/environ', 'rb').read()\n"
            "except OSError as err:\n    print('denied', err.errno)\nelse:\n"
            "    print(data.decode(errors='replace'))")
    result = run_python(code)
    assert CANARY[:8] not in result.stdout


def test_an_endless_loop_is_killed_at_the_wall_clock_deadline() -> None:
    result = run_python("while True: pass", Limits(wall_s=1.5, cpu_s=30))
    assert result.timed_out
    assert result.killed_by_signal == 9
    assert result.seconds < 1.5 + 2


def test_cpu_time_is_limited() -> None:
    result = run_python("while True: pass", Limits(wall_s=20, cpu_s=1))
    assert not result.timed_out
    assert result.killed_by_signal in (9, 24)  # SIGKILL / SIGXCPU


def test_a_10_gb_allocation_fails() -> None:
    result = run_python("x = bytearray(10 * 1024 ** 3)\nprint('allocated')")
    assert "allocated" not in result.stdout
    assert "MemoryError" in result.stderr


def test_a_big_file_is_cut_by_the_file_size_limit() -> None:
    result = run_python("f = open('big', 'wb')\nwhile True: f.write(b'x' * 1048576)",
                        Limits(wall_s=10, cpu_s=5, file_bytes=4 << 20))
    assert not result.ok
    assert result.killed_by_signal == 25 or "File too large" in result.stderr


def test_a_fork_bomb_is_contained() -> None:
    code = ("import os, time\nn = 0\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        n += 1\n        if n > 50: time.sleep(30)\n")
    result = run_python(code, Limits(wall_s=3, cpu_s=10, processes=16))
    assert result.timed_out
    leftover = [p for p in os.listdir("/proc") if p.isdigit() and _cmd(p).endswith("main.py")]
    assert leftover == []


def test_output_is_capped() -> None:
    result = run_python("import sys\nfor _ in range(2000): sys.stdout.write('y' * 1000)",
                        Limits(wall_s=10, cpu_s=5, output_bytes=4096))
    assert len(result.stdout) < 4096 + 100
    assert result.stdout.startswith("[")


@pytest.mark.skipif(os.geteuid() != 0, reason="the drop to nobody happens only under root")
def test_as_nobody_nothing_outside_the_folder_is_writable(tmp_path: Path) -> None:
    target = tmp_path / "outside"
    code = (f"import os\nprint(os.getuid(), os.getgroups())\n"
            f"for p in ['{target}', '/root/x', '/etc/x', '/work/main/x']:\n"
            "    try:\n        open(p, 'w').write('x')\n        print('wrote', p)\n"
            "    except OSError as err:\n        print('denied', p)\n")
    result = run_python(code)
    assert "wrote" not in result.stdout, result.stdout
    assert result.stdout.startswith("65534 []")
    assert not target.exists()


def test_the_working_folder_is_deleted() -> None:
    result = run_python("import os; print(os.getcwd())")
    folder = Path(result.stdout.strip())
    assert folder.name.startswith("plumber-run-")
    assert not folder.exists()


def test_a_dag_file_imports_in_airflow_contained() -> None:
    command, env = python_command(airflow_python())
    dag = ("import os\nfrom airflow.sdk import DAG\nprint('KEY', os.environ.get("
           "'ANTHROPIC_API_KEY'))\nwith DAG('d', schedule=None) as dag:\n    pass\n")
    result = run_sandboxed(
        [*command, "-c", "import runpy; runpy.run_path('dag.py'); print('imported')"],
        files={"dag.py": dag}, env={**env, "AIRFLOW_HOME": "{folder}/airflow"},
        limits=Limits(wall_s=120, cpu_s=120))
    assert result.ok, result.stderr[-2000:]
    assert "imported" in result.stdout
    assert "KEY None" in result.stdout


def _cmd(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
