"""The warm process sandbox against hostile runs: each ends contained, and the zygote and the
runs after it are unharmed.

Runs as whoever runs the tests; under root the zygote and its children run as `nobody`.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_plumber.sandbox.process import Limits, ProcessResult, python_command
from pipeline_plumber.sandbox.zygote import FOLDER_PREFIX, Zygote, ZygoteFailed
from pipeline_plumber.stale_folders import OWNER_MARKER, mark_owner

pytestmark = pytest.mark.engines  # sandboxed processes under CPU, memory and process limits

CANARY = "sk-ant-canary-zygote-0123456789"
PYTHON, PYTHON_ENV = python_command(Path(sys.executable))
RUNNER = """\
import os
WARM_PID = os.getpid()

def warm():
    global WARMED
    WARMED = True

def main(argv):
    exec(compile(open(argv[0]).read(), argv[0], "exec"), {"__name__": "__main__"})
    return 0
"""


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    os.environ["ANTHROPIC_API_KEY"] = CANARY
    try:
        warm = Zygote(PYTHON, "runner", files={"runner.py": RUNNER}, env=PYTHON_ENV)
        yield warm
        warm.close()
    finally:
        del os.environ["ANTHROPIC_API_KEY"]


def run(zygote: Zygote, code: str, limits: Limits | None = None,
        keep: tuple[str, ...] = ()) -> ProcessResult:
    return zygote.run(["main.py"], files={"main.py": code},
                      limits=limits or Limits(wall_s=10, cpu_s=5), keep=keep)


def test_a_normal_run_is_captured_and_finds_the_module_warm(zygote: Zygote) -> None:
    result = run(zygote, "import runner, os\nprint('warm', runner.WARMED, "
                 "runner.WARM_PID != os.getpid())\nopen('out.txt', 'w').write('kept')",
                 keep=("out.txt",))
    assert result.ok, result
    assert result.stdout == "warm True True\n"
    assert result.files == {"out.txt": b"kept"}


def test_the_environment_is_an_allow_list_and_home_is_the_runs_folder(zygote: Zygote) -> None:
    result = run(zygote, "import os; print(sorted(os.environ)); print(os.environ['HOME']); "
                 "print(os.getcwd())")
    lines = result.stdout.splitlines()
    assert CANARY[:8] not in result.stdout
    assert "ANTHROPIC_API_KEY" not in lines[0]
    assert "plumber-run-" in lines[1]
    assert lines[1] == lines[2]


def test_an_endless_loop_is_killed_at_the_deadline_and_the_next_run_is_served(
        zygote: Zygote) -> None:
    result = run(zygote, "while True: pass", Limits(wall_s=1.5, cpu_s=30))
    assert result.timed_out
    assert result.killed_by_signal == 9
    assert result.seconds < 1.5 + 2
    assert run(zygote, "print('next')").stdout == "next\n"


def test_cpu_memory_and_processes_are_limited(zygote: Zygote) -> None:
    cpu = run(zygote, "while True: pass", Limits(wall_s=20, cpu_s=1))
    assert not cpu.timed_out and cpu.killed_by_signal in (9, 24)
    memory = run(zygote, "x = bytearray(10 * 1024 ** 3)\nprint('allocated')")
    assert "allocated" not in memory.stdout and "MemoryError" in memory.stderr
    bomb = ("import os, time\nn = 0\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        n += 1\n        if n > 50: time.sleep(30)\n")
    forked = run(zygote, bomb, Limits(wall_s=3, cpu_s=10, processes=16))
    assert forked.timed_out
    assert run(zygote, "print('after the bomb')").stdout == "after the bomb\n"


def test_a_run_cannot_read_or_write_the_zygote(zygote: Zygote) -> None:
    code = ("import os\nppid = os.getppid()\n"
            "for path in ('mem', 'environ', 'fd/1', 'fd/0'):\n"
            "    try:\n        open(f'/proc/{ppid}/{path}', 'rb').read(16)\n"
            "        print('read', path)\n    except OSError:\n        print('denied', path)\n"
            "for fd in range(3, 256):\n    try:\n"
            "        os.write(fd, b'{\"id\": 999999, \"exit\": 0}\\n')\n"
            "        print('wrote fd', fd)\n"
            "    except OSError:\n        pass\n")
    result = run(zygote, code)
    assert "read" not in result.stdout, result.stdout
    assert "wrote fd" not in result.stdout, result.stdout
    assert run(zygote, "print('unharmed')").stdout == "unharmed\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="the zygote's folder is locked only under root")
def test_the_warm_folder_and_the_outside_are_not_writable(zygote: Zygote, tmp_path: Path
                                                          ) -> None:
    folders = glob.glob("/tmp/plumber-zygote-*")
    code = (f"import os\nprint(os.getuid())\nfor p in {folders!r} + ['{tmp_path}', '/root']:\n"
            "    try:\n        open(p + '/runner.py' if 'zygote' in p else p + '/x', 'w')\n"
            "        print('wrote', p)\n    except OSError:\n        print('denied', p)\n")
    result = run(zygote, code)
    assert result.stdout.startswith("65534\n")
    assert "wrote" not in result.stdout, result.stdout


def test_a_symlinked_output_file_is_not_followed(zygote: Zygote) -> None:
    code = ("import os, sys\nsys.stdout.flush()\nos.unlink('stdout')\n"
            "os.symlink('/etc/passwd', 'stdout')\nos.symlink('/etc/passwd', 'kept')\n")
    result = run(zygote, code, keep=("kept",))
    assert "root:" not in result.stdout
    assert result.files == {}


def test_a_run_that_kills_the_zygote_fails_alone(zygote: Zygote) -> None:
    before = zygote.starts
    killed = run(zygote, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                 "import time; time.sleep(5)")
    assert not killed.ok
    assert run(zygote, "print('served again')").stdout == "served again\n"
    assert zygote.starts > before


def test_a_warm_module_that_fails_is_one_line() -> None:
    broken = Zygote(PYTHON, "runner", files={"runner.py": "import no_such_module_here\n"},
                    env=PYTHON_ENV)
    with pytest.raises(ZygoteFailed, match="No module named 'no_such_module_here'"):
        broken.run(["main.py"], files={"main.py": "print(1)"})
    broken.close()


KILLED_WITH_A_WARM_ZYGOTE = """
import os, signal, sys
from pathlib import Path
from pipeline_plumber.sandbox.process import python_command
from pipeline_plumber.sandbox.zygote import Zygote
command, env = python_command(Path(sys.executable))
warm = Zygote(command, "runner", files={"runner.py": sys.argv[1]}, env=env)
assert warm.run(["main.py"], files={"main.py": "print(1)"}).ok
os.kill(os.getpid(), signal.SIGKILL)
"""


def made_by(folder: Path, pid: int) -> bool:
    try:
        return (folder / OWNER_MARKER).read_text().split()[:1] == [str(pid)]
    except OSError:
        return False


def test_the_folder_of_a_killed_run_goes_when_the_next_zygote_starts() -> None:
    killed = subprocess.Popen([sys.executable, "-c", KILLED_WITH_A_WARM_ZYGOTE, RUNNER],
                              stderr=subprocess.PIPE, text=True)
    _, stderr = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, stderr
    temp = Path(tempfile.gettempdir())
    left = [folder for folder in temp.glob(FOLDER_PREFIX + "*") if made_by(folder, killed.pid)]
    assert len(left) == 1, left  # SIGKILL runs no clean-up: the folder stays
    alive = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
    mark_owner(alive)  # a folder of a run still going, this one
    try:
        fresh = Zygote(PYTHON, "runner", files={"runner.py": RUNNER}, env=PYTHON_ENV)
        assert fresh.run(["main.py"], files={"main.py": "print(1)"}).ok
        fresh.close()
        assert not left[0].exists()
        assert alive.is_dir()
    finally:
        shutil.rmtree(alive)
