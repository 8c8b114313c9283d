"""Where live answers go: the run folder (append-only, crash-safe) and answer stores (by key).

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

Answer store (the local cache `.plumber/cache` and the committed `evals/recordings`): one JSON
file per answer, `<root>/answers/<case-id>/<key>.json`, in the recording format the offline
`plumber eval run` replays (`pipeline-plumber/recording`, version 1; see `evals/runner.py`)::

    {"format": "pipeline-plumber/recording", "version": 1, "key": "<request key>",
     "case_id": ..., "prompt_sha256": "<sha256 of the case's command and prompt>",
     "repeat": 0, "model": ..., "request": {<Messages API request, no key>},
     "response": {"text", "stop_reason", "usage", "model"}, "recorded_at": ...}

The baseline arm's answers go to `<root>/baseline/answers/...` so that they are never replayed
as the agent's. A store that cannot be read is a miss, never a crash.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import InputError, Problem
from ..jsonsource import MAX_JSON_BYTES, loads_bounded, read_json_file

RUN_FORMAT = "pipeline-plumber/live-run"
RUN_VERSION = 1
RESULT_VERSION = 1
RECORDING_FORMAT = "pipeline-plumber/recording"
RECORDING_VERSION = 1

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

    def log(self) -> JsonlLog:
        return JsonlLog(self.results_path)

    def load_batches(self) -> list[dict[str, Any]]:
        data = read_json(self.batch_path)
        if isinstance(data, dict) and isinstance(data.get("batches"), list):
            return [b for b in data["batches"] if isinstance(b, dict)]
        return []

    def save_batches(self, batches: Iterable[Mapping[str, Any]]) -> None:
        write_json_atomic(self.batch_path, {"version": 1, "batches": list(batches)})


# --------------------------------------------------------------------------- answer stores


class AnswerStore:
    """Answers by request key, one recording file each, under `<root>/answers/<case-id>/`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, case_id: str, arm: str, key: str) -> Path:
        base = self.root if arm == "agent" else self.root / arm
        return base / "answers" / case_id / f"{key}.json"

    def get(self, case_id: str, arm: str, key: str) -> dict[str, Any] | None:
        data = read_json(self._path(case_id, arm, key))
        if not isinstance(data, dict) or data.get("format") != RECORDING_FORMAT:
            return None
        if data.get("version") != RECORDING_VERSION or data.get("key") != key:
            return None
        response = data.get("response")
        if not isinstance(response, dict) or not isinstance(response.get("text"), str):
            return None
        return data

    def put(self, *, case_id: str, arm: str, key: str, prompt_sha256: str, repeat: int,
            model: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> Path:
        path = self._path(case_id, arm, key)
        record = {"format": RECORDING_FORMAT, "version": RECORDING_VERSION, "key": key,
                  "case_id": case_id, "prompt_sha256": prompt_sha256, "repeat": repeat,
                  "model": model, "request": dict(request), "response": dict(response),
                  "recorded_at": now_iso()}
        write_json_atomic(path, record, durable=False)
        return path

    def keys_for(self, case_id: str, arm: str) -> dict[str, dict[str, Any]]:
        """Every readable recording of a case, by key (to explain a miss, or prune)."""
        base = self.root if arm == "agent" else self.root / arm
        out = {}
        for path in sorted((base / "answers" / case_id).glob("*.json")):
            data = read_json(path)
            if isinstance(data, dict) and data.get("format") == RECORDING_FORMAT:
                out[path.stem] = data
        return out

    def prune(self, case_id: str, arm: str, keep: set[str]) -> list[Path]:
        """Delete a case's recordings whose key is not in `keep` (stale ones): offline replay
        reads every recording of a case, so old answers must not linger beside new ones."""
        base = self.root if arm == "agent" else self.root / arm
        removed = []
        for path in sorted((base / "answers" / case_id).glob("*.json")):
            if path.stem not in keep:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed
