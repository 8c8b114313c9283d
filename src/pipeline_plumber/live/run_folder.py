"""A live run's folder: its plan (`spec.json`), its append-only, crash-safe results, its batch ids.

Run folder, one per `plumber eval run --live` (`--resume DIR` continues it)::

    spec.json        {"format": "pipeline-plumber/live-run", "version": 1, "created": ...,
                      "config": {model, max_tokens, params, prompt_cache, cache_ttl},
                      "options": {repeats, baseline, batch, ...}, "kb_digest": ...,
                      "system": "<the agent body>",
                      "items": [{"key", "case_id", "arm", "repeat", "user"}, ...]}
    results.jsonl    one line per answer as it arrives, fsynced: {"v": 1, "key", "case_id", "arm",
                      "repeat", "status": "ok|error|budget_exceeded", "source":
                      "api|batch|cache|recording", "text", "stop_reason", "model", "usage",
                      "cost_usd", "latency_s", "attempts", "error", "at"}
    batch.json       the Message Batches ids of a `--batch` run, written before polling
    report.json      the summary, rewritten at the end of every run or resume
    report.md

`results.jsonl` is only ever appended to. After a kill -9 its last line may be torn: readers
skip it and the next writer cuts it off before appending. The latest line per key wins, and a
paid answer (`ok`) is never replaced by anything but another `ok` for the same key.

The spec holds everything needed to rebuild every request byte for byte (the system prompt once,
each item's user message, the config), so `--resume DIR` finishes the run that was started even
if the knowledge base or the cases changed since.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__, atomic
from ..errors import InputError, Problem
from ..jsonsource import MAX_JSON_BYTES, loads_bounded, read_json_file
from .request import LiveConfig, WorkItem, build_request, request_key

RUN_FORMAT = "pipeline-plumber/live-run"
RUN_VERSION = 1
RESULT_VERSION = 1

SPEC_FILE = "spec.json"
RESULTS_FILE = "results.jsonl"
BATCH_FILE = "batch.json"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------- JSONL


class JsonlLog:
    """An append-only JSON Lines file: each line is written whole and fsynced before `append`
    returns. Opening it cuts off a torn last line left by a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def append(self, record: Mapping[str, Any]) -> None:
        data = (dumps(record) + "\n").encode()
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cut_torn_tail(path: Path) -> None:
    """Drop bytes after the last newline: the remains of a line a crash interrupted."""
    try:
        with path.open("rb+") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            block = 4096
            end = size
            while end > 0:
                start = max(0, end - block)
                handle.seek(start)
                chunk = handle.read(end - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    handle.truncate(start + cut + 1)
                    return
                end = start
            handle.truncate(0)
    except FileNotFoundError:
        return


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Every whole, parseable line; a torn or garbled line is skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            value = loads_bounded(line) if len(line) <= MAX_JSON_BYTES else None
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


# --------------------------------------------------------------------------- files


def write_json_atomic(path: Path, data: Any, *, durable: bool = True) -> None:
    """Write JSON to a temporary file beside `path`, then rename it into place."""
    atomic.write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n",
                        durable=durable)


def read_json(path: Path) -> Any:
    try:
        return read_json_file(path)
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- the run folder


class RunFolder:
    """A live run's folder: its spec, its append-only results, its batch ids."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_FILE

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE

    @property
    def batch_path(self) -> Path:
        return self.path / BATCH_FILE

    def create(self, spec: Mapping[str, Any]) -> None:
        if self.spec_path.exists():
            raise InputError([Problem("a run already lives here; continue it with --resume "
                                      "or choose another --out", file=self.path.as_posix())])
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.spec_path, {"format": RUN_FORMAT, "version": RUN_VERSION,
                                           **spec})

    def load_spec(self) -> dict[str, Any]:
        data = read_json(self.spec_path)
        if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
            raise InputError([Problem("not a live run folder (spec.json missing or unreadable)",
                                      file=self.spec_path.as_posix())])
        if data.get("version") != RUN_VERSION:
            raise InputError([Problem(f"run format version {data.get('version')}; this plumber "
                                      f"reads {RUN_VERSION}", file=self.spec_path.as_posix(),
                                      field="version")])
        return data

    def results(self) -> dict[str, dict[str, Any]]:
        """The standing result per key: the latest line, except that an `ok` is kept."""
        out: dict[str, dict[str, Any]] = {}
        for record in read_jsonl(self.results_path):
            key = record.get("key")
            if not isinstance(key, str) or record.get("v") != RESULT_VERSION:
                continue
            if out.get(key, {}).get("status") == "ok" and record.get("status") != "ok":
                continue
            out[key] = record
        return out

    def start(self, plan: RunPlan) -> None:
        """Create the folder and write the plan; refuses a folder that holds a run."""
        self.create(plan.to_spec())

    def load_plan(self) -> RunPlan:
        """The plan of the run in this folder, rebuilt from its spec."""
        return plan_from_spec(self.load_spec(), self.spec_path.as_posix())

    def spent_usd(self) -> float:
        """What the answers in this folder cost so far."""
        return sum(float(r.get("cost_usd") or 0.0) for r in self.results().values())

    def log(self) -> JsonlLog:
        return JsonlLog(self.results_path)

    def load_batches(self) -> list[dict[str, Any]]:
        data = read_json(self.batch_path)
        if isinstance(data, dict) and isinstance(data.get("batches"), list):
            return [b for b in data["batches"] if isinstance(b, dict)]
        return []

    def save_batches(self, batches: Iterable[Mapping[str, Any]]) -> None:
        write_json_atomic(self.batch_path, {"version": 1, "batches": list(batches)})


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class RunPlan:
    """What a run sends and how: rebuilt identically from `spec.json` on resume."""

    config: LiveConfig
    items: tuple[WorkItem, ...]
    system: str
    repeats: int
    baseline: bool
    batch: bool
    kb_digest: str
    extra: Mapping[str, Any]

    def to_spec(self) -> dict[str, Any]:
        return {
            "created": now_iso(),
            "plumber_version": __version__,
            "config": self.config.to_json(),
            "options": {"repeats": self.repeats, "baseline": self.baseline, "batch": self.batch},
            "kb_digest": self.kb_digest,
            "extra": dict(self.extra),
            "system": self.system,
            "items": [{"key": i.key, "case_id": i.case_id, "arm": i.arm, "repeat": i.repeat,
                       "prompt_sha256": i.prompt_sha256,
                       "user": i.request["messages"][0]["content"]} for i in self.items],
        }


def plan_from_spec(spec: Mapping[str, Any], where: str) -> RunPlan:
    """Rebuild the plan from a run folder's spec; every key must come out the same."""
    try:
        raw = spec["config"]
        config = LiveConfig(model=raw["model"], max_tokens=int(raw["max_tokens"]),
                            params=dict(raw.get("params") or {}),
                            prompt_cache=bool(raw["prompt_cache"]), cache_ttl=raw["cache_ttl"])
        system = str(spec["system"])
        items = []
        for entry in spec["items"]:
            request = build_request(system if entry["arm"] == "agent" else None,
                                    str(entry["user"]), config)
            key = request_key(request, int(entry["repeat"]))
            if key != entry["key"]:
                raise InputError([Problem(f"item {entry['case_id']} repeat {entry['repeat']} "
                                          "no longer matches its key: spec.json was edited",
                                          file=where, field="items")])
            items.append(WorkItem(key, str(entry["case_id"]), entry["arm"],
                                  int(entry["repeat"]), request, str(entry["prompt_sha256"])))
        options = spec["options"]
        return RunPlan(config, tuple(items), system, int(options["repeats"]),
                       bool(options["baseline"]), bool(options["batch"]),
                       str(spec.get("kb_digest", "")), dict(spec.get("extra") or {}))
    except (KeyError, TypeError, ValueError) as err:
        raise InputError([Problem(f"spec.json is not a live run spec ({err})", file=where)]) \
            from err


def default_run_dir(root: Path) -> Path:
    """`<root>/<UTC timestamp>`, unique."""
    stamp = now_iso().replace(":", "").replace("-", "")[:15]
    path = root / stamp
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path
