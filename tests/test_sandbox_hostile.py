"""The hostile-answer suite (tests/fixtures/hostile/): every attack ends contained.

Each attack runs through the sandbox directly, then all of them through `plumber eval run`
(with the hand-written reference scored right after each one) and `plumber eval score`, with
a canary API key in the environment. Under root the direct run is repeated as `nobody` in a
child process. Asserted for every attack: the expected outcome, no file written outside the
sandbox, no host file content or key prefix in any output or report, no attack outliving its
deadline by more than 2 s, and the reference keeping its verdict and score.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_plumber import frontmatter
from pipeline_plumber.evals.answers import Answer
from pipeline_plumber.evals.scorers.behaviour import answer_statements
from pipeline_plumber.sandbox import Sandbox, SandboxError, TimedOut
from pipeline_plumber.sandbox.process import python_command

pytestmark = pytest.mark.engines  # hostile answers through the PostgreSQL and DuckDB sandboxes

REPO = Path(__file__).resolve().parents[1]
HOSTILE = REPO / "tests" / "fixtures" / "hostile"
ATTACKS: list[dict[str, Any]] = yaml.safe_load((HOSTILE / "attacks.yaml").read_text("utf-8"))
CANARY = "sk-ant-api03-ZQ9x7Wk2Lm4Np6Rt8Vb0Yc3Hd5Jf"
DEADLINE_S = 3.0
SLACK_S = 2.0
PWNED = Path("/tmp/plumber-hostile-pwned")
HOST_FILE_MARKERS = ("root:x:0:0", "/usr/sbin/nologin", "daemon:x:")
CASES = {"postgres": "schema-events-postgres", "duckdb": "schema-subscriptions-duckdb"}


def load_answer(attack: dict[str, Any]) -> Answer:
    path = HOSTILE / f"{attack['id']}.md"
    meta, body, line = frontmatter.split(path.read_text(encoding="utf-8"))
    assert meta["provenance"] == "hand-written hostile" and meta["attack"] == attack["id"]
    return Answer("\n" * (line - 1) + body, "file", path.as_posix())


def assert_no_leak(text: str, where: str) -> None:
    for start in range(len(CANARY) - 7):
        assert CANARY[start:start + 8] not in text, f"{where}: a piece of the key"
    for marker in HOST_FILE_MARKERS:
        assert marker not in text, f"{where}: host file content {marker!r}"


@pytest.fixture(autouse=True)
def canary(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)
    PWNED.unlink(missing_ok=True)
    yield
    assert not PWNED.exists(), "an attack wrote a file outside the sandbox"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    os.environ["ANTHROPIC_API_KEY"] = CANARY  # the cluster starts with the key around
    try:
        with Sandbox(deadline_s=DEADLINE_S) as shared:
            yield shared
    finally:
        os.environ.pop("ANTHROPIC_API_KEY", None)


def reference_behaves(sandbox: Sandbox, engine: str) -> None:
    """A correct answer's DDL and probes still work exactly as on a fresh server."""
    with sandbox.answer_session(engine) as session:  # type: ignore[arg-type]
        session.execute("CREATE TABLE events (id bigint PRIMARY KEY, user_id bigint NOT NULL)")
        with session.savepoint(undo=True):
            session.execute("INSERT INTO events VALUES (1, 2)")
            assert session.execute("SELECT count(*) FROM events") == [(1,)]
        assert session.execute("SELECT count(*) FROM events") == [(0,)]
        if engine == "postgres":
            assert session.execute("SHOW default_transaction_read_only") == [("off",)]
            installed = session.execute("SELECT extname FROM pg_extension ORDER BY 1")
            assert installed and ("plpgsql",) in installed
            if ("pgcrypto",) in installed:  # not in every PostgreSQL build
                assert session.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto") is None
                digest = session.execute("SELECT encode(digest('a', 'sha256'), 'hex')")
                assert digest and str(digest[0][0]).startswith("ca978112")


@pytest.mark.parametrize("attack", ATTACKS, ids=[a["id"] for a in ATTACKS])
def test_attack_through_the_sandbox(attack: dict[str, Any], sandbox: Sandbox) -> None:
    answer = load_answer(attack)
    engine = attack["engine"]
    errors: list[SandboxError] = []
    with sandbox.answer_session(engine) as session:
        started = time.monotonic()  # the deadline starts when the database is ready
        for statement in answer_statements(answer, engine):
            try:
                session.execute(statement.sql)
            except SandboxError as err:
                errors.append(err)
    took = time.monotonic() - started
    assert took <= DEADLINE_S + SLACK_S, f"{attack['id']} ran {took:.1f} s"
    text = " | ".join(str(e) for e in errors)
    assert_no_leak(text, attack["id"])
    outcomes = attack["outcome"].split("|")
    timed_out = any(isinstance(e, TimedOut) for e in errors)
    if timed_out:
        assert "timed-out" in outcomes, text
        assert f"timed out after {DEADLINE_S:g} s" in text
    elif "refused" in outcomes:
        assert errors, f"{attack['id']}: nothing was refused"
        assert re.search(attack["message"], text), text
    else:
        assert outcomes == ["runs"], text
    assert all("\n" not in str(e) for e in errors)
    reference_behaves(sandbox, engine)


def test_attacks_through_eval_run_keep_the_reference_verdict(tmp_path: Path) -> None:
    from pipeline_plumber.evals.cases import load_checklists, load_suite
    from pipeline_plumber.evals.runner import write_recording

    suite = load_suite(REPO / "evals", load_checklists(REPO / "kb"))
    cases = {case.id: case for case in suite.cases}
    recordings = tmp_path / "recordings"
    repeat = 0
    for attack in ATTACKS:
        case = cases[CASES[attack["engine"]]]
        reference = suite.answers[case.id].reference.text
        for key, text in ((f"attack-{attack['id']}", load_answer(attack).text),
                          (f"reference-after-{attack['id']}", reference)):
            write_recording(recordings, case, key=key, repeat=repeat, model="hostile",
                            request={}, response={"text": text})
            repeat += 1
    out = tmp_path / "out"
    env = {**os.environ, "ANTHROPIC_API_KEY": CANARY}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline_plumber", "eval", "run", "--recordings",
         str(recordings), *[a for c in CASES.values() for a in ("--case", c)], "--out", str(out),
         "--answer-timeout", str(DEADLINE_S)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stderr[-2000:]  # the attacks fail their cases
    assert_no_leak(done.stdout + done.stderr, "eval run output")
    for report in out.iterdir():
        assert_no_leak(report.read_text(encoding="utf-8"), report.name)
    results = json.loads((out / "eval-log.json").read_text(encoding="utf-8"))["results"]
    by_key = {r["answer"]["meta"]["key"]: r for r in results}
    expected = {a["id"]: a for a in ATTACKS}
    verdicts = {}
    for key, result in by_key.items():
        if key.startswith("reference-after-"):
            verdicts.setdefault(result["case_id"], set()).add((result["status"], result["score"]))
            continue
        attack = expected[key.removeprefix("attack-")]
        if attack["outcome"] != "runs":
            assert result["status"] == "fail", key
        if "timed-out" in attack["outcome"]:  # (the first answers also wait for the cluster)
            for check in result["checks"]:
                assert check["seconds"] <= DEADLINE_S + SLACK_S + 3, (key, check)  # + set-up
    assert len(by_key) == 2 * len(ATTACKS)
    for case_id, seen in verdicts.items():
        assert len(seen) == 1 and next(iter(seen))[0] == "pass", (case_id, seen)


def test_attacks_through_eval_score(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline_plumber.cli import cli

    for attack in ATTACKS:
        result = CliRunner().invoke(cli, [
            "eval", "score", "--evals", str(REPO / "evals"), "--kb", str(REPO / "kb"),
            "--command", "schema", "--answer", str(HOSTILE / f"{attack['id']}.md"),
            "--dialect", attack["engine"], "--answer-timeout", str(DEADLINE_S), "--json"],
            catch_exceptions=False)
        assert result.exit_code == 1, (attack["id"], result.output[-1000:])
        assert_no_leak(result.output, attack["id"])
        assert json.loads(result.output)["status"] == "fail"


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder the unprivileged account can reach (pytest's tmp_path is under a 0700 one)."""
    folder = Path(tempfile.mkdtemp(prefix="plumber-hostile-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_suite_holds_for_an_unprivileged_account(shared_tmp: Path) -> None:
    """Under root, the direct suite again as `nobody` (its own cluster, HOME and temp dir);
    otherwise the tests already run unprivileged and this runs them once more, the same way."""
    command, _ = python_command(Path(sys.executable))
    site = sysconfig.get_paths()["purelib"]
    tmp_path = shared_tmp
    child_env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), site]),
        "PYTHONDONTWRITEBYTECODE": "1", "ANTHROPIC_API_KEY": CANARY, "LANG": "C.UTF-8",
    }
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] \
        if os.geteuid() == 0 else []
    done = subprocess.run(
        [*prefix, *command, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         str(Path(__file__)), "-k", "through_the_sandbox"],
        cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"{len(ATTACKS)} passed" in done.stdout
    assert_no_leak(done.stdout, "unprivileged run")
