"""Send a run's requests to the Messages API: concurrent, throttled, retried, budgeted, recorded.

`execute` takes the planned work items and a run folder and makes sure every item ends with a
line in `results.jsonl`:

1. an item already answered in this folder is skipped (that is what `--resume` relies on);
2. an item whose key is in an answer store (the committed recordings, then the local cache) is
   answered from there, free; with `replay=True` any item left over fails the run before a
   single request is sent;
3. the rest go to the API: one request first when the system prompt is marked for caching (the
   cache entry exists only once a response has started), then `jobs` workers, so the server
   sees exactly `jobs` requests in flight. A 429 or 529 pauses every worker for `retry-after`
   (or an exponential back-off) and halves the concurrency, which then grows back by one per
   `limit` successes. Other transient failures (500, dropped connection, malformed body,
   timeout) are retried after a back-off. Retries are bounded; the last error is recorded.
4. with a budget, each attempt is sent only when what has been spent, plus the worst case of
   the attempts in flight, plus its own worst case, stays within it; the first that does not
   fit stops the sending and every item left is recorded as `budget_exceeded`. An attempt that
   fails after the API may have run the model (a 200 whose body does not parse, a 5xx other
   than 529, a timeout or a connection lost after sending) is counted at its worst case: the
   full input at the dearest rate plus `max_tokens` of output. Only a refusal before any work
   (a 4xx, a 529, a connection never made) is free.

Each answer is appended (and fsynced) as it arrives, then written to the local cache and, with
`record_to`, to the recordings. The API key is read by the caller and never written: every
error text and answer text is passed through `redact` first.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError, Problem
from .prices import ModelPrice, Prices, Usage, estimate_tokens
from .request import WorkItem, explain_difference, key_parts
from .store import AnswerStore, JsonlLog, RunFolder, now_iso

if TYPE_CHECKING:
    import anthropic

REDACTED = "[redacted]"
NO_USAGE = Usage()


class ReplayMiss(InputError):
    """`--replay` found no recording for some requests: exit 2, one line per case."""


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
class RunOptions:
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
class Stores:
    """Where answers are looked up (in order) and written."""

    lookup: Sequence[tuple[str, AnswerStore]] = ()
    cache: AnswerStore | None = None
    record_to: AnswerStore | None = None


@dataclass
class Tally:
    """What a call to `execute` did (this invocation only; the report sums the folder)."""

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
    statuses: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- money


def worst_case_usd(item: WorkItem, prices: Prices, price: ModelPrice) -> float:
    """An upper bound for one request: all input at the dearest input rate, and `max_tokens`
    of output."""
    text = _request_text(item.request)
    dearest = max(price.input, price.cache_write_5m, price.cache_write_1h)
    tokens = estimate_tokens(text)
    max_tokens = int(item.request.get("max_tokens") or 0)
    return (tokens * dearest + max_tokens * price.output) / 1_000_000


@dataclass(frozen=True)
class Estimate:
    """Before the run: what the requests left to send should cost."""

    requests: int
    input_usd: float
    output_max_usd: float

    @property
    def max_usd(self) -> float:
        return self.input_usd + self.output_max_usd

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "input_usd": round(self.input_usd, 6),
                "output_max_usd": round(self.output_max_usd, 6), "max_usd": round(self.max_usd, 6)}


def estimate(items: Sequence[WorkItem], prices: Prices, price: ModelPrice, *,
             batch: bool = False) -> Estimate:
    """Input priced as the cache would bill it (the first cacheable request writes the system
    prompt, the others read it; a batch is priced without cache), output at its upper bound,
    `max_tokens` per request. Tokens are estimated at four characters each."""
    written: set[str] = set()
    input_usd = output_usd = 0.0
    for item in items:
        system = _system_text(item.request)
        user = _request_text(item.request, system=False)
        sys_tokens, user_tokens = estimate_tokens(system), estimate_tokens(user)
        if item.cacheable and not batch:
            ttl = _ttl(item.request)
            if system in written:
                usage = Usage(input=user_tokens, cache_read=sys_tokens)
            elif ttl == "1h":
                usage = Usage(input=user_tokens, cache_write_1h=sys_tokens)
            else:
                usage = Usage(input=user_tokens, cache_write_5m=sys_tokens)
            written.add(system)
        else:
            usage = Usage(input=sys_tokens + user_tokens)
        input_usd += prices.cost(price, usage, batch=batch)
        output_usd += prices.cost(price, Usage(output=int(item.request.get("max_tokens") or 0)),
                                  batch=batch)
    return Estimate(len(items), input_usd, output_usd)


class Budget:
    """Spent plus reserved (the worst case of what is in flight) never passes the limit."""

    def __init__(self, limit: float | None, worst: Callable[[WorkItem], float]) -> None:
        self.limit = limit
        self._worst = worst
        self.spent = 0.0
        self.reserved = 0.0
        self.stopped = False

    def reserve(self, item: WorkItem) -> float | None:
        """The amount reserved (the attempt's worst case), or None (and the budget stops) when
        it does not fit."""
        if self.stopped:
            return None
        worst = self._worst(item)
        if self.limit is not None and self.spent + self.reserved + worst > self.limit:
            self.stopped = True
            return None
        self.reserved += worst
        return worst

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved -= reserved
        self.spent += actual


# --------------------------------------------------------------------------- concurrency


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


# --------------------------------------------------------------------------- the run


def execute(items: Sequence[WorkItem], folder: RunFolder, *, options: RunOptions,
            prices: Prices, model: str, stores: Stores, api_key: str | None,
            base_url: str | None = None, ttl: str = "5m",
            progress: Callable[[Mapping[str, Any]], None] | None = None) -> Tally:
    """Bring every item to a result line in `folder` (see the module docstring)."""
    tally = Tally()
    started = time.perf_counter()
    price = prices.find(model)
    with folder.log() as log:
        _, todo = still_to_send(items, folder, options, stores, log, tally, progress)
        if todo:
            api_key = require_key(api_key, todo)
            if options.max_usd is not None and price is None:
                prices.require(model)
            sender = _Sender(options, prices, price, stores, log, tally, api_key, base_url,
                             ttl, progress)
            asyncio.run(sender.run(todo))
    tally.seconds = time.perf_counter() - started
    return tally


def still_to_send(items: Sequence[WorkItem], folder: RunFolder, options: RunOptions,
                  stores: Stores, log: JsonlLog, tally: Tally,
                  progress: Callable[[Mapping[str, Any]], None] | None,
                  ) -> tuple[dict[str, dict[str, Any]], list[WorkItem]]:
    """The run folder's results so far, and the items that still need a request: those with no
    `ok` line yet and no stored answer (a stored answer is logged as it is found). Under
    `--replay` a missing answer raises instead."""
    done = folder.results()
    todo = [item for item in items if done.get(item.key, {}).get("status") != "ok"]
    tally.skipped = len(items) - len(todo)
    if options.use_stored or options.replay:
        todo = _answer_from_stores(todo, stores, log, tally, progress)
    if options.replay and todo:
        raise ReplayMiss(_miss_problems(todo, stores))
    return done, todo


def require_key(api_key: str | None, todo: Sequence[WorkItem]) -> str:
    """The key, or one clear line saying why none is needed offline."""
    if not api_key:
        raise InputError([Problem(
            f"ANTHROPIC_API_KEY is not set and {len(todo)} request(s) have no stored answer; "
            "set the key, or run offline from recordings with --replay")])
    return api_key


def _answer_from_stores(todo: list[WorkItem], stores: Stores, log: JsonlLog, tally: Tally,
                        progress: Callable[[Mapping[str, Any]], None] | None) -> list[WorkItem]:
    left = []
    for item in todo:
        hit = None
        for source, store in stores.lookup:
            data = store.get(item.case_id, item.arm, item.key)
            if data is not None:
                hit = (source, store, data)
                break
        if hit is None:
            left.append(item)
            continue
        source, found_in, data = hit
        response = data["response"]
        if stores.record_to is not None and stores.record_to is not found_in:
            stores.record_to.put(case_id=item.case_id, arm=item.arm, key=item.key,
                                 prompt_sha256=item.prompt_sha256, repeat=item.repeat,
                                 model=str(data.get("model") or ""), request=item.request,
                                 response=response)
        record = _result(item, "ok", source, text=response["text"],
                         stop_reason=response.get("stop_reason"),
                         model=str(response.get("model") or data.get("model") or ""),
                         usage=Usage.from_json(response.get("usage_priced") or {}),
                         cost=0.0, latency=0.0, attempts=0)
        log.append(record)
        tally.from_store += 1
        tally.ok += 1
        if progress:
            progress(record)
    return left


def _miss_problems(todo: Sequence[WorkItem], stores: Stores) -> list[Problem]:
    problems = []
    seen: set[tuple[str, str, int]] = set()
    for item in todo:
        if (item.case_id, item.arm, item.repeat) in seen:
            continue
        seen.add((item.case_id, item.arm, item.repeat))
        why = "no recording of this case"
        for _, store in stores.lookup:
            recorded = store.keys_for(item.case_id, item.arm)
            if recorded:
                new = key_parts(item.request, item.repeat)
                nearest = [explain_difference(key_parts(d.get("request") or {},
                                                        int(d.get("repeat") or 0)), new)
                           for d in recorded.values()]
                why = "recordings differ in " + min(nearest, key=len)
                break
        arm = "" if item.arm == "agent" else f" ({item.arm} arm)"
        problems.append(Problem(f"no recorded answer for case '{item.case_id}'{arm}, repeat "
                                f"{item.repeat} (key {item.key[:12]}): {why}; record it with "
                                "a live run and --record", field="--replay"))
    return problems


def _result(item: WorkItem, status: str, source: str, *, text: str | None = None,
            stop_reason: str | None = None, model: str = "", usage: Usage = NO_USAGE,
            cost: float = 0.0, latency: float = 0.0, attempts: int = 0,
            error: str | None = None, message_id: str | None = None) -> dict[str, Any]:
    return {"v": 1, "key": item.key, "case_id": item.case_id, "arm": item.arm,
            "repeat": item.repeat, "status": status, "source": source, "text": text,
            "stop_reason": stop_reason, "model": model, "usage": usage.to_json(),
            "cost_usd": round(cost, 8), "latency_s": round(latency, 4), "attempts": attempts,
            "error": error, "message_id": message_id, "at": now_iso()}


def save_answer(item: WorkItem, record: Mapping[str, Any], stores: Stores,
                usage_api: Mapping[str, Any]) -> None:
    """Put a fresh answer in the local cache and, when recording, in the recordings. A store
    that cannot be written is skipped: the run folder already holds the answer."""
    response = {"text": record["text"], "stop_reason": record["stop_reason"],
                "model": record["model"], "usage": dict(usage_api),
                "usage_priced": record["usage"], "cost_usd": record["cost_usd"]}
    for store in (stores.cache, stores.record_to):
        if store is None:
            continue
        try:
            store.put(case_id=item.case_id, arm=item.arm, key=item.key,
                      prompt_sha256=item.prompt_sha256, repeat=item.repeat,
                      model=str(item.request.get("model", "")), request=item.request,
                      response=response)
        except OSError:
            if store is stores.record_to:
                raise


class _Sender:
    """The asyncio side: a client, `jobs` workers, the adaptive limit and the budget."""

    def __init__(self, options: RunOptions, prices: Prices, price: ModelPrice | None,
                 stores: Stores, log: JsonlLog, tally: Tally, api_key: str,
                 base_url: str | None, ttl: str,
                 progress: Callable[[Mapping[str, Any]], None] | None) -> None:
        self.options = options
        self.prices = prices
        self.price = price
        self.stores = stores
        self.log = log
        self.tally = tally
        self.api_key = api_key
        self.base_url = base_url
        self.ttl = ttl
        self.progress = progress
        self.budget = Budget(options.max_usd,
                             lambda item: worst_case_usd(item, prices, price) if price else 0.0)

    async def run(self, items: Sequence[WorkItem]) -> None:
        import anthropic  # slow to import: only here, where a live call is made

        self.limit = AdaptiveLimit(self.options.jobs)
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
                    queue.appendleft(item)
                else:
                    self._finish(item, "budget_exceeded", "api" if attempts else "none",
                                 error=last_error or None, attempts=attempts, cost=charged,
                                 latency=time.perf_counter() - started)
                return
            if attempts == 0:
                self.tally.sent += 1
            attempts += 1
            self.tally.attempts += 1
            await self.limit.acquire()
            try:
                message = await client.messages.create(**item.request,
                                                       timeout=self.options.timeout)
            except Exception as err:
                await self.limit.release(success=False)
                billed = reserved if _may_be_billed(err, anthropic) else 0.0
                self.budget.settle(reserved, billed)
                charged += billed
                retry, throttled, delay = self._classify(err, attempts, anthropic)
                last_error = redact(_describe(err), self.api_key)
                if not retry or attempts > self.options.max_retries:
                    break
                if throttled:
                    self.tally.retries_throttled += 1
                    await self.limit.throttle(delay)
                else:
                    self.tally.retries_other += 1
                    await asyncio.sleep(delay)
                continue
            await self.limit.release(success=True)
            self._answered(item, message, reserved, charged, attempts, started)
            return
        self._finish(item, "error", "api", error=last_error, attempts=attempts, cost=charged,
                     latency=time.perf_counter() - started)

    def _answered(self, item: WorkItem, message: Any, reserved: float, charged: float,
                  attempts: int, started: float) -> None:
        usage_api = message.usage.model_dump(mode="json", exclude_none=True)
        usage = Usage.from_api(usage_api, self.ttl)
        cost = self.prices.cost(self.price, usage) if self.price else 0.0
        self.budget.settle(reserved, cost)
        text = "".join(block.text for block in message.content if block.type == "text")
        record = _result(item, "ok", "api", text=redact(text, self.api_key),
                         stop_reason=message.stop_reason, model=message.model, usage=usage,
                         cost=cost + charged, latency=time.perf_counter() - started,
                         attempts=attempts, message_id=message.id)
        self.log.append(record)
        save_answer(item, record, self.stores, usage_api)
        self.tally.ok += 1
        self.tally.spent_usd += cost + charged
        if self.progress:
            self.progress(record)

    def _finish(self, item: WorkItem, status: str, source: str, *, error: str | None = None,
                attempts: int = 0, latency: float = 0.0, cost: float = 0.0) -> None:
        record = _result(item, status, source, error=error, attempts=attempts, latency=latency,
                         cost=cost)
        self.log.append(record)
        self.tally.spent_usd += cost
        if status == "error":
            self.tally.errors += 1
        else:
            self.tally.budget_exceeded += 1
        if self.progress:
            self.progress(record)

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


def _describe(err: Exception) -> str:
    status = getattr(err, "status_code", None)
    name = type(err).__name__
    text = str(err).splitlines()[0] if str(err) else name
    return f"{name} ({status}): {text}" if status else f"{name}: {text}"


def _system_text(request: Mapping[str, Any]) -> str:
    system = request.get("system")
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "".join(str(b.get("text", "")) for b in system if isinstance(b, Mapping))
    return ""


def _request_text(request: Mapping[str, Any], *, system: bool = True) -> str:
    parts = [_system_text(request)] if system else []
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(b.get("text", "")) for b in content if isinstance(b, Mapping))
    return "".join(parts)


def _ttl(request: Mapping[str, Any]) -> str:
    for block in request.get("system") or []:
        control = block.get("cache_control") if isinstance(block, Mapping) else None
        if isinstance(control, Mapping):
            return str(control.get("ttl", "5m"))
    return "5m"
