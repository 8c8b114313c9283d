"""One sender for every request a live run makes, answers and judge votes alike: concurrent,
throttled, retried, budgeted, and with the key kept out of everything it hands back.

`Sender.send(items, keep)` sends each work item and hands `keep` one result line per item
(`ok`, `error` or `budget_exceeded`); what happens to the line (the run folder's log, the answer
stores, the judge's verdicts) is the caller's business. One `Sender` serves a whole run, so the
answers and then the votes share one budget.

- Concurrency: `jobs` workers, so the server sees exactly `jobs` requests in flight. When the
  first item's system prompt is marked for caching it is sent alone first: the cache entry
  exists only once a response has started. A 429 or 529 pauses every worker for `retry-after`
  (or an exponential back-off) and halves the concurrency, which then grows back by one per
  `limit` successes. Other transient failures (500, dropped connection, malformed body,
  timeout) are retried after a back-off. Retries are bounded; the last error is kept.
- Budget: each attempt is sent only when what has been spent, plus the worst case of the
  attempts in flight, plus its own worst case, stays within `max_usd`; the first that does not
  fit stops the sending and every item left is `budget_exceeded`. An attempt that fails after
  the API may have run the model (a 200 whose body does not parse, a 5xx other than 529, a
  timeout or a connection lost after sending) is counted at its worst case: the full input at
  the dearest rate plus `max_tokens` of output. Only a refusal before any work (a 4xx, a 529, a
  connection never made) is free.
- The key: read by the caller, checked before anything is sent, never written: every error
  text and answer text is passed through `redact` first.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError, Problem
from .budget import Budget, cache_ttl, worst_case_usd
from .prices import Prices, Usage
from .request import WorkItem
from .run_folder import now_iso

if TYPE_CHECKING:
    import anthropic

REDACTED = "[redacted]"
NO_USAGE = Usage()
Keep = Callable[[WorkItem, dict[str, Any], Mapping[str, Any] | None], None]
"""Where a result line goes: `(item, line, usage as the API reported it, or None)`."""
Progress = Callable[[Mapping[str, Any]], None]
API_KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"


def api_key_from_env() -> str | None:
    """The key, from the environment only; it is never written anywhere."""
    return os.environ.get(API_KEY_ENV) or None


def base_url_from_env() -> str | None:
    return os.environ.get(BASE_URL_ENV) or None


REDACT_MIN = 8


def redact(text: str, secret: str | None) -> str:
    """`text` without the secret or any piece of it REDACT_MIN characters or longer: a server
    that echoes a cut key (its first 16 characters, say) must not put that piece on disk.

    Every REDACT_MIN-character window of the text is looked up among the secret's windows; a hit
    is widened while it is still part of the secret, then replaced."""
    if not secret or len(secret) < REDACT_MIN:
        return text.replace(secret, REDACTED) if secret and len(secret) >= 4 else text
    windows = {secret[i:i + REDACT_MIN] for i in range(len(secret) - REDACT_MIN + 1)}
    out: list[str] = []
    start = i = 0
    while i <= len(text) - REDACT_MIN:
        if text[i:i + REDACT_MIN] not in windows:
            i += 1
            continue
        end = i + REDACT_MIN
        while end < len(text) and text[i:end + 1] in secret:
            end += 1
        out += [text[start:i], REDACTED]
        start = i = end
    out.append(text[start:])
    return "".join(out)


@dataclass(frozen=True)
class SendOptions:
    """How to send: concurrency, retries, timeout, budget, and where answers may come from."""

    jobs: int = 4
    timeout: float = 120.0
    max_retries: int = 4
    max_usd: float | None = None
    warm_up: bool = True
    replay: bool = False
    use_stored: bool = True
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if self.jobs < 1:
            problems.append(Problem("must be at least 1", field="--jobs"))
        if self.timeout <= 0:
            problems.append(Problem("must be above 0 seconds", field="--timeout"))
        if self.max_retries < 0:
            problems.append(Problem("must be 0 or more", field="--max-retries"))
        if self.max_usd is not None and self.max_usd < 0:
            problems.append(Problem("must be 0 or more", field="--max-usd"))
        if problems:
            raise InputError(problems)


@dataclass
class SendCounts:
    """What one `send` (or one answer pass) did; the report sums the run folder instead."""

    skipped: int = 0
    from_store: int = 0
    sent: int = 0
    attempts: int = 0
    ok: int = 0
    errors: int = 0
    budget_exceeded: int = 0
    retries_throttled: int = 0
    retries_other: int = 0
    spent_usd: float = 0.0
    seconds: float = 0.0
    error_texts: list[str] = field(default_factory=list)


def require_key(api_key: str | None, count: int, what: str, fix: str) -> str:
    """The key, or one line saying how many requests need it and how to do without."""
    if not api_key:
        raise InputError([Problem(f"ANTHROPIC_API_KEY is not set and {count} {what}; set the "
                                  f"key, or {fix}")])
    return api_key


def result_line(item: WorkItem, status: str, source: str, *, text: str | None = None,
                stop_reason: str | None = None, model: str = "", usage: Usage = NO_USAGE,
                cost: float = 0.0, latency: float = 0.0, attempts: int = 0,
                error: str | None = None, message_id: str | None = None) -> dict[str, Any]:
    """One line of `results.jsonl` (the run folder's format, version 1)."""
    return {"v": 1, "key": item.key, "case_id": item.case_id, "arm": item.arm,
            "repeat": item.repeat, "status": status, "source": source, "text": text,
            "stop_reason": stop_reason, "model": model, "usage": usage.to_json(),
            "cost_usd": round(cost, 8), "latency_s": round(latency, 4), "attempts": attempts,
            "error": error, "message_id": message_id, "at": now_iso()}


class AdaptiveLimit:
    """At most `limit` requests at once; `throttle` pauses everyone and halves the limit, and
    each run of `limit` successes raises it by one, back up to `ceiling`."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self.in_flight = 0
        self.resume_at = 0.0
        self._successes = 0
        self._changed = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._changed:
            while True:
                wait = self.resume_at - time.monotonic()
                if wait > 0:
                    self._changed.release()
                    try:
                        await asyncio.sleep(wait)
                    finally:
                        await self._changed.acquire()
                    continue
                if self.in_flight < self.limit:
                    self.in_flight += 1
                    return
                await self._changed.wait()

    async def release(self, *, success: bool) -> None:
        async with self._changed:
            self.in_flight -= 1
            if success and self.limit < self.ceiling:
                self._successes += 1
                if self._successes >= self.limit:
                    self.limit += 1
                    self._successes = 0
            self._changed.notify_all()

    async def throttle(self, delay: float) -> None:
        async with self._changed:
            self.resume_at = max(self.resume_at, time.monotonic() + delay)
            self.limit = max(1, self.limit // 2)
            self._successes = 0
            self._changed.notify_all()


class Sender:
    """Sends work items; one instance per run, so every `send` shares its budget."""

    def __init__(self, options: SendOptions, prices: Prices, api_key: str | None,
                 base_url: str | None = None, *, spent_usd: float = 0.0) -> None:
        self.options = options
        self.prices = prices
        self.api_key = api_key
        self.base_url = base_url
        self.budget = Budget(options.max_usd, self._worst, spent=spent_usd)

    def _worst(self, item: WorkItem) -> float:
        price = self.prices.find(str(item.request.get("model", "")))
        return worst_case_usd(item, price) if price else 0.0

    def send(self, items: Sequence[WorkItem], keep: Keep, *, what: str, fix: str,
             progress: Progress | None = None) -> SendCounts:
        """Send `items`, handing each one's result line to `keep`. Without a key, or with a
        budget and a model the price table lacks, nothing is sent: one clear line instead."""
        counts = SendCounts()
        if not items:
            return counts
        require_key(self.api_key, len(items), what, fix)
        if self.options.max_usd is not None:
            for model in sorted({str(i.request.get("model", "")) for i in items}):
                self.prices.require(model)
        started = time.perf_counter()
        asyncio.run(_Flight(self, keep, counts, progress).send_all(items))
        counts.seconds = time.perf_counter() - started
        return counts


class _Flight:
    """One `send` on the event loop: a client, the workers, the adaptive limit."""

    def __init__(self, sender: Sender, keep: Keep, counts: SendCounts,
                 progress: Progress | None) -> None:
        self.options = sender.options
        self.prices = sender.prices
        self.budget = sender.budget
        self.api_key = sender.api_key or ""
        self.base_url = sender.base_url
        self.keep = keep
        self.counts = counts
        self.progress = progress
        self.limit = AdaptiveLimit(self.options.jobs)

    async def send_all(self, items: Sequence[WorkItem]) -> None:
        import anthropic  # slow to import: only here, where a live call is made

        queue = deque(items)
        client = anthropic.AsyncAnthropic(api_key=self.api_key, base_url=self.base_url,
                                          max_retries=0, timeout=self.options.timeout)
        try:
            if self.options.warm_up and queue[0].cacheable:
                await self._one(client, queue.popleft())
            workers = [self._worker(client, queue)
                       for _ in range(min(self.options.jobs, len(queue)))]
            await asyncio.gather(*workers)
        finally:
            await client.close()
        while queue:
            self._finish(queue.popleft(), "budget_exceeded", "none")

    async def _worker(self, client: anthropic.AsyncAnthropic, queue: deque[WorkItem]) -> None:
        while queue and not self.budget.stopped:
            await self._one(client, queue.popleft(), queue)

    async def _one(self, client: anthropic.AsyncAnthropic, item: WorkItem,
                   queue: deque[WorkItem] | None = None) -> None:
        """Send one item, retrying; each attempt is reserved against the budget first."""
        import anthropic

        started = time.perf_counter()
        attempts = 0
        charged = 0.0  # the worst case of attempts that may have been billed without an answer
        last_error = ""
        while attempts <= self.options.max_retries:
            reserved = self.budget.reserve(item)
            if reserved is None:
                if attempts == 0 and queue is not None:
                    queue.appendleft(item)  # left for the loop that marks the rest unsent
                else:
                    self._finish(item, "budget_exceeded", "api" if attempts else "none",
                                 error=last_error or None, attempts=attempts, cost=charged,
                                 latency=time.perf_counter() - started)
                return
            if attempts == 0:
                self.counts.sent += 1
            attempts += 1
            self.counts.attempts += 1
            await self.limit.acquire()
            try:
                message = await client.messages.create(**item.request,
                                                       timeout=self.options.timeout)
            except Exception as err:
                await self.limit.release(success=False)
                billed = reserved if _may_be_billed(err, anthropic) else 0.0
                self.budget.settle(reserved, billed)
                charged += billed
                last_error = redact(describe_error(err), self.api_key)
                if not await self._wait_to_retry(err, attempts, anthropic):
                    break
                continue
            await self.limit.release(success=True)
            self._answered(item, message, reserved, charged, attempts, started)
            return
        self._finish(item, "error", "api", error=last_error, attempts=attempts, cost=charged,
                     latency=time.perf_counter() - started)

    async def _wait_to_retry(self, err: Exception, attempts: int, anthropic: Any) -> bool:
        """Wait as the failure asks (pausing every worker on a 429 or 529); False when the
        failure is final or the retries are spent."""
        retry, throttled, delay = self._classify(err, attempts, anthropic)
        if not retry or attempts > self.options.max_retries:
            return False
        if throttled:
            self.counts.retries_throttled += 1
            await self.limit.throttle(delay)
        else:
            self.counts.retries_other += 1
            await asyncio.sleep(delay)
        return True

    def _answered(self, item: WorkItem, message: Any, reserved: float, charged: float,
                  attempts: int, started: float) -> None:
        usage_api = message.usage.model_dump(mode="json", exclude_none=True)
        usage = Usage.from_api(usage_api, cache_ttl(item.request))
        price = self.prices.find(str(item.request.get("model", "")))
        cost = self.prices.cost(price, usage) if price else 0.0
        self.budget.settle(reserved, cost)
        text = "".join(block.text for block in message.content if block.type == "text")
        line = result_line(item, "ok", "api", text=redact(text, self.api_key),
                           stop_reason=message.stop_reason, model=message.model, usage=usage,
                           cost=cost + charged, latency=time.perf_counter() - started,
                           attempts=attempts, message_id=message.id)
        self.counts.ok += 1
        self.counts.spent_usd += cost + charged
        self.keep(item, line, usage_api)
        if self.progress:
            self.progress(line)

    def _finish(self, item: WorkItem, status: str, source: str, *, error: str | None = None,
                attempts: int = 0, latency: float = 0.0, cost: float = 0.0) -> None:
        line = result_line(item, status, source, error=error, attempts=attempts,
                           latency=latency, cost=cost)
        self.counts.spent_usd += cost
        if status == "error":
            self.counts.errors += 1
            self.counts.error_texts.append(error or status)
        else:
            self.counts.budget_exceeded += 1
        self.keep(item, line, None)
        if self.progress:
            self.progress(line)

    def _classify(self, err: Exception, attempt: int,
                  anthropic: Any) -> tuple[bool, bool, float]:
        """(retry?, throttled?, seconds to wait). `retry-after` wins over the back-off."""
        backoff = min(self.options.backoff_max,
                      self.options.backoff_base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        if isinstance(err, anthropic.APIStatusError):
            after = _retry_after(err.response.headers)
            status = err.status_code
            if status in (429, 529):
                return True, True, after if after is not None else backoff
            if status >= 500 or status in (408, 409):
                return True, False, after if after is not None else backoff
            return False, False, 0.0
        if isinstance(err, (anthropic.APIConnectionError, ValueError)):
            return True, False, backoff  # timeouts, dropped connections, malformed bodies
        return False, False, 0.0



def _may_be_billed(err: Exception, anthropic: Any) -> bool:
    """Could the API have run the model on this failed attempt? Only a refusal before any work
    is free: a 4xx, a 529 (overloaded), or a connection that was never made."""
    if isinstance(err, anthropic.APIStatusError):
        return bool(err.status_code >= 500 and err.status_code != 529)
    if isinstance(err, anthropic.APIConnectionError):
        return not _never_connected(err)
    return True  # a 200 whose body did not parse, or anything else after sending


def _never_connected(err: BaseException) -> bool:
    """Whether the cause chain says the request never left (refused, unresolved, connect
    timeout); the transport's own classes are matched by name, as its package may vary."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (ConnectionRefusedError, socket.gaierror)):
            return True
        if type(seen).__name__ in ("ConnectError", "ConnectTimeout"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def describe_error(err: Exception) -> str:
    status = getattr(err, "status_code", None)
    name = type(err).__name__
    text = str(err).splitlines()[0] if str(err) else name
    return f"{name} ({status}): {text}" if status else f"{name}: {text}"
