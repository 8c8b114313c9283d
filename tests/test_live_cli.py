"""`plumber eval run --live` as a user runs it: a subprocess talking HTTP to the fake Messages
API. Kill -9 and resume, replay, budget, batches, baseline, and the key never written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline_plumber.evals.scorers.judge import JUDGE_MODEL
from pipeline_plumber.live.report import REPORT_JSON, read_report
from pipeline_plumber.live.run_folder import read_jsonl
from support.fake_api import FakeMessagesAPI, Fault, RecordedRequest

pytestmark = pytest.mark.engines  # each `plumber eval run` process scores on PostgreSQL

REPO = Path(__file__).resolve().parents[1]
CANARY = "sk-ant-canary-9f8e7d6c5b4a39281706"
SCHEMA = ("--command", "schema")  # the tests run the schema cases of evals/cases
CASES = sum(c.get("command") == "schema" for f in sorted((REPO / "evals" / "cases").glob("*.yaml"))
            for c in yaml.safe_load(f.read_text())["cases"])


def env(api: FakeMessagesAPI, key: str | None = CANARY) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    out["ANTHROPIC_BASE_URL"] = api.base_url
    out.pop("GITHUB_STEP_SUMMARY", None)
    if key:
        out["ANTHROPIC_API_KEY"] = key
    return out


def plumber_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline_plumber", "eval", "run", "--evals",
            str(REPO / "evals"), "--kb", str(REPO / "kb"), *SCHEMA, *args]


def plumber(tmp: Path, api: FakeMessagesAPI, *args: str, key: str | None = CANARY,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(plumber_args(*args), cwd=tmp, env=env(api, key), capture_output=True,
                          text=True, timeout=timeout, check=False)


def answers(api: FakeMessagesAPI) -> list[RecordedRequest]:
    """The requests for answers; the judge's votes go to the pinned judge model."""
    return [r for r in api.message_requests()  # a request cut by kill -9 may have no body
            if not isinstance(r.body, dict) or r.body.get("model") != JUDGE_MODEL]


def votes(api: FakeMessagesAPI) -> list[RecordedRequest]:
    return [r for r in api.message_requests()
            if isinstance(r.body, dict) and r.body.get("model") == JUDGE_MODEL]


def ok_lines(run: Path) -> list[dict[str, object]]:
    return [r for r in read_jsonl(run / "results.jsonl") if r["status"] == "ok"]


def test_kill_9_then_resume_sends_only_what_is_missing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with FakeMessagesAPI(latency=0.25) as api:
        proc = subprocess.Popen(plumber_args("--live", "--run-dir", str(run), "-j", "2",
                                             "--repeat", "4", "--cache-dir", "c"),
                                cwd=tmp_path, env=env(api), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(ok_lines(run)) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = ok_lines(run)
        assert 8 <= len(before) < 4 * CASES, "killed mid-run"
        sent_before = len(answers(api))
        with (run / "results.jsonl").open("ab") as handle:
            handle.write(b'{"v": 1, "key": "torn')  # a line cut off by the crash
        done = plumber(tmp_path, api, "--resume", str(run), "-j", "4", "--cache-dir", "c")
        assert done.returncode == 1, done.stderr  # the fake's answers fail the rubrics
        resumed = answers(api)[sent_before:]
    after = ok_lines(run)
    keys = [r["key"] for r in after]
    assert len(keys) == len(set(keys)) == 4 * CASES, "one answer per item, none twice"
    assert len(resumed) == 4 * CASES - len(before), "only the missing items were sent"
    first = {r["key"]: r["text"] for r in before}
    assert all(r["text"] == first[r["key"]] for r in after if r["key"] in first)
    assert read_report(run / REPORT_JSON).totals.ok == 4 * CASES


def test_record_then_replay_makes_no_requests_and_a_miss_fails(tmp_path: Path) -> None:
    with FakeMessagesAPI() as api:
        rec = plumber(tmp_path, api, "--live", "--record", "--recordings", "rec",
                      "--run-dir", "r1", "--cache-dir", "c1")
        assert rec.returncode == 1, rec.stderr
        assert len(answers(api)) == CASES
        assert votes(api), "the live run asked the judge"
        asked = len(api.message_requests())
        again = plumber(tmp_path, api, "--live", "--recordings", "rec", "--run-dir", "r2",
                        "--cache-dir", "c2")
        replay = plumber(tmp_path, api, "--replay", "--recordings", "rec", "--run-dir", "r3",
                         key=None)
        assert len(api.message_requests()) == asked, "second run and replay asked nothing"
        miss = plumber(tmp_path, api, "--replay", "--recordings", "rec", "--run-dir", "r4",
                       "--max-tokens", "77", key=None)
        offline = plumber(tmp_path, api, "--recordings", "rec", key=None)
        assert len(api.message_requests()) == asked
    assert again.returncode == replay.returncode == 1
    assert {r["source"] for r in read_jsonl(tmp_path / "r2" / "results.jsonl")} == {"recording"}
    assert miss.returncode == 2
    assert "schema-events-postgres" in miss.stderr and "differ in parameters" in miss.stderr
    assert f"({CASES} answers)" in offline.stdout, offline.stdout + offline.stderr


def test_budget_exceeded_is_its_own_status_and_exit_code(tmp_path: Path) -> None:
    with FakeMessagesAPI() as api:
        done = plumber(tmp_path, api, "--live", "--run-dir", "r", "-j", "1",
                       "--max-tokens", "1000", "--max-usd", "0.04", "--cache-dir", "c")
        sent = len(answers(api))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "estimate: at most $" in done.stderr
    report = read_report(tmp_path / "r" / REPORT_JSON)
    assert report.status == "budget_exceeded"
    assert report.totals.budget_exceeded == CASES - sent > 0
    assert report.totals.cost_usd <= 0.04
    assert all(c.status != "fail" for c in report.cases if c.answered == 0)


def test_batch_run_resumes_by_batch_id(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with FakeMessagesAPI(batch_delay=2.0) as api:
        proc = subprocess.Popen(plumber_args("--live", "--batch", "--poll-interval", "0.1",
                                             "--run-dir", str(run), "--cache-dir", "c"),
                                cwd=tmp_path, env=env(api), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (run / "batch.json").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not ok_lines(run)
        done = plumber(tmp_path, api, "--resume", str(run), "--poll-interval", "0.1",
                       "--cache-dir", "c")
        created = [r for r in api.requests("/v1/messages/batches") if r.method == "POST"]
        saved = json.loads((run / "batch.json").read_text())["batches"]
        polled = {r.route for r in api.requests() if r.method == "GET"}
    assert done.returncode == 1, done.stderr
    assert len(created) == 1, "the resumed run polled the stored batch instead of a new one"
    assert not answers(api)
    after = ok_lines(run)
    assert len(after) == CASES and {r["source"] for r in after} == {"batch"}
    assert len(saved) == 1 and f"/v1/messages/batches/{saved[0]['id']}/results" in polled


def test_baseline_sends_each_case_without_the_system_prompt(tmp_path: Path) -> None:
    def answer(body: dict[str, object]) -> str:
        # the agent's answers pass a NOT NULL check the baseline's do not
        return "user_id NOT NULL" if body.get("system") else "nothing"

    with FakeMessagesAPI() as api:
        api.respond_with(answer)
        done = plumber(tmp_path, api, "--live", "--baseline", "--run-dir", "r",
                       "--cache-dir", "c")
        bodies = [r.body for r in answers(api)]
    assert done.returncode == 1, done.stderr
    assert len(bodies) == 2 * CASES
    assert sum("system" not in b for b in bodies) == CASES
    assert len(read_report(tmp_path / "r" / REPORT_JSON).baseline) == CASES
    assert "baseline: schema-events-postgres" in done.stdout


def test_the_key_is_never_written_anywhere(tmp_path: Path) -> None:
    outputs = []
    with FakeMessagesAPI() as api:
        outputs.append(plumber(tmp_path, api, "--live", "--record", "--baseline", "--repeat",
                               "2", "--recordings", "rec", "--run-dir", "r1", "--cache-dir",
                               "c", "--out", "out"))
        api.set_fault(Fault.server_error())
        outputs.append(plumber(tmp_path, api, "--live", "--fresh", "--max-retries", "1",
                               "--run-dir", "r2", "--cache-dir", "c"))
        api.set_fault(None)
        outputs.append(plumber(tmp_path, api, "--live", "--batch", "--poll-interval", "0",
                               "--fresh", "--run-dir", "r3", "--cache-dir", "c"))
        outputs.append(plumber(tmp_path, api, "--replay", "--max-tokens", "5",
                               "--recordings", "rec", "--run-dir", "r4"))
        outputs.append(plumber(tmp_path, api, "--live", "--max-usd", "0", "--fresh",
                               "--run-dir", "r5", "--cache-dir", "c"))
        recorded = [json.dumps(r.headers) + json.dumps(r.body) for r in api.requests()]
    assert [o.returncode for o in outputs] == [1, 2, 1, 2, 3]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 50
    for path in written:
        assert CANARY.encode() not in path.read_bytes(), path
    for out in outputs:
        assert CANARY not in out.stdout + out.stderr
    assert all(CANARY not in r for r in recorded), "the fake redacts; so must we"
