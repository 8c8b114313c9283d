"""The live runner against the fake Messages API over real HTTP: counts, concurrency, retries,
timeouts, budget, stored answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline_plumber.build import build_pack
from pipeline_plumber.errors import InputError
from pipeline_plumber.live.answers import AnswerStore, ReplayMiss, Stores, send_answers
from pipeline_plumber.live.budget import worst_case_usd
from pipeline_plumber.live.prices import load_prices
from pipeline_plumber.live.request import (
    CaseInput,
    LiveConfig,
    PackPrompts,
    build_request,
    expand_arguments,
    plan_items,
    request_key,
)
from pipeline_plumber.live.run_folder import RunFolder
from pipeline_plumber.live.sender import Sender, SendOptions, redact
from pipeline_plumber.paths import package_data
from support.fake_api import FakeMessagesAPI, Fault

KEY = "sk-ant-test-runner-key-0000"
MODEL = "claude-sonnet-5"


@pytest.fixture(scope="module")
def prompts() -> PackPrompts:
    pack = build_pack(package_data("kb"), package_data("templates"), plugin=False)
    return PackPrompts.from_files(pack.files, pack.kb.agent.name)


def cases(n: int) -> list[CaseInput]:
    return [CaseInput(f"case-{i:03d}", "schema", f"table_{i} with id and created_at", f"sha{i}")
            for i in range(n)]


def run(api: FakeMessagesAPI, tmp: Path, prompts: PackPrompts, n: int = 4, *, repeats: int = 1,
        stores: Stores | None = None, folder: RunFolder | None = None,
        config: LiveConfig | None = None, **options: object):
    items = plan_items(cases(n), prompts, config or LiveConfig(model=MODEL), repeats=repeats)
    folder = folder or RunFolder(tmp / "run")
    opts = SendOptions(**{"backoff_base": 0.01, **options})  # type: ignore[arg-type]
    counts = send_answers(items, folder, sender=Sender(opts, load_prices(), KEY, api.base_url),
                          stores=stores or Stores())
    return items, folder, counts


# --- the request, as Claude Code builds it -------------------------------------------------------


def test_the_request_is_the_agent_body_and_the_expanded_command(prompts: PackPrompts) -> None:
    agent = (Path(__file__).resolve().parents[1] / "agents" / "data-engineer.md").read_text(
        encoding="utf-8")
    assert prompts.agent_body.startswith("# The Data Engineer")
    assert prompts.agent_body in agent
    user = prompts.user_message("schema", "orders by day")
    assert user.startswith("#schema orders by day")
    request = build_request(prompts.agent_body, user, LiveConfig(model=MODEL, max_tokens=99))
    assert request["system"] == [{"type": "text", "text": prompts.agent_body,
                                  "cache_control": {"type": "ephemeral"}}]
    assert request["messages"] == [{"role": "user", "content": user}]
    assert (request["model"], request["max_tokens"]) == (MODEL, 99)


@pytest.mark.parametrize(("body", "args", "expected"), [
    ("#x $ARGUMENTS", "a b", "#x a b"),
    ("$0 then $1, not $2", "first 'second arg'", "first then second arg, not $2"),
    ("no placeholder", "a", "no placeholder\n\nARGUMENTS: a"),
    ("no placeholder", "", "no placeholder"),
    ("$ARGUMENTS", "costs $1", "costs $1"),
])
def test_arguments_expand_as_claude_code_does(body: str, args: str, expected: str) -> None:
    assert expand_arguments(body, args) == expected


def test_the_key_covers_what_changes_the_output_and_only_that() -> None:
    config = LiveConfig(model=MODEL)
    base = build_request("sys", "hi", config)
    key = request_key(base, 0)
    assert request_key(build_request("sys", "hi", LiveConfig(model=MODEL, prompt_cache=False)),
                       0) == key, "cache_control does not change the answer"
    assert request_key({**base, "stream": True}, 0) == key
    for changed in (build_request("sys2", "hi", config), build_request("sys", "ho", config),
                    build_request("sys", "hi", LiveConfig(model="claude-haiku-4-5")),
                    build_request("sys", "hi", LiveConfig(model=MODEL, max_tokens=5)),
                    build_request("sys", "hi", LiveConfig(model=MODEL, params={"top_p": 0.5}))):
        assert request_key(changed, 0) != key
    assert request_key(base, 1) != key


def test_params_may_not_override_what_the_run_sets() -> None:
    with pytest.raises(InputError, match="system"):
        LiveConfig(params={"system": "x"})


# --- sending -------------------------------------------------------------------------------------


def test_exactly_one_request_per_item_and_n_in_flight(tmp_path: Path,
                                                       prompts: PackPrompts) -> None:
    with FakeMessagesAPI(latency=0.05) as api:
        items, folder, tally = run(api, tmp_path, prompts, n=12, repeats=2, jobs=6)
        sent = api.message_requests()
        assert len(sent) == 24 == len(items)
        assert api.max_in_flight == 6
        bodies = [r.body for r in sent]
        assert {json.dumps(b, sort_keys=True) for b in bodies} == {
            json.dumps(dict(i.request), sort_keys=True) for i in items}
    results = folder.results()
    assert len(results) == 24 and all(r["status"] == "ok" for r in results.values())
    assert tally.attempts == 24


def test_cache_is_warmed_by_one_request_before_the_fan_out(tmp_path: Path,
                                                            prompts: PackPrompts) -> None:
    with FakeMessagesAPI(latency=0.05) as api:
        _, folder, _ = run(api, tmp_path, prompts, n=9, jobs=8)
        sent = api.message_requests()
        first, rest = sent[0], sent[1:]
        assert all(r.timestamp >= first.timestamp + 0.05 for r in rest)
    results = sorted(folder.results().values(), key=lambda r: r["at"])
    assert results[0]["usage"]["cache_write_5m"] > 0
    assert all(r["usage"]["cache_read"] > 0 and r["usage"]["cache_write_5m"] == 0
               for r in results[1:])


def test_retry_after_is_honoured_on_429_and_529(tmp_path: Path, prompts: PackPrompts) -> None:
    with FakeMessagesAPI() as api:
        api.inject(Fault.rate_limit(retry_after=0.3))
        api.inject(Fault.overloaded(retry_after=0.2))
        _, folder, tally = run(api, tmp_path, prompts, n=1, jobs=1)
        sent = api.message_requests()
        assert [r.status for r in sent] == [429, 529, 200]
        assert sent[1].timestamp - sent[0].timestamp >= 0.3  # the backoff alone is ~0.01 s
        assert sent[2].timestamp - sent[1].timestamp >= 0.2
    assert tally.retries_throttled == 2
    (result,) = folder.results().values()
    assert result["status"] == "ok" and result["attempts"] == 3


def test_a_429_pauses_every_worker(tmp_path: Path, prompts: PackPrompts) -> None:
    """The pause is shared: most of the work waits out the retry-after, not just the worker
    that was limited. (Without a shared pause the other workers finish the 24 requests in about
    0.4 s and only the limited one comes after the pause; requests already in flight when the
    429 arrives may still land, so the assertion leaves room for them on a loaded machine.)"""
    with FakeMessagesAPI(latency=0.05) as api:
        api.inject(Fault.rate_limit(retry_after=0.5))
        run(api, tmp_path, prompts, n=24, jobs=4, warm_up=False)
        sent = api.message_requests()
        limited = next(r for r in sent if r.status == 429)
        after_pause = [r for r in sent if r.timestamp >= limited.timestamp + 0.5 - 0.02]
        assert len(sent) == 25
        assert len(after_pause) >= 12, f"only {len(after_pause)} of 24 requests waited"


@pytest.mark.parametrize("fault", [Fault.server_error(), Fault.drop(), Fault.malformed()])
def test_transient_failures_are_retried(tmp_path: Path, prompts: PackPrompts,
                                        fault: Fault) -> None:
    with FakeMessagesAPI() as api:
        api.inject(fault, times=2)
        _, folder, _ = run(api, tmp_path, prompts, n=1, jobs=1)
        assert len(api.message_requests()) == 3
    (result,) = folder.results().values()
    assert result["status"] == "ok" and result["attempts"] == 3


def test_retries_are_bounded_and_the_error_recorded(tmp_path: Path,
                                                    prompts: PackPrompts) -> None:
    with FakeMessagesAPI() as api:
        api.set_fault(Fault.server_error())
        _, folder, tally = run(api, tmp_path, prompts, n=2, jobs=2, max_retries=2)
        assert len(api.message_requests()) == 6
    assert tally.errors == 2
    assert all(r["status"] == "error" and "500" in r["error"] and r["attempts"] == 3
               for r in folder.results().values())


def test_a_slow_answer_times_out_and_is_retried(tmp_path: Path, prompts: PackPrompts) -> None:
    with FakeMessagesAPI() as api:
        api.inject(Fault.latency(1.5))
        _, folder, _ = run(api, tmp_path, prompts, n=1, jobs=1, timeout=0.3)
        sent = api.message_requests()
        assert len(sent) == 2
        assert sent[1].timestamp - sent[0].timestamp < 1.0, "gave up after the timeout"
    (result,) = folder.results().values()
    assert result["status"] == "ok" and result["attempts"] == 2


def test_a_second_run_of_the_same_spec_makes_no_requests(tmp_path: Path,
                                                         prompts: PackPrompts) -> None:
    cache = AnswerStore(tmp_path / "cache")
    stores = Stores(lookup=[("cache", cache)], cache=cache)
    with FakeMessagesAPI() as api:
        run(api, tmp_path, prompts, n=5, stores=stores, folder=RunFolder(tmp_path / "a"))
        assert len(api.message_requests()) == 5
        _, folder, tally = run(api, tmp_path, prompts, n=5, stores=stores,
                               folder=RunFolder(tmp_path / "b"))
        assert len(api.message_requests()) == 5
    assert tally.from_store == 5 and tally.sent == 0
    assert {r["source"] for r in folder.results().values()} == {"cache"}


def test_replay_miss_fails_before_any_request(tmp_path: Path, prompts: PackPrompts) -> None:
    store = AnswerStore(tmp_path / "recordings")
    with FakeMessagesAPI() as api:
        run(api, tmp_path, prompts, n=2, stores=Stores(record_to=store),
            folder=RunFolder(tmp_path / "a"))
        before = len(api.message_requests())
        with pytest.raises(ReplayMiss) as err:
            run(api, tmp_path, prompts, n=3, stores=Stores(lookup=[("recording", store)]),
                folder=RunFolder(tmp_path / "b"), replay=True)
        assert len(api.message_requests()) == before
    assert "case-002" in str(err.value) and "case-000" not in str(err.value)
    assert err.value.exit_code == 2


def test_replay_miss_says_what_changed(tmp_path: Path, prompts: PackPrompts) -> None:
    store = AnswerStore(tmp_path / "recordings")
    with FakeMessagesAPI() as api:
        run(api, tmp_path, prompts, n=1, stores=Stores(record_to=store),
            folder=RunFolder(tmp_path / "a"))
        with pytest.raises(ReplayMiss, match="differ in parameters"):
            run(api, tmp_path, prompts, n=1, stores=Stores(lookup=[("recording", store)]),
                folder=RunFolder(tmp_path / "b"), replay=True,
                config=LiveConfig(model=MODEL, max_tokens=7))


def test_budget_stops_sending_and_marks_the_rest(tmp_path: Path, prompts: PackPrompts) -> None:
    config = LiveConfig(model=MODEL, max_tokens=1000)
    with FakeMessagesAPI() as api:
        # worst case ~$0.033 a request (5.7k input tokens at the 1h write rate, 1k output)
        _, folder, tally = run(api, tmp_path, prompts, n=10, jobs=1, max_usd=0.05,
                               config=config)
        sent = len(api.message_requests())
    results = list(folder.results().values())
    assert 0 < sent < 10
    assert sum(r["status"] == "ok" for r in results) == sent
    assert sum(r["status"] == "budget_exceeded" for r in results) == 10 - sent
    assert tally.spent_usd <= 0.05


def test_no_key_and_nothing_stored_is_bad_input(tmp_path: Path, prompts: PackPrompts) -> None:
    items = plan_items(cases(1), prompts, LiveConfig(model=MODEL))
    with pytest.raises(InputError, match="ANTHROPIC_API_KEY"):
        send_answers(items, RunFolder(tmp_path / "r"),
                     sender=Sender(SendOptions(), load_prices(), None), stores=Stores())


def test_a_bad_price_table_names_file_line_and_field(tmp_path: Path) -> None:
    from pipeline_plumber.errors import InputError

    bad = tmp_path / "prices.yaml"
    bad.write_text("version: 1\nunit: USD per million tokens\nbatch_discount: 0.5\nmodels:\n"
                   "  - {id: m, input: 1, cache_write_5m: 1, cache_write_1h: 1, cache_read: 1,\n"
                   "     output: 1, checked: 2026-11-26, ouput: 2}\n")
    with pytest.raises(InputError) as caught:
        load_prices(bad)
    assert [str(p) for p in caught.value.problems] == [
        f"{bad.as_posix()}:6: models[0].ouput: unknown key (did you mean 'output'?)"]


# --- failed attempts the API may have billed, and the key in what a server sends back ----------


def test_unreadable_200_replies_count_at_their_worst_case_and_stop_the_budget(
        tmp_path: Path, prompts: PackPrompts) -> None:
    config = LiveConfig(model=MODEL, max_tokens=1000)
    with FakeMessagesAPI() as api:
        api.set_fault(Fault.malformed())
        items, folder, tally = run(api, tmp_path, prompts, n=1, jobs=1, max_usd=0.1,
                                   max_retries=15, config=config)
        sent = len(api.message_requests())
    worst = worst_case_usd(items[0], load_prices().require(MODEL))
    (result,) = folder.results().values()
    assert sent == int(0.1 // worst) < 16  # every cut-off 200 is charged, so retries run out
    assert result["status"] == "budget_exceeded" and result["attempts"] == sent
    assert result["cost_usd"] == pytest.approx(sent * worst, rel=1e-6)
    assert "malformed" not in result["error"] and result["error"]
    assert tally.budget_exceeded == 1 and tally.spent_usd <= 0.1


def test_refusals_before_any_work_are_free(tmp_path: Path, prompts: PackPrompts) -> None:
    config = LiveConfig(model=MODEL, max_tokens=1000)
    with FakeMessagesAPI() as api:
        api.set_fault(Fault.overloaded())
        _, folder, tally = run(api, tmp_path, prompts, n=1, jobs=1, max_usd=0.05,
                               max_retries=5, config=config)
        assert len(api.message_requests()) == 6
    (result,) = folder.results().values()
    assert result["status"] == "error" and "529" in result["error"]
    assert result["cost_usd"] == 0 and tally.spent_usd == 0


CANARY_KEY = "sk-ant-canary-1234567890abcdefghijklmnopqrstuvwxyz"


class _EchoKey(BaseHTTPRequestHandler):
    """A server that puts the first 16 characters of the caller's key in its error body and
    in the answer text."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        sent = self.headers.get("x-api-key") or str(self.headers.get("authorization"))
        piece = sent.removeprefix("Bearer ")[:16]
        if self.server.answer:  # type: ignore[attr-defined]
            body = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
                    "content": [{"type": "text", "text": f"your key starts {piece}, {piece[:9]}"}],
                    "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": 1, "output_tokens": 1}}
            status = 200
        else:
            body = {"type": "error", "error": {"type": "authentication_error",
                                               "message": f"invalid x-api-key: {piece}..."}}
            status = 401
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("answer", [False, True])
def test_pieces_of_the_key_echoed_by_a_server_are_never_written(
        tmp_path: Path, prompts: PackPrompts, answer: bool) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKey)
    server.answer = answer  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)  # shutdown() waits up to one poll
    thread.start()
    try:
        items = plan_items(cases(1), prompts, LiveConfig(model=MODEL))
        record_to = AnswerStore(tmp_path / "recordings")
        sender = Sender(SendOptions(max_retries=0), load_prices(), CANARY_KEY,
                        f"http://127.0.0.1:{server.server_port}")
        send_answers(items, RunFolder(tmp_path / "run"), sender=sender,
                     stores=Stores(record_to=record_to))
    finally:
        server.shutdown()
        server.server_close()
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert "[redacted]" in written
    for start in range(len(CANARY_KEY) - 8):
        assert CANARY_KEY[start:start + 8] not in written


def test_redact_removes_every_piece_of_eight_or_more() -> None:
    key = "sk-ant-api03-SECRETSECRETSECRET"
    assert redact(f"a {key} b", key) == "a [redacted] b"
    assert redact("echo: sk-ant-api03-SECR!", key) == "echo: [redacted]!"
    assert redact("mid TSECRETSE end", key) == "mid [redacted] end"
    assert redact("short sk-ant- stays", key) == "short sk-ant- stays"
    assert redact("", key) == "" and redact("text", None) == "text"
