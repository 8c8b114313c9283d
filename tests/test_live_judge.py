"""The LLM judge in a live run: votes go to the pinned judge model, are stored, replayed, and
held to the budget; the model under test may not be the judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline_plumber.evals.scorers.judge import JUDGE_MODEL
from pipeline_plumber.live.report import REPORT_JSON, read_report
from support.fake_api import FakeMessagesAPI
from test_live_cli import CASES, REPO, answers, plumber, votes

pytestmark = pytest.mark.engines  # each `plumber eval run` process scores on PostgreSQL


def reference_answers() -> dict[str, str]:
    """The hand-written reference answer of each schema case, keyed by a phrase of its prompt."""
    out = {}
    for folder in sorted((REPO / "evals" / "answers").glob("schema-*")):
        text = (folder / "reference.md").read_text()
        out[folder.name] = text.split("\n---\n", 1)[1]  # without the hand-written label
    return out


def responder(score: int) -> Any:
    refs = reference_answers()

    def reply(body: dict[str, Any]) -> str:
        if body.get("model") == JUDGE_MODEL:
            return f"The answer states it plainly.\nSCORE: {score}"
        user = json.dumps(body.get("messages"))
        case = next((c for c in refs if c.split("-", 1)[1].split("-")[0] in user), None)
        return refs[case] if case else "no answer"

    return reply


def judge_statuses(log: Path) -> list[str]:
    results = json.loads(log.read_text())["results"]
    return [c["status"] for r in results for c in r["checks"] if c["scorer"] == "judge"]


def test_votes_go_to_the_judge_are_recorded_and_replayed(tmp_path: Path) -> None:
    with FakeMessagesAPI() as api:
        api.respond_with(responder(9))
        live = plumber(tmp_path, api, "--live", "--record", "--recordings", "rec",
                       "--run-dir", "r1")
        asked = len(api.message_requests())
        replay = plumber(tmp_path, api, "--replay", "--recordings", "rec", "--run-dir", "r2",
                         key=None)
        assert len(api.message_requests()) == asked, "a replay asks nobody, judge included"
        cast = votes(api)
    assert len(answers(api)) == CASES
    assert cast and all(v.body["model"] == JUDGE_MODEL for v in cast)
    assert all("SCORE: N" in str(v.body["system"]) for v in cast)
    statuses = judge_statuses(tmp_path / "r1" / "eval-log.json")
    assert statuses and set(statuses) == {"pass"}, live.stdout + live.stderr
    assert judge_statuses(tmp_path / "r2" / "eval-log.json") == statuses
    assert len(list((tmp_path / "rec" / "judge").glob("*.json"))) == len(cast)
    judge = read_report(tmp_path / "r1" / REPORT_JSON).judge
    assert judge is not None and judge.sent == len(cast) and judge.cost_usd > 0
    assert replay.returncode == live.returncode


def test_low_votes_fail_the_judge_checks(tmp_path: Path) -> None:
    with FakeMessagesAPI() as api:
        api.respond_with(responder(2))
        plumber(tmp_path, api, "--live", "--run-dir", "r", "--cache-dir", "c")
    statuses = judge_statuses(tmp_path / "r" / "eval-log.json")
    assert statuses and set(statuses) == {"fail"}


def test_a_budget_that_covers_the_answers_but_not_the_votes(tmp_path: Path) -> None:
    with FakeMessagesAPI() as api:
        api.respond_with(responder(9))
        done = plumber(tmp_path, api, "--live", "--run-dir", "r", "--cache-dir", "c",
                       "--max-tokens", "200", "--max-usd", "0.2")
    assert len(answers(api)) == CASES
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"estimate: judge {JUDGE_MODEL}, at most " in done.stderr
    report = read_report(tmp_path / "r" / REPORT_JSON)
    assert report.judge is not None and report.judge.skipped_for_budget > 0
    assert report.totals.cost_usd + report.judge.cost_usd <= 0.2
    assert "not-scored" in judge_statuses(tmp_path / "r" / "eval-log.json")


def test_the_judge_model_is_not_the_model_under_test(tmp_path: Path) -> None:
    with FakeMessagesAPI() as api:
        done = plumber(tmp_path, api, "--live", "--run-dir", "r", "--model", JUDGE_MODEL)
        assert not api.message_requests()
    assert done.returncode == 2
    assert "pinned judge model" in done.stderr and "Traceback" not in done.stderr


def test_votes_are_sent_concurrently(tmp_path: Path) -> None:
    """Three answers can never be four in flight: a peak of 4 at -j 4 is the judge's votes."""
    with FakeMessagesAPI(latency=0.2) as api:
        api.respond_with(responder(9))
        plumber(tmp_path, api, "--live", "--run-dir", "r", "--cache-dir", "c", "-j", "4")
        assert len(votes(api)) > 4
        assert api.max_in_flight == 4


def test_stored_answers_without_stored_votes_and_no_key_is_one_line_and_no_folder(
        tmp_path: Path) -> None:
    with FakeMessagesAPI() as api:
        api.respond_with(responder(9))
        plumber(tmp_path, api, "--live", "--record", "--recordings", "rec", "--run-dir", "r1")
        for vote in (tmp_path / "rec" / "judge").glob("*.json"):
            vote.unlink()
        asked = len(api.message_requests())
        done = plumber(tmp_path, api, "--live", "--recordings", "rec", "--run-dir", "r2",
                       key=None)
        assert len(api.message_requests()) == asked
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert "ANTHROPIC_API_KEY is not set" in line and "judge vote(s)" in line, line
    assert "--record" in line and "Traceback" not in done.stderr
    assert not (tmp_path / "r2").exists()


def test_a_keyless_live_run_leaves_no_run_folder(tmp_path: Path) -> None:
    with FakeMessagesAPI() as api:
        done = plumber(tmp_path, api, "--live", key=None)
        assert not api.message_requests()
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "ANTHROPIC_API_KEY is not set" in line
    assert not (tmp_path / ".plumber").exists()


# --- votes go through the run's one sender: retries, budget, billed failures, key --------------


def _votes(n: int) -> list[Any]:
    from pipeline_plumber.evals.scorers.judge import judge_request, request_key
    from pipeline_plumber.live.judging import Vote

    request = judge_request("names the primary key", "a table of orders", "id is the key")
    return [Vote(request_key(request, i), i, request, "case-x") for i in range(n)]


def _sender(api: FakeMessagesAPI, **options: Any) -> Any:
    from pipeline_plumber.live.prices import load_prices
    from pipeline_plumber.live.sender import Sender, SendOptions

    return Sender(SendOptions(**{"backoff_base": 0.01, "jobs": 1, **options}), load_prices(),
                  "sk-ant-test-judge-key-0000", api.base_url)


def test_votes_are_retried_like_answers(tmp_path: Path) -> None:
    from pipeline_plumber.evals.scorers.judge import JudgeStore
    from pipeline_plumber.live.judging import ask_judge
    from support.fake_api import Fault

    store = JudgeStore(tmp_path / "judge")
    with FakeMessagesAPI() as api:
        api.respond_with(lambda body: "fine\nSCORE: 8")
        api.inject(Fault.overloaded(retry_after=0.3))
        api.inject(Fault.server_error())
        summary = ask_judge(_votes(2), store, _sender(api))
        sent = api.message_requests()
    assert [r.status for r in sent] == [529, 500, 200, 200]
    assert sent[1].timestamp - sent[0].timestamp >= 0.3, "retry-after honoured for a vote"
    assert (summary.sent, summary.failed, summary.skipped_for_budget) == (2, 0, 0)
    assert all(store.get(v.key) == "fine\nSCORE: 8" for v in _votes(2))


def test_unreadable_vote_replies_are_billed_and_stop_the_budget(tmp_path: Path) -> None:
    from pipeline_plumber.evals.scorers.judge import JudgeStore
    from pipeline_plumber.live.budget import worst_case_usd
    from pipeline_plumber.live.judging import ask_judge
    from pipeline_plumber.live.prices import load_prices
    from support.fake_api import Fault

    (vote,) = _votes(1)
    worst = worst_case_usd(vote.work_item(), load_prices().require(JUDGE_MODEL))
    with FakeMessagesAPI() as api:
        api.set_fault(Fault.malformed())
        summary = ask_judge([vote], JudgeStore(tmp_path / "j"),
                            _sender(api, max_usd=3.5 * worst, max_retries=10))
        sent = len(api.message_requests())
    assert sent == 3, "each cut-off 200 is charged at its worst case, so the budget ends it"
    assert summary.skipped_for_budget == 1 and summary.sent == 0
    assert summary.cost_usd == pytest.approx(3 * worst, rel=1e-6)


def test_a_vote_without_a_key_is_one_line_before_any_request(tmp_path: Path) -> None:
    from pipeline_plumber.errors import InputError
    from pipeline_plumber.evals.scorers.judge import JudgeStore
    from pipeline_plumber.live.judging import ask_judge
    from pipeline_plumber.live.prices import load_prices
    from pipeline_plumber.live.sender import Sender, SendOptions

    with FakeMessagesAPI() as api:
        sender = Sender(SendOptions(), load_prices(), None, api.base_url)
        with pytest.raises(InputError, match="ANTHROPIC_API_KEY is not set and 2 judge vote"):
            ask_judge(_votes(2), JudgeStore(tmp_path / "j"), sender)
        assert not api.message_requests()
