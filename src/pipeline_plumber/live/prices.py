"""What a live run costs: a per-model price table kept as data (`prices.yaml`), and the sums.

Prices are in US dollars per million tokens; every multiplier (cache write, cache read, batch
discount) comes from the table, never from code. The usage the API reports is split into plain
input, 5-minute and 1-hour cache writes, cache reads and output, and each part is priced apart.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InputError, Problem
from ..schema_errors import field_names, schema_problems
from ..yamlsource import load_yaml

PRICES_FILE = Path(__file__).with_name("prices.yaml")
MTOK = 1_000_000
CHARS_PER_TOKEN = 4
"""The estimate's rule of thumb; the actual cost comes from the usage the API reports."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelPrice(_Model):
    """One model's prices, USD per million tokens."""

    id: str = Field(min_length=1, description="Model id, e.g. claude-sonnet-4-5.")
    aliases: list[str] = Field(default_factory=list, description="Other ids of the same model.")
    input: float = Field(ge=0, description="Base input tokens.")
    cache_write_5m: float = Field(ge=0, description="Tokens written to the 5-minute cache.")
    cache_write_1h: float = Field(ge=0, description="Tokens written to the 1-hour cache.")
    cache_read: float = Field(ge=0, description="Cache hits and refreshes.")
    output: float = Field(ge=0, description="Output tokens.")
    checked: dt.date = Field(description="When the price was last checked against the source.")


class PriceFile(_Model):
    """`prices.yaml`."""

    version: int = Field(description="Format version; 1.")
    unit: str = Field(description="Always 'USD per million tokens'.")
    batch_discount: float = Field(gt=0, le=1, description="Share of the price a batch pays.")
    models: list[ModelPrice] = Field(min_length=1)


@dataclass(frozen=True)
class Usage:
    """Token counts of one answer, split the way they are priced."""

    input: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    output: int = 0

    @classmethod
    def from_api(cls, usage: Mapping[str, Any], ttl: str = "5m") -> Usage:
        """From a Messages API `usage` object. Without the 5m/1h breakdown, every cache write
        counts at the TTL the request asked for."""
        written = int(usage.get("cache_creation_input_tokens") or 0)
        split = usage.get("cache_creation") or {}
        w5 = int(split.get("ephemeral_5m_input_tokens") or 0)
        w1 = int(split.get("ephemeral_1h_input_tokens") or 0)
        if written and not (w5 or w1):
            w5, w1 = (0, written) if ttl == "1h" else (written, 0)
        return cls(int(usage.get("input_tokens") or 0), w5, w1,
                   int(usage.get("cache_read_input_tokens") or 0),
                   int(usage.get("output_tokens") or 0))

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input + other.input, self.cache_write_5m + other.cache_write_5m,
                     self.cache_write_1h + other.cache_write_1h,
                     self.cache_read + other.cache_read, self.output + other.output)

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def prompt(self) -> int:
        """All input tokens, cached or not."""
        return self.input + self.cache_write + self.cache_read

    def to_json(self) -> dict[str, int]:
        return {"input": self.input, "cache_write_5m": self.cache_write_5m,
                "cache_write_1h": self.cache_write_1h, "cache_read": self.cache_read,
                "output": self.output}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Usage:
        return cls(**{k: int(data.get(k) or 0) for k in
                      ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")})


@dataclass(frozen=True)
class Prices:
    """The table: look a model up, price a usage."""

    models: tuple[ModelPrice, ...]
    batch_discount: float
    source: str

    def find(self, model: str) -> ModelPrice | None:
        for entry in self.models:
            names = (entry.id, *entry.aliases)
            if model in names or any(re.fullmatch(re.escape(n) + r"-\d{8}", model)
                                     for n in names):
                return entry
        return None

    def require(self, model: str) -> ModelPrice:
        entry = self.find(model)
        if entry is None:
            raise InputError([Problem(
                f"no price for model '{model}'; add it to the price table or pass --prices",
                file=self.source, field="models")])
        return entry

    def cost(self, price: ModelPrice, usage: Usage, *, batch: bool = False) -> float:
        """US dollars for `usage` at `price` (Message Batches at the batch discount)."""
        total = (usage.input * price.input + usage.cache_write_5m * price.cache_write_5m
                 + usage.cache_write_1h * price.cache_write_1h
                 + usage.cache_read * price.cache_read + usage.output * price.output) / MTOK
        return total * (self.batch_discount if batch else 1.0)


def load_prices(path: Path | None = None) -> Prices:
    """Read and validate a price table (default: the one shipped beside this module)."""
    path = path or PRICES_FILE
    doc = load_yaml(path, path.as_posix())
    try:
        parsed = PriceFile.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as err:
        known = field_names([PriceFile, ModelPrice])
        raise InputError(schema_problems(err, doc, known)) from err
    if parsed.version != 1:
        raise InputError([Problem(f"unknown version {parsed.version}; this plumber reads 1",
                                  file=doc.file, line=doc.line_of(("version",)), field="version")])
    return Prices(tuple(parsed.models), parsed.batch_discount, doc.file)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)
