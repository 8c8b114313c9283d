"""The answers of a live run: where they are found (the committed recordings, then the local
cache), where they are kept, and the pass that brings every planned item to a line in the run
folder.

`send_answers` takes the planned work items and a run folder and makes sure every item ends with
a line in `results.jsonl`:

1. an item already answered in this folder is skipped (that is what `--resume` relies on);
2. an item whose key is in an answer store is answered from there, free; with `replay` any item
   left over fails the run before a single request is sent;
3. the rest go to the `Sender`. Each answer is appended (and fsynced) as it arrives, then
   written to the local cache and, with `record_to`, to the recordings.

An answer store holds one recording per answer, `<root>/answers/<case-id>/<key>.json`, in the
format the offline `plumber eval run` replays (`evals/recordings.py`); the baseline arm's go to
`<root>/baseline/answers/...` so that they are never replayed as the agent's. A store that cannot
be read is a miss, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, Problem
from ..evals import recordings
from .prices import Usage
from .request import WorkItem, explain_difference, key_parts
from .run_folder import JsonlLog, RunFolder
from .sender import Progress, SendCounts, Sender, result_line


class ReplayMiss(InputError):
    """`--replay` found no recording for some requests: exit 2, one line per case."""


class AnswerStore:
    """Answers by request key, one recording file each (`evals/recordings.py`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, case_id: str, arm: str, key: str) -> dict[str, Any] | None:
        data = recordings.read_recording(recordings.recording_path(self.root, case_id, key, arm))
        return data if data is not None and data.get("key") == key else None

    def put(self, *, case_id: str, arm: str, key: str, prompt_sha256: str, repeat: int,
            model: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> Path:
        return recordings.save_recording(self.root, case_id=case_id, prompt_sha256=prompt_sha256,
                                         key=key, repeat=repeat, model=model, request=request,
                                         response=response, arm=arm)

    def keys_for(self, case_id: str, arm: str) -> dict[str, dict[str, Any]]:
        """Every readable recording of a case, by key (to explain a miss, or prune)."""
        out = {}
        for path in sorted(recordings.case_folder(self.root, case_id, arm).glob("*.json")):
            data = recordings.read_recording(path)
            if data is not None:
                out[path.stem] = data
        return out

    def prune(self, case_id: str, arm: str, keep: set[str]) -> list[Path]:
        """Delete a case's recordings whose key is not in `keep` (stale ones): offline replay
        reads every recording of a case, so old answers must not linger beside new ones."""
        removed = []
        for path in sorted(recordings.case_folder(self.root, case_id, arm).glob("*.json")):
            if path.stem not in keep:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


@dataclass
class Stores:
    """Where answers are looked up (in order) and written."""

    lookup: Sequence[tuple[str, AnswerStore]] = ()
    cache: AnswerStore | None = None
    record_to: AnswerStore | None = None

    def stored_text(self, item: WorkItem) -> str | None:
        """The text of a stored answer to `item`, or None."""
        for _, store in self.lookup:
            data = store.get(item.case_id, item.arm, item.key)
            if data is not None:
                return str(data["response"]["text"])
        return None


def send_answers(items: Sequence[WorkItem], folder: RunFolder, *, sender: Sender,
                 stores: Stores, progress: Progress | None = None) -> SendCounts:
    """Bring every item to a result line in `folder` (see the module docstring)."""
    with folder.log() as log:
        counts = SendCounts()
        todo = still_to_send(items, folder, sender, stores, log, counts, progress)

        def keep(item: WorkItem, line: dict[str, Any], usage_api: Mapping[str, Any] | None
                 ) -> None:
            log.append(line)
            if usage_api is not None:
                save_answer(item, line, stores, usage_api)

        sent = sender.send(todo, keep, what="request(s) have no stored answer",
                           fix="run offline from recordings with --replay", progress=progress)
    sent.skipped, sent.from_store = counts.skipped, counts.from_store
    sent.ok += counts.ok
    return sent


def still_to_send(items: Sequence[WorkItem], folder: RunFolder, sender: Sender, stores: Stores,
                  log: JsonlLog, counts: SendCounts, progress: Progress | None
                  ) -> list[WorkItem]:
    """The items that still need a request: those with no `ok` line in the run folder yet and
    no stored answer (a stored answer is logged as it is found). Under `--replay` a missing
    answer raises instead."""
    options = sender.options
    done = folder.results()
    todo = [item for item in items if done.get(item.key, {}).get("status") != "ok"]
    counts.skipped = len(items) - len(todo)
    if options.use_stored or options.replay:
        todo = _answer_from_stores(todo, stores, log, counts, progress)
    if options.replay and todo:
        raise ReplayMiss(_miss_problems(todo, stores))
    return todo


def _answer_from_stores(todo: list[WorkItem], stores: Stores, log: JsonlLog, counts: SendCounts,
                        progress: Progress | None) -> list[WorkItem]:
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
        record = result_line(item, "ok", source, text=response["text"],
                         stop_reason=response.get("stop_reason"),
                         model=str(response.get("model") or data.get("model") or ""),
                             usage=Usage.from_json(response.get("usage_priced") or {}),
                             cost=0.0, latency=0.0, attempts=0)
        log.append(record)
        counts.from_store += 1
        counts.ok += 1
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
