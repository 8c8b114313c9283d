"""`--batch`: the same run through the Message Batches API, at the batch discount.

Items already answered in the run folder or found in an answer store are settled first, as in
`answers.send_answers`. The rest are submitted as batches (at most 100,000 requests and about 200 MB
each), with the request key as `custom_id`. The batch ids are written to `batch.json` *before*
polling starts, so a run killed while it waits resumes by polling the same batches: nothing is
submitted, or paid for, twice. Results arrive keyed by `custom_id`, in any order; each is
appended to `results.jsonl` as it is read. With a budget, only the items whose worst case fits
are submitted; the rest are `budget_exceeded`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputError, Problem
from .answers import Stores, save_answer, still_to_send
from .budget import worst_case_usd
from .prices import ModelPrice, Prices, Usage
from .request import WorkItem
from .run_folder import JsonlLog, RunFolder, now_iso
from .sender import (
    Progress,
    SendCounts,
    Sender,
    describe_error,
    redact,
    require_key,
    result_line,
)

MAX_REQUESTS = 100_000
MAX_BYTES = 200 * 1024 * 1024  # under the API's 256 MB, leaving room for the envelope


def execute_batch(items: Sequence[WorkItem], folder: RunFolder, *, sender: Sender,
                  stores: Stores, model: str, ttl: str = "5m", poll_interval: float = 10.0,
                  progress: Progress | None = None) -> SendCounts:
    """Bring every item to a result line in `folder` through Message Batches (see the module
    docstring); the sender lends its options, prices and key."""
    counts = SendCounts()
    started = time.perf_counter()
    options, prices, api_key = sender.options, sender.prices, sender.api_key
    with folder.log() as log:
        todo = still_to_send(items, folder, sender, stores, log, counts, progress)
        if not todo:
            counts.seconds = time.perf_counter() - started
            return counts
        require_key(api_key, len(todo), "request(s) have no stored answer",
                    "run offline from recordings with --replay")
        import anthropic  # slow to import: only where a live call is made

        client = anthropic.Anthropic(api_key=api_key, base_url=sender.base_url,
                                     max_retries=options.max_retries, timeout=options.timeout)
        by_key = {item.key: item for item in todo}
        saved = folder.load_batches()
        pending_batches = [b for b in saved if set(b.get("custom_ids", [])) & by_key.keys()]
        submitted = {cid for b in pending_batches for cid in b.get("custom_ids", [])}
        fresh = _within_budget([i for i in todo if i.key not in submitted], folder, sender,
                               model, log, counts)
        price = prices.find(model)
        try:
            for chunk in _chunks(fresh):
                batch = client.messages.batches.create(requests=[
                    {"custom_id": item.key, "params": dict(item.request)}  # type: ignore[typeddict-item]
                    for item in chunk])
                saved.append({"id": batch.id, "created": now_iso(),
                              "custom_ids": [item.key for item in chunk]})
                folder.save_batches(saved)
                pending_batches.append(saved[-1])
                counts.sent += len(chunk)
                counts.attempts += len(chunk)
            for entry in pending_batches:
                _collect(client, entry, by_key, log, counts, prices, price, stores, ttl, api_key,
                         poll_interval, progress)
        except anthropic.APIError as err:
            raise InputError([Problem("Message Batches call failed: "
                                      + redact(describe_error(err), api_key))]) from err
    counts.seconds = time.perf_counter() - started
    return counts


def _within_budget(fresh: list[WorkItem], folder: RunFolder, sender: Sender, model: str,
                   log: JsonlLog, counts: SendCounts) -> list[WorkItem]:
    """The items whose worst case (at the batch discount) fits the budget; the rest are
    logged `budget_exceeded`."""
    options, prices = sender.options, sender.prices
    if options.max_usd is None or not fresh:
        return fresh
    price = prices.require(model)
    spent = folder.spent_usd()
    fitting = []
    for item in fresh:
        worst = worst_case_usd(item, price) * prices.batch_discount
        if spent + worst > options.max_usd:
            break
        spent += worst
        fitting.append(item)
    for item in fresh[len(fitting):]:
        log.append(result_line(item, "budget_exceeded", "none"))
        counts.budget_exceeded += 1
    return fitting


def _chunks(items: Sequence[WorkItem]) -> list[list[WorkItem]]:
    chunks: list[list[WorkItem]] = []
    size = 0
    for item in items:
        length = len(json.dumps(item.request)) + 100
        if not chunks or len(chunks[-1]) >= MAX_REQUESTS or size + length > MAX_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += length
    return chunks


def _collect(client: Any, entry: Mapping[str, Any], by_key: Mapping[str, WorkItem],
             log: JsonlLog, counts: SendCounts, prices: Prices, price: ModelPrice | None,
             stores: Stores, ttl: str, secret: str | None, poll_interval: float,
             progress: Progress | None) -> None:
    """Poll one batch until it ends, then append every result of ours it holds."""
    while client.messages.batches.retrieve(entry["id"]).processing_status != "ended":
        time.sleep(poll_interval)
    seen = set()
    for response in client.messages.batches.results(entry["id"]):
        item = by_key.get(response.custom_id)
        if item is None or item.key in seen:
            continue
        seen.add(item.key)
        result = response.result
        if result.type == "succeeded":
            message = result.message
            usage_api = message.usage.model_dump(mode="json", exclude_none=True)
            usage = Usage.from_api(usage_api, ttl)
            cost = prices.cost(price, usage, batch=True) if price else 0.0
            text = "".join(b.text for b in message.content if b.type == "text")
            record = result_line(item, "ok", "batch", text=redact(text, secret),
                                 stop_reason=message.stop_reason, model=message.model,
                                 usage=usage, cost=cost, attempts=1, message_id=message.id)
            log.append(record)
            save_answer(item, record, stores, usage_api)
            counts.ok += 1
            counts.spent_usd += cost
        else:
            error = getattr(result, "error", None)
            detail = f"batch result {result.type}" + (f": {error}" if error else "")
            record = result_line(item, "error", "batch", error=redact(detail, secret), attempts=1)
            log.append(record)
            counts.errors += 1
        if progress:
            progress(record)
