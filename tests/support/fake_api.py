"""A fake Anthropic Messages API on 127.0.0.1, so tests and benchmarks run the real clients.

The real `anthropic` SDK and the real Claude Code CLI talk HTTP to it exactly as they would to
the service: plain and streamed messages, token counting, Message Batches, simulated prompt
caching and injected faults. Stdlib only, one thread per connection, so delayed requests overlap
instead of queueing. Every request is recorded, with credentials redacted, for tests to inspect.

    with FakeMessagesAPI(latency=0.2) as api:
        api.queue_reply({"name": "Agent", "input": {"subagent_type": "data-engineer"}})
        client = anthropic.Anthropic(base_url=api.base_url, api_key="test")
        ...
        api.requests()[0].body["system"]

Standalone, from tests/: `python -m support.fake_api --port 8765 --latency 0.2`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

DEFAULT_REPLY = "Hello from the fake Messages API."
REDACTED = "[redacted]"
SECRET_HEADERS = frozenset({"x-api-key", "authorization"})
MESSAGES_PATH = "/v1/messages"

JSON: TypeAlias = Any
"""A parsed JSON value; request bodies are whatever the client sent."""


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """What the fake model answers: content blocks and a stop reason."""

    content: tuple[Mapping[str, JSON], ...]
    stop_reason: str = "end_turn"

    @classmethod
    def text(cls, text: str) -> Reply:
        return cls(({"type": "text", "text": text},))

    @classmethod
    def tool_use(cls, name: str, input: Mapping[str, JSON], id: str | None = None) -> Reply:
        """A tool call; without `id`, each answer gets a fresh `toolu_...` id."""
        block: dict[str, JSON] = {"type": "tool_use", "name": name, "input": input}
        if id:
            block["id"] = id
        return cls((block,), stop_reason="tool_use")

    @classmethod
    def of(cls, value: ReplyLike) -> Reply:
        """Coerce the shorthands: a string is text, `{"name", "input"}` is a tool call, a
        `{"type": ...}` mapping is a content block, a sequence is several blocks."""
        if isinstance(value, Reply):
            return value
        if isinstance(value, str):
            return cls.text(value)
        if isinstance(value, Mapping):
            return cls._from_blocks([value])
        return cls._from_blocks(list(value))

    @classmethod
    def _from_blocks(cls, items: Sequence[str | Mapping[str, JSON]]) -> Reply:
        blocks: list[Mapping[str, JSON]] = []
        for item in items:
            if isinstance(item, str):
                blocks.append({"type": "text", "text": item})
            elif "type" in item:
                blocks.append(item)
            elif "name" in item:
                blocks.extend(cls.tool_use(str(item["name"]), item.get("input", {})).content)
            else:
                raise ValueError(f"cannot read a reply block from {item!r}")
        uses_tool = any(b.get("type") == "tool_use" for b in blocks)
        return cls(tuple(blocks), stop_reason="tool_use" if uses_tool else "end_turn")


ReplyLike: TypeAlias = Reply | str | Mapping[str, JSON] | Sequence[str | Mapping[str, JSON]]
Responder: TypeAlias = Callable[[dict[str, JSON]], ReplyLike]
"""Given a request body, return the reply; set with `FakeMessagesAPI.respond_with`."""


def _with_tool_id(block: Mapping[str, JSON]) -> dict[str, JSON]:
    if block.get("type") == "tool_use" and not block.get("id"):
        return {**block, "id": _new_id("toolu_")}
    return dict(block)


# --------------------------------------------------------------------------- faults

FaultKind: TypeAlias = Literal[
    "latency", "rate_limit", "overloaded", "server_error", "drop", "malformed"
]


@dataclass(frozen=True)
class Fault:
    """A failure to inject. `paths` limits it to those request paths (None: every path);
    by default only message creation fails, so token counting and batches stay healthy."""

    kind: FaultKind
    seconds: float = 0.0
    """Extra delay for `latency`; the `retry-after` header's value for the HTTP errors
    (always sent for `rate_limit`, only when above 0 for `overloaded` and `server_error`)."""
    paths: frozenset[str] | None = frozenset({MESSAGES_PATH})

    @classmethod
    def latency(cls, seconds: float, paths: Collection[str] | None = (MESSAGES_PATH,)) -> Fault:
        return cls("latency", seconds, _paths(paths))

    @classmethod
    def rate_limit(
        cls, retry_after: float = 0.0, paths: Collection[str] | None = (MESSAGES_PATH,)
    ) -> Fault:
        """429 with a `retry-after` header (the SDK waits exactly that long before retrying)."""
        return cls("rate_limit", retry_after, _paths(paths))

    @classmethod
    def overloaded(
        cls, retry_after: float = 0.0, paths: Collection[str] | None = (MESSAGES_PATH,)
    ) -> Fault:
        """529 overloaded_error; `retry-after` only when given (clients then back off less)."""
        return cls("overloaded", retry_after, _paths(paths))

    @classmethod
    def server_error(
        cls, retry_after: float = 0.0, paths: Collection[str] | None = (MESSAGES_PATH,)
    ) -> Fault:
        """500 api_error; `retry-after` only when given."""
        return cls("server_error", retry_after, _paths(paths))

    @classmethod
    def drop(cls, paths: Collection[str] | None = (MESSAGES_PATH,)) -> Fault:
        """Read the request, then close the socket without answering."""
        return cls("drop", 0.0, _paths(paths))

    @classmethod
    def malformed(cls, paths: Collection[str] | None = (MESSAGES_PATH,)) -> Fault:
        """200 whose body (or event stream) is cut off mid-JSON."""
        return cls("malformed", 0.0, _paths(paths))

    def applies_to(self, path: str) -> bool:
        return self.paths is None or path in self.paths


def _paths(paths: Collection[str] | None) -> frozenset[str] | None:
    return None if paths is None else frozenset(paths)


@dataclass
class _Pending:
    """An injected fault and how many more requests it hits."""

    fault: Fault
    remaining: int


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it. `path` keeps the query string; `route` drops it.
    `status` is the HTTP status answered (None: still in flight, or the connection was dropped;
    `fault` tells which)."""

    method: str
    path: str
    headers: dict[str, str]
    body: JSON
    timestamp: float
    status: int | None = None
    fault: FaultKind | None = None

    @property
    def route(self) -> str:
        return urlsplit(self.path).path


# --------------------------------------------------------------------------- token estimates


def estimate_tokens(value: JSON) -> int:
    """Roughly four characters a token: text counts its characters, anything else its JSON."""
    if isinstance(value, str):
        chars = len(value)
    elif isinstance(value, Mapping) and value.get("type") == "text" and "text" in value:
        chars = len(str(value["text"]))
    else:
        chars = len(json.dumps(value, sort_keys=True, ensure_ascii=False))
    return math.ceil(chars / 4)


def _prompt_items(body: Mapping[str, JSON]) -> Iterator[JSON]:
    """The request's cacheable prefix order: tools, then system, then message content blocks."""
    yield from body.get("tools") or []
    system = body.get("system")
    if isinstance(system, str):
        yield system
    elif isinstance(system, list):
        yield from system
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else message
        if isinstance(content, list):
            yield from content
        else:
            yield content


def count_input_tokens(body: Mapping[str, JSON]) -> int:
    return max(1, sum(estimate_tokens(_without_cache_control(i)) for i in _prompt_items(body)))


def _without_cache_control(item: JSON) -> JSON:
    if isinstance(item, Mapping) and "cache_control" in item:
        return {k: v for k, v in item.items() if k != "cache_control"}
    return item


@dataclass(frozen=True)
class _Breakpoint:
    key: str
    tokens: int
    ttl: str


class PromptCache:
    """Simulates prompt caching: each block marked `cache_control` ends a prefix; a prefix seen
    before is read from cache, the rest up to the last mark is written. Keyed by model too."""

    def __init__(self, min_tokens: int = 0) -> None:
        self._min_tokens = min_tokens
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def usage(self, body: Mapping[str, JSON]) -> dict[str, JSON]:
        """Input-side usage for this request, remembering its prefixes for the next one."""
        digest = hashlib.sha256(str(body.get("model", "")).encode())
        total = 0
        marks: list[_Breakpoint] = []
        for item in _prompt_items(body):
            plain = _without_cache_control(item)
            digest.update(json.dumps(plain, sort_keys=True).encode())
            total += estimate_tokens(plain)
            control = item.get("cache_control") if isinstance(item, Mapping) else None
            if isinstance(control, Mapping) and total >= self._min_tokens:
                ttl = str(control.get("ttl", "5m"))
                marks.append(_Breakpoint(digest.copy().hexdigest(), total, ttl))
        total = max(total, 1)
        with self._lock:
            hits = [m for m in marks if m.key in self._seen]
            self._seen.update(m.key for m in marks)
        read = max((m.tokens for m in hits), default=0)
        written = max(marks[-1].tokens - read, 0) if marks and marks[-1] not in hits else 0
        ttl = marks[-1].ttl if marks else "5m"
        return {
            "input_tokens": total - read - written,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written if ttl != "1h" else 0,
                "ephemeral_1h_input_tokens": written if ttl == "1h" else 0,
            },
        }

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


# --------------------------------------------------------------------------- message building


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def build_message(
    body: Mapping[str, JSON], reply: Reply, input_usage: dict[str, JSON]
) -> dict[str, JSON]:
    """A complete Messages API response for `reply`."""
    output_tokens = max(1, sum(estimate_tokens(dict(b)) for b in reply.content))
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-fake"),
        "content": [_with_tool_id(b) for b in reply.content],
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": {**input_usage, "output_tokens": output_tokens, "service_tier": "standard"},
    }


def sse_events(message: Mapping[str, JSON]) -> Iterator[tuple[str, dict[str, JSON]]]:
    """The event stream the real API sends for `message`, as (event name, data) pairs."""
    usage = dict(message["usage"])
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block.get("type") == "tool_use":
            opening = {**block, "input": {}}
            partial = json.dumps(block.get("input", {}))
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _chunks(partial)]
        elif block.get("type") == "text":
            opening = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _chunks(block["text"])]
        else:
            opening, deltas = dict(block), []
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": opening,
            },
        )
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    final_usage = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": final_usage,
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _chunks(text: str, size: int = 24) -> list[str]:
    """Split at word boundaries into a few pieces, the way tokens trickle in."""
    if not text:
        return []
    pieces = re.findall(r"\S+\s*|\s+", text)
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) + len(piece) <= size:
            out[-1] += piece
        else:
            out.append(piece)
    return out


def error_body(kind: str, message: str) -> dict[str, JSON]:
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": _new_id("req_"),
    }


# --------------------------------------------------------------------------- batches


@dataclass
class _Batch:
    id: str
    created: float
    ready_at: float
    results: list[dict[str, JSON]]
    canceled_at: float | None = None

    def describe(self, base_url: str, now: float) -> dict[str, JSON]:
        ended = now >= self.ready_at or self.canceled_at is not None
        count = len(self.results)
        counts = {"processing": count, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            counts["processing"] = 0
            for result in self.results:
                counts[str(result["result"]["type"])] += 1
        ended_at = (self.canceled_at or self.ready_at) if ended else None
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": _rfc3339(self.created),
            "expires_at": _rfc3339(self.created + 24 * 3600),
            "ended_at": _rfc3339(ended_at) if ended_at is not None else None,
            "cancel_initiated_at": _rfc3339(self.canceled_at) if self.canceled_at else None,
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- the server


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    events: Sequence[tuple[str, dict[str, JSON] | str]] | None = None
    """When set, the body is streamed as server-sent events instead (a str data is sent raw)."""
    drop: bool = False


def _json_response(status: int, payload: JSON, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(payload).encode(), headers=headers or {})


class FakeMessagesAPI:
    """The fake service. Start it with `with` (or `start()`/`stop()`); `port=0` picks a free port.

    Replies come from the queue (`queue_reply`), else the responder (`respond_with`), else the
    default text. Faults come from the next-N queue (`inject`), else the standing fault
    (`set_fault`). `latency` delays every request; `batch_delay` is how long a batch stays
    `in_progress`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        default_reply: str = DEFAULT_REPLY,
        batch_delay: float = 0.0,
        cache_min_tokens: int = 0,
    ) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._latency = latency
        self._default_reply = default_reply
        self._batch_delay = batch_delay
        self._replies: deque[Reply] = deque()
        self._responder: Responder | None = None
        self._standing_fault: Fault | None = None
        self._next_faults: list[_Pending] = []
        self._records: list[RecordedRequest] = []
        self._errors: list[Exception] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._batches: dict[str, _Batch] = {}
        self.cache = PromptCache(cache_min_tokens)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeMessagesAPI:
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _Handler)
        server.api = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake API is not running; call start() or use it in a with")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # -- programming it

    @property
    def latency(self) -> float:
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latency = seconds

    @property
    def batch_delay(self) -> float:
        with self._lock:
            return self._batch_delay

    @batch_delay.setter
    def batch_delay(self, seconds: float) -> None:
        with self._lock:
            self._batch_delay = seconds

    @property
    def default_reply(self) -> str:
        with self._lock:
            return self._default_reply

    @default_reply.setter
    def default_reply(self, text: str) -> None:
        with self._lock:
            self._default_reply = text

    def queue_reply(self, *replies: ReplyLike) -> None:
        """Answer the next message requests with these, in order, before anything else."""
        with self._lock:
            self._replies.extend(Reply.of(r) for r in replies)

    def respond_with(self, responder: Responder | None) -> None:
        """Compute replies from the request body once the queue is empty (None: default text)."""
        with self._lock:
            self._responder = responder

    def set_fault(self, fault: Fault | None) -> None:
        """Fail every matching request this way until cleared with None."""
        with self._lock:
            self._standing_fault = fault

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Fail the next `times` matching requests this way (queued after earlier injections)."""
        with self._lock:
            if times > 0:
                self._next_faults.append(_Pending(fault, times))

    def reset(self) -> None:
        """Forget records, replies, faults, batches and the prompt cache; keep settings."""
        with self._lock:
            self._records.clear()
            self._errors.clear()
            self._replies.clear()
            self._responder = None
            self._standing_fault = None
            self._next_faults.clear()
            self._batches.clear()
            self._max_in_flight = self._in_flight
        self.cache.clear()

    # -- inspecting it

    def requests(self, route: str | None = None) -> list[RecordedRequest]:
        """Recorded requests in arrival order, optionally only those to one path (no query)."""
        with self._lock:
            records = list(self._records)
        return [r for r in records if route is None or r.route == route]

    def message_requests(self) -> list[RecordedRequest]:
        """The POST /v1/messages requests: what the model was asked."""
        return [r for r in self.requests(MESSAGES_PATH) if r.method == "POST"]

    def errors(self) -> list[Exception]:
        """Exceptions raised while serving: a responder's (answered with 500) or the server's own
        (the connection closed). Clients hanging up are not errors."""
        with self._lock:
            return list(self._errors)

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    # -- used by the handler

    def _record_error(self, err: Exception) -> None:
        with self._lock:
            self._errors.append(err)

    def _begin(self, record: RecordedRequest) -> None:
        with self._lock:
            self._records.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _answered(self, record: RecordedRequest, status: int | None, fault: Fault | None) -> None:
        """Fill in the outcome before the client can see it, so tests never race the record."""
        kind = fault.kind if fault else None
        with self._lock:
            for i in range(len(self._records) - 1, -1, -1):
                if self._records[i] is record:
                    self._records[i] = replace(record, status=status, fault=kind)
                    return

    def _end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for pending in self._next_faults:
                if pending.fault.applies_to(route):
                    pending.remaining -= 1
                    if pending.remaining <= 0:
                        self._next_faults.remove(pending)
                    return pending.fault
            standing = self._standing_fault
        return standing if standing is not None and standing.applies_to(route) else None

    def _next_reply(self, body: dict[str, JSON]) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
            responder, default = self._responder, self._default_reply
        return Reply.of(responder(body)) if responder is not None else Reply.text(default)

    def _message_for(self, body: dict[str, JSON]) -> dict[str, JSON]:
        return build_message(body, self._next_reply(body), self.cache.usage(body))

    def _handle_safely(self, method: str, route: str, body: JSON) -> _Response:
        """A failing responder becomes a 500 the client sees and an entry in `errors()`."""
        try:
            return self._handle(method, route, body)
        except Exception as err:
            self._record_error(err)
            return _json_response(500, error_body("api_error", f"fake API error: {err!r}"))

    def _handle(self, method: str, route: str, body: JSON) -> _Response:
        if method == "POST" and route == MESSAGES_PATH:
            return self._create_message(body)
        if method == "POST" and route == MESSAGES_PATH + "/count_tokens":
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return _json_response(
                    400, error_body("invalid_request_error", "messages: Field required")
                )
            return _json_response(200, {"input_tokens": count_input_tokens(body)})
        if route == MESSAGES_PATH + "/batches":
            if method == "POST":
                return self._create_batch(body)
            if method == "GET":
                return self._list_batches()
        if route == "/api/hello":  # Claude Code's reachability probe (HEAD)
            return _json_response(200, {"message": "hello"})
        match = re.fullmatch(r"/v1/messages/batches/([^/]+)(/results|/cancel)?", route)
        if match:
            return self._batch_route(method, match.group(1), match.group(2) or "")
        return _json_response(404, error_body("not_found_error", f"{method} {route} not found"))

    def _create_message(self, body: JSON) -> _Response:
        problem = _check_message_body(body)
        if problem:
            return _json_response(400, error_body("invalid_request_error", problem))
        message = self._message_for(body)
        if body.get("stream"):
            return _Response(
                200, content_type="text/event-stream", events=list(sse_events(message))
            )
        return _json_response(200, message)

    def _create_batch(self, body: JSON) -> _Response:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return _json_response(
                400, error_body("invalid_request_error", "requests: Field required")
            )
        results = []
        for item in requests:
            params = item.get("params") if isinstance(item, dict) else None
            problem = _check_message_body(params) or (
                ""
                if isinstance(item, dict) and item.get("custom_id")
                else "custom_id: Field required"
            )
            if problem:
                return _json_response(400, error_body("invalid_request_error", problem))
            assert isinstance(params, dict)
            message = self._message_for({**params, "stream": False})
            results.append(
                {
                    "custom_id": item["custom_id"],
                    "result": {"type": "succeeded", "message": message},
                }
            )
        now = time.time()
        batch = _Batch(_new_id("msgbatch_"), now, now + self.batch_delay, results)
        with self._lock:
            self._batches[batch.id] = batch
        return _json_response(200, batch.describe(self.base_url, now))

    def _list_batches(self) -> _Response:
        with self._lock:
            batches = list(self._batches.values())
        now = time.time()
        data = [b.describe(self.base_url, now) for b in reversed(batches)]
        return _json_response(
            200,
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    def _batch_route(self, method: str, batch_id: str, tail: str) -> _Response:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            return _json_response(404, error_body("not_found_error", f"batch {batch_id} not found"))
        now = time.time()
        if tail == "/cancel" and method == "POST":
            with self._lock:
                if now < batch.ready_at and batch.canceled_at is None:
                    batch.canceled_at = now
                    for result in batch.results:
                        result["result"] = {"type": "canceled"}
            return _json_response(200, batch.describe(self.base_url, now))
        if tail == "/results" and method == "GET":
            if batch.describe(self.base_url, now)["processing_status"] != "ended":
                return _json_response(
                    400,
                    error_body("invalid_request_error", f"batch {batch_id} is still processing"),
                )
            lines = "".join(json.dumps(r) + "\n" for r in batch.results)
            return _Response(200, lines.encode(), content_type="application/binary")
        if tail == "" and method == "GET":
            return _json_response(200, batch.describe(self.base_url, now))
        return _json_response(405, error_body("invalid_request_error", f"{method} not allowed"))


def _check_message_body(body: JSON) -> str:
    """The first missing required field, as the real API words it; empty when fine."""
    if not isinstance(body, dict):
        return "body: expected a JSON object"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    if not isinstance(body["messages"], list):
        return "messages: Input should be a valid list"
    return ""


def _fault_response(fault: Fault, stream: bool) -> _Response:
    retry_after = {"retry-after": f"{fault.seconds:g}"} if fault.seconds > 0 else {}
    if fault.kind == "rate_limit":
        return _json_response(
            429,
            error_body("rate_limit_error", "Number of request tokens has exceeded your rate limit"),
            {"retry-after": f"{fault.seconds:g}"},
        )
    if fault.kind == "overloaded":
        return _json_response(529, error_body("overloaded_error", "Overloaded"), retry_after)
    if fault.kind == "server_error":
        return _json_response(500, error_body("api_error", "Internal server error"), retry_after)
    if fault.kind == "drop":
        return _Response(0, drop=True)
    # malformed: a 200 whose JSON is cut off; a stream keeps its framing, its data does not parse
    if stream:
        events = [("message_start", '{"type": "message_start", "message": {"id": "msg_cu')]
        return _Response(200, content_type="text/event-stream", events=events)
    return _Response(200, b'{"id": "msg_malformed", "type": "message", "content": [{"ty')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # bursts of concurrent clients must not be refused
    api: FakeMessagesAPI

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up is normal; anything else goes to `errors()`, not to stderr."""
        err = sys.exc_info()[1]
        if isinstance(err, Exception) and not isinstance(err, ConnectionError):
            self.api._record_error(err)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK and every answer arrives about 40 ms late.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the records are the log."""

    def _serve(self) -> None:
        api = self.server.api
        received = time.time()
        raw = self._read_body()
        try:
            body: JSON = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        headers.update({k: REDACTED for k in SECRET_HEADERS if k in headers})
        record = RecordedRequest(self.command, self.path, headers, body, received)
        api._begin(record)
        route = urlsplit(self.path).path
        try:
            fault = api._take_fault(route)
            delay = api.latency + (fault.seconds if fault and fault.kind == "latency" else 0.0)
            if delay > 0:
                time.sleep(delay)
            if raw and body is None:
                response = _json_response(
                    400, error_body("invalid_request_error", "invalid JSON body")
                )
            elif fault is not None and fault.kind != "latency":
                stream = isinstance(body, dict) and bool(body.get("stream"))
                response = _fault_response(fault, stream)
            else:
                response = api._handle_safely(self.command, route, body)
            api._answered(record, None if response.drop else response.status, fault)
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            api._end()

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, response: _Response) -> None:
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        self.send_header("request-id", _new_id("req_"))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-type", response.content_type)
        if response.events is None:
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            return
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for name, data in response.events:
            text = data if isinstance(data, str) else json.dumps(data)
            self._write_chunk(f"event: {name}\ndata: {text}\n\n".encode())
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


# --------------------------------------------------------------------------- standalone


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until killed; print the base URL on one line so a caller can read it."""
    parser = argparse.ArgumentParser(
        prog="python -m support.fake_api", description="Serve a fake Messages API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--reply", default=DEFAULT_REPLY, help="the text every message gets")
    parser.add_argument(
        "--batch-delay", type=float, default=0.0, help="seconds a batch stays in progress"
    )
    args = parser.parse_args(argv)
    api = FakeMessagesAPI(
        host=args.host,
        port=args.port,
        latency=args.latency,
        default_reply=args.reply,
        batch_delay=args.batch_delay,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with api:
        sys.stdout.write(api.base_url + "\n")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
