"""Money before and during a live run: the estimate printed first, the worst case of one request,
and the budget every attempt is reserved against.

A request's worst case is all of its input at the dearest input rate plus `max_tokens` of
output: it bounds what the API can bill for one attempt, whatever the cache does. The estimate
prices input as the cache would bill it (the first cacheable request writes the system prompt,
the others read it; a batch is priced without cache) and output at its upper bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .prices import ModelPrice, Prices, Usage, estimate_tokens
from .request import WorkItem


def worst_case_usd(item: WorkItem, price: ModelPrice) -> float:
    """An upper bound for one request: all input at the dearest input rate, and `max_tokens`
    of output."""
    return request_worst_case_usd(item.request, price)


def request_worst_case_usd(request: Mapping[str, Any], price: ModelPrice, *,
                           extra_tokens: int = 0) -> float:
    """`worst_case_usd` of a bare request, its input grown by `extra_tokens` (an answer not
    written yet, say)."""
    dearest = max(price.input, price.cache_write_5m, price.cache_write_1h)
    tokens = estimate_tokens(_request_text(request)) + extra_tokens
    max_tokens = int(request.get("max_tokens") or 0)
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
            ttl = cache_ttl(item.request)
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

    def __init__(self, limit: float | None, worst: Callable[[WorkItem], float], *,
                 spent: float = 0.0) -> None:
        self.limit = limit
        self._worst = worst
        self.spent = spent
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


def cache_ttl(request: Mapping[str, Any]) -> str:
    """The TTL the request asks its prompt cache to keep (`5m` unless it says `1h`)."""
    for block in request.get("system") or []:
        control = block.get("cache_control") if isinstance(block, Mapping) else None
        if isinstance(control, Mapping):
            return str(control.get("ttl", "5m"))
    return "5m"
