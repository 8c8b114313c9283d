"""Every error path of `plumber` ends in one line and a documented exit code.

The bad input of tests/fixtures/cli/bad_input.yaml runs in-process, command by command; what
needs a real process (a signal, a write that fails half way) runs `plumber` as a user would."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals_support import EVALS, FIXTURES, KB, REPO
from pipeline_plumber.engines import airflow_env
from pipeline_plumber.errors import (
    ERROR_PREFIX,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EnvironmentProblem,
)
from pipeline_plumber.pgcluster import cluster_storage
from pipeline_plumber.stale_folders import OWNER_MARKER
from support.cli import plumber
from support.fake_api import FakeMessagesAPI

BAD = yaml.safe_load((FIXTURES / "cli" / "bad_input.yaml").read_text(encoding="utf-8"))
SHIPPED = {"kb": KB, "templates": REPO / "templates", "rubrics": EVALS / "rubrics"}
PLUMBER = [sys.executable, "-m", "pipeline_plumber"]


def _lay_out(root: Path, case: dict[str, Any]) -> None:
    """The case's folder: shipped folders copied, then its files (text, bytes, or a folder)."""
    for dest, source in case.get("copy", {}).items():
        shutil.copytree(SHIPPED[source], root / dest)
    for rel, content in case.get("files", {}).items():
        path = root / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def assert_one_error_line(stderr: str, expected: str, *, errors: int = 1) -> None:
    """The error is the last line of stderr, the only one (or one per problem) saying error,
    and no traceback anywhere."""
    lines = stderr.splitlines()
    assert "Traceback" not in stderr, stderr
    assert lines, "nothing on stderr"
    assert sum(line.startswith(ERROR_PREFIX) for line in lines) == errors, stderr
    assert lines[-1].startswith(ERROR_PREFIX), stderr
    assert any(expected in line for line in lines[-errors:]), stderr


def _param(case: dict[str, Any]) -> Any:
    marks = [pytest.mark.engines] if case.get("engines") else []
    return pytest.param(case, id=case["id"], marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in BAD])
def test_bad_input_gives_one_line_naming_what_is_wrong(case: dict[str, Any],
                                                        tmp_path: Path) -> None:
    _lay_out(tmp_path, case)
    result = plumber(*case["args"], cwd=tmp_path, env=case.get("env"))
    assert result.exit_code == case.get("exit", 2), result.output
    assert "Traceback" not in result.stdout
    assert_one_error_line(result.stderr, case["error"], errors=case.get("errors", 1))
    for rel in case.get("absent", ()):
        assert not (tmp_path / rel).exists(), f"{rel} was written"


def test_a_failed_write_names_the_file_and_leaves_no_half_file(tmp_path: Path) -> None:
    """A full disk (here: a file-size limit, which fails the write the same way) names the file
    being written; no temporary file stays behind."""
    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    out = tmp_path / "out"
    done = subprocess.run([*PLUMBER, "build", "--out", str(out)], capture_output=True, text=True,
                          preexec_fn=small_files, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert_one_error_line(done.stderr, f"error: {out}/")
    assert "File too large" in done.stderr
    assert [p for p in out.rglob("*") if p.is_file() and p.stat().st_size >= 1024] == []
    assert [p for p in out.rglob("*.plumber-tmp")] == []


def test_a_bindir_that_holds_no_server_is_named(tmp_path: Path) -> None:
    result = plumber("setup", "postgres", env={"PLUMBER_PG_BINDIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert f"note: PLUMBER_PG_BINDIR={tmp_path} holds no initdb; it is skipped" in result.stderr


def test_setup_airflow_refuses_a_python_that_is_not_one_before_making_its_folder() -> None:
    """Checked on the interpreter itself: as root the CLI finds the machine's Airflow already
    set up in the shared cache and never gets this far."""
    with pytest.raises(EnvironmentProblem) as caught:
        airflow_env._python_version("/bin/true")
    assert str(caught.value) == ("--python /bin/true is not a Python 3 interpreter (asked for its "
                                 "version, it printed '')")


def _mine(folder: Path, pid: int) -> bool:
    try:
        return (folder / OWNER_MARKER).read_text(encoding="utf-8").split()[0] == str(pid)
    except (OSError, IndexError):
        return False


@pytest.mark.engines
@pytest.mark.parametrize(("sent", "code", "line"), [
    (signal.SIGINT, EXIT_INTERRUPTED, "error: interrupted"),
    (signal.SIGTERM, EXIT_TERMINATED, "error: terminated by SIGTERM"),
])
def test_a_signal_mid_verify_stops_the_cluster_and_says_so(sent: signal.Signals, code: int,
                                                           line: str) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or SIGTERM while
    `verify` runs its examples: one line, the signal's exit code, and the throwaway cluster's
    server stopped and its folder removed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen([*PLUMBER, "verify"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env,
                          process_group=0) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        header = proc.stdout.readline()  # printed with the first finished example
        assert header.startswith("example"), header + proc.stderr.read()
        os.killpg(proc.pid, sent)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert stderr.splitlines() == [line]
    leftovers = [p for p in cluster_storage().glob("plumber-pg-*")
                 if _mine(p, proc.pid)]
    assert leftovers == []
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of the run still runs


def test_an_interrupted_live_run_says_how_to_continue_it(fake_api: FakeMessagesAPI,
                                                         tmp_path: Path) -> None:
    """Ctrl-C while the answers are on their way: the run folder stays, to be resumed."""
    suite = next(c for c in BAD if c["id"] == "eval-run-unknown-command")
    _lay_out(tmp_path, suite)
    fake_api.latency = 60.0  # every answer is still in flight when the signal comes
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")},
           "ANTHROPIC_API_KEY": "sk-ant-test-not-a-real-key",
           "ANTHROPIC_BASE_URL": fake_api.base_url}
    run = tmp_path / "run"
    with subprocess.Popen([*PLUMBER, "eval", "run", "--evals", "evals", "--live", "--run-dir",
                           "run", "--cache-dir", "cache"], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          process_group=0) as proc:
        while not fake_api.requests() and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert stderr.splitlines()[-2:] == [
        "note: the run so far is in run; continue it with --resume run", "error: interrupted"]
    assert (run / "spec.json").is_file()
    assert list(run.glob("*.plumber-tmp")) == []


@pytest.mark.engines
def test_ctrl_c_mid_scoring_writes_no_report(tmp_path: Path) -> None:
    """Ctrl-C while the shipped suite's references are scored on two workers: exit 130, one
    line after the progress label, and no report in --out (it is written only after a run)."""
    out = tmp_path / "out"
    with subprocess.Popen([*PLUMBER, "eval", "run", "--evals", str(EVALS), "--answers",
                           "references", "-j", "2", "--out", str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          process_group=0) as proc:
        assert proc.stderr is not None
        label = proc.stderr.readline()  # the progress bar's label, as scoring starts
        assert label.strip() == "scoring", label
        time.sleep(1.0)  # some answers in flight, most still queued
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert stderr.splitlines() == ["error: interrupted"]
    assert not out.exists()


CTRL_C_WHILE_IMPORTING = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "pipeline_plumber.cli":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
sys.argv = ["plumber", "--help"]
from pipeline_plumber.entry import main
main()
"""


def test_ctrl_c_while_the_cli_is_still_importing_is_one_line_and_130() -> None:
    done = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_IMPORTING], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == EXIT_INTERRUPTED
    assert done.stderr == "error: interrupted\n" and done.stdout == ""
