"""The fake Messages API, exercised over real HTTP by the real `anthropic` SDK."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from support.fake_api import DEFAULT_REPLY, FakeMessagesAPI, Fault, Reply

MODEL = "claude-test-model"
SECRET = "sk-ant-secret-value-123"
HELLO: list[Any] = [{"role": "user", "content": "hello"}]


@functools.cache
def shared_http() -> httpx2.Client:
    """One HTTP client for every SDK client here: each new one loads the CA bundle (~30 ms of
    CPU), and a test makes several. Connections are pooled per server, so tests stay apart."""
    return anthropic.DefaultHttpxClient()


def client(api: FakeMessagesAPI, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=api.base_url, api_key=SECRET, http_client=shared_http(),
                               **options)


def ask(api: FakeMessagesAPI, **options: Any) -> anthropic.types.Message:
    return client(api, **options).messages.create(model=MODEL, max_tokens=64, messages=HELLO)


def statuses(api: FakeMessagesAPI) -> list[tuple[int | None, str | None]]:
    return [(r.status, r.fault) for r in api.message_requests()]


# --------------------------------------------------------------------------- replies


def test_plain_message(fake_api: FakeMessagesAPI) -> None:
    message = ask(fake_api)
    assert message.content[0].type == "text"
    assert message.content[0].text == DEFAULT_REPLY
    assert (message.model, message.stop_reason, message.role) == (MODEL, "end_turn", "assistant")
    usage = message.usage
    assert usage.input_tokens >= 1 and usage.output_tokens >= 1
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
    (record,) = fake_api.requests()
    assert (record.method, record.route, record.status) == ("POST", "/v1/messages", 200)
    assert record.body == {"model": MODEL, "max_tokens": 64, "messages": HELLO}
    assert record.timestamp == pytest.approx(time.time(), abs=5)


def test_stream_sends_the_full_event_sequence(fake_api: FakeMessagesAPI) -> None:
    fake_api.default_reply = "a longer reply so that it arrives in more than one delta"
    events = list(
        client(fake_api).messages.create(model=MODEL, max_tokens=64, messages=HELLO, stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") > 1
    assert events[-2].usage.output_tokens >= 1  # type: ignore[union-attr]
    assert fake_api.requests()[0].body["stream"] is True


def test_stream_helper_assembles_text_and_tool_use(fake_api: FakeMessagesAPI) -> None:
    tool_input = {"subagent_type": "data-engineer", "prompt": "design the orders schema"}
    fake_api.queue_reply("first", {"name": "Agent", "input": tool_input})
    sdk = client(fake_api)
    with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        assert stream.get_final_text() == "first"
    with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        final = stream.get_final_message()
    (block,) = final.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("Agent", tool_input)
    assert block.id.startswith("toolu_")
    assert final.stop_reason == "tool_use"


def test_queue_then_responder_then_default(fake_api: FakeMessagesAPI) -> None:
    fake_api.queue_reply("one", Reply.tool_use("Read", {"file_path": "/x"}))
    assert ask(fake_api).content[0].text == "one"  # type: ignore[union-attr]
    assert ask(fake_api).content[0].type == "tool_use"
    fake_api.respond_with(lambda body: f"echo: {body['messages'][-1]['content']}")
    assert ask(fake_api).content[0].text == "echo: hello"  # type: ignore[union-attr]
    fake_api.respond_with(None)
    assert ask(fake_api).content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]


def test_each_tool_call_gets_a_fresh_id(fake_api: FakeMessagesAPI) -> None:
    fake_api.respond_with(lambda body: Reply.tool_use("Read", {"file_path": "/x"}))
    first, second = ask(fake_api).content[0], ask(fake_api).content[0]
    assert first.type == second.type == "tool_use"
    assert first.id != second.id  # type: ignore[union-attr]


def test_a_failing_responder_is_a_500_and_an_error(fake_api: FakeMessagesAPI) -> None:
    def broken(body: dict[str, Any]) -> str:
        raise KeyError("no such case")

    fake_api.respond_with(broken)
    with pytest.raises(anthropic.InternalServerError):
        ask(fake_api, max_retries=0)
    assert [type(e) for e in fake_api.errors()] == [KeyError]


def test_bad_request_is_400_and_not_retried(fake_api: FakeMessagesAPI) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Field required"):
        client(fake_api).post(
            "/v1/messages", body={"model": MODEL, "messages": HELLO}, cast_to=dict
        )
    assert statuses(fake_api) == [(400, None)]


def test_count_tokens(fake_api: FakeMessagesAPI) -> None:
    text = "x" * 400
    count = client(fake_api).messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": text}]
    )
    assert count.input_tokens == 100
    assert fake_api.requests()[0].route == "/v1/messages/count_tokens"


def test_prompt_cache_writes_then_reads(fake_api: FakeMessagesAPI) -> None:
    system: Any = [
        {
            "type": "text",
            "text": "You are a data engineer. " * 40,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    sdk = client(fake_api)

    def usage(question: str) -> anthropic.types.Usage:
        messages: Any = [{"role": "user", "content": question}]
        return sdk.messages.create(
            model=MODEL, max_tokens=8, system=system, messages=messages
        ).usage

    first, second = usage("first question"), usage("another question")
    assert first.cache_creation_input_tokens == 250 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == 250 and second.cache_creation_input_tokens == 0
    assert first.input_tokens == second.input_tokens == 4  # the uncached question
    uncached = sdk.messages.create(model=MODEL, max_tokens=8, system="plain", messages=HELLO).usage
    assert uncached.cache_creation_input_tokens == uncached.cache_read_input_tokens == 0


# --------------------------------------------------------------------------- batches


def test_batch_goes_from_in_progress_to_ended_with_results(fake_api: FakeMessagesAPI) -> None:
    fake_api.batch_delay = 0.3
    fake_api.respond_with(lambda body: f"answer to {body['messages'][0]['content']}")
    sdk = client(fake_api)
    requests: Any = [
        {
            "custom_id": f"case-{i}",
            "params": {
                "model": MODEL,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": f"q{i}"}],
            },
        }
        for i in range(3)
    ]
    batch = sdk.messages.batches.create(requests=requests)
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3 and batch.results_url is None
    with pytest.raises(anthropic.AnthropicError, match="finished processing"):
        list(sdk.messages.batches.results(batch.id))
    time.sleep(0.35)
    done = sdk.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.ended_at is not None
    assert done.request_counts.succeeded == 3 and done.request_counts.processing == 0
    results = {r.custom_id: r.result for r in sdk.messages.batches.results(batch.id)}
    assert sorted(results) == ["case-0", "case-1", "case-2"]
    assert results["case-1"].type == "succeeded"
    assert results["case-1"].message.content[0].text == "answer to q1"  # type: ignore[union-attr]
    assert [b.id for b in sdk.messages.batches.list()] == [batch.id]


def test_batch_cancel(fake_api: FakeMessagesAPI) -> None:
    fake_api.batch_delay = 60
    sdk = client(fake_api)
    params: Any = {"model": MODEL, "max_tokens": 16, "messages": HELLO}
    batch = sdk.messages.batches.create(requests=[{"custom_id": "only", "params": params}])
    canceled = sdk.messages.batches.cancel(batch.id)
    assert canceled.processing_status == "ended" and canceled.request_counts.canceled == 1
    (result,) = sdk.messages.batches.results(batch.id)
    assert result.result.type == "canceled"


# --------------------------------------------------------------------------- faults


def test_rate_limit_is_retried_after_the_header(fake_api: FakeMessagesAPI) -> None:
    fake_api.inject(Fault.rate_limit(retry_after=0.4), times=1)
    started = time.monotonic()
    assert ask(fake_api).content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]
    assert time.monotonic() - started >= 0.4
    first, second = fake_api.message_requests()
    assert (first.status, first.fault, second.status) == (429, "rate_limit", 200)
    assert second.timestamp - first.timestamp >= 0.4
    assert second.headers["x-stainless-retry-count"] == "1"


@pytest.mark.parametrize(
    ("fault", "status"),
    [(Fault.overloaded(retry_after=0.01), 529), (Fault.server_error(retry_after=0.01), 500)],
)
def test_server_faults_are_retried(fake_api: FakeMessagesAPI, fault: Fault, status: int) -> None:
    fake_api.inject(fault, times=2)
    assert ask(fake_api).content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]
    assert statuses(fake_api) == [(status, fault.kind), (status, fault.kind), (200, None)]


def test_standing_fault_exhausts_retries(fake_api: FakeMessagesAPI) -> None:
    fake_api.set_fault(Fault.overloaded(retry_after=0.01))
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(fake_api, max_retries=1)
    assert caught.value.status_code == 529
    assert statuses(fake_api) == [(529, "overloaded")] * 2
    fake_api.set_fault(None)
    assert ask(fake_api).content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]


def test_dropped_connection_is_retried(fake_api: FakeMessagesAPI) -> None:
    fake_api.inject(Fault.drop())
    assert ask(fake_api).content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]
    assert statuses(fake_api) == [(None, "drop"), (200, None)]
    fake_api.inject(Fault.drop())
    with pytest.raises(anthropic.APIConnectionError):
        ask(fake_api, max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_body_reaches_the_client(fake_api: FakeMessagesAPI, stream: bool) -> None:
    fake_api.inject(Fault.malformed())
    with pytest.raises(json.JSONDecodeError):
        if stream:
            with client(fake_api).messages.stream(model=MODEL, max_tokens=8, messages=HELLO) as s:
                s.get_final_message()
        else:
            ask(fake_api)
    assert statuses(fake_api) == [(200, "malformed")]


def test_latency_fault_delays_only_the_next_requests(fake_api: FakeMessagesAPI) -> None:
    fake_api.inject(Fault.latency(0.3))
    started = time.monotonic()
    ask(fake_api)
    slow = time.monotonic() - started
    started = time.monotonic()
    ask(fake_api)
    assert slow >= 0.3 > time.monotonic() - started


def test_faults_spare_other_paths_by_default(fake_api: FakeMessagesAPI) -> None:
    fake_api.set_fault(Fault.server_error())
    sdk = client(fake_api, max_retries=0)
    assert sdk.messages.count_tokens(model=MODEL, messages=HELLO).input_tokens >= 1
    fake_api.set_fault(Fault.server_error(paths=None))
    with pytest.raises(anthropic.InternalServerError):
        sdk.messages.count_tokens(model=MODEL, messages=HELLO)


# --------------------------------------------------------------------------- concurrency, records


@pytest.mark.parametrize("clients", [8, 32])
def test_delayed_requests_run_concurrently(clients: int) -> None:
    # Every answer waits until all the requests are inside the server at once, so only a server
    # that serves them concurrently answers at all; a serialising one breaks the barrier.
    everyone_in = threading.Barrier(clients, timeout=60)

    def answer(body: dict[str, Any]) -> str:
        everyone_in.wait()
        return DEFAULT_REPLY

    with FakeMessagesAPI(latency=0.01) as api:
        api.respond_with(answer)
        sdk = client(api, max_retries=0)

        def one(i: int) -> str:
            messages: Any = [{"role": "user", "content": f"q{i}"}]
            reply = sdk.messages.create(model=MODEL, max_tokens=8, messages=messages)
            return reply.content[0].text  # type: ignore[union-attr]

        with ThreadPoolExecutor(clients) as pool:
            replies = list(pool.map(one, range(clients)))
        assert replies == [DEFAULT_REPLY] * clients
        assert api.max_in_flight == clients
        assert api.errors() == []


def test_credentials_are_redacted(fake_api: FakeMessagesAPI) -> None:
    sdk = client(fake_api, default_headers={"X-Api-Key": SECRET + "-x"})
    sdk.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
    bearer = anthropic.Anthropic(base_url=fake_api.base_url, auth_token=SECRET + "-bearer",
                                 http_client=shared_http())
    bearer.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
    first, second = fake_api.requests()
    assert first.headers["x-api-key"] == "[redacted]"
    assert second.headers["authorization"] == "[redacted]"
    assert SECRET not in repr(fake_api.requests())


def test_unknown_path_is_404_and_recorded(fake_api: FakeMessagesAPI) -> None:
    response = httpx2.get(fake_api.base_url + "/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert [(r.method, r.route, r.status) for r in fake_api.requests()] == [
        ("GET", "/v1/nothing-here", 404)
    ]


def test_reset_forgets_records_and_script(fake_api: FakeMessagesAPI) -> None:
    fake_api.queue_reply("scripted")
    fake_api.inject(Fault.overloaded(), times=5)
    fake_api.reset()
    assert ask(fake_api, max_retries=0).content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]
    assert len(fake_api.requests()) == 1


def test_standalone_server_prints_its_url() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "support.fake_api", "--port", "0", "--latency", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        sdk = anthropic.Anthropic(base_url=base_url, api_key=SECRET, max_retries=0,
                                  http_client=shared_http())
        reply = sdk.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
        assert reply.content[0].text == DEFAULT_REPLY  # type: ignore[union-attr]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
