"""The recording format: one JSON file per model reply, written by a live run (`--record`, and
the local cache) and replayed by the offline `plumber eval run`. This module is its one owner:
the layout, the version, reading within limits, and writing whole.

`<root>/answers/<case-id>/<key>.json` (the baseline arm's under `<root>/baseline/answers/`, so
they are never replayed as the agent's)::

    {"format": "pipeline-plumber/recording", "version": 1,
     "key": "<sha256 of the canonical Messages API request and the repeat index>",
     "case_id": "schema-events-postgres",
     "prompt_sha256": "<Case.prompt_digest: sha256 of the case's command and prompt>",
     "repeat": 0,
     "model": "<model id>",
     "request": {<the Messages API request, without any key>},
     "response": {"text": "<the answer>", "stop_reason": "end_turn", "usage": {...}},
     "recorded_at": "2026-01-31T12:00:00Z"}

A recording whose `prompt_sha256` no longer matches its case is stale; an unreadable, oversized
or foreign file is a miss, never a crash.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import atomic
from ..jsonsource import read_json_file

RECORDING_FORMAT = "pipeline-plumber/recording"
RECORDING_VERSION = 1
AGENT_ARM = "agent"


def case_folder(root: Path, case_id: str, arm: str = AGENT_ARM) -> Path:
    """Where the recordings of one case (and arm) live."""
    base = root if arm == AGENT_ARM else root / arm
    return base / "answers" / case_id


def recording_path(root: Path, case_id: str, key: str, arm: str = AGENT_ARM) -> Path:
    return case_folder(root, case_id, arm) / f"{key}.json"


def read_recording(path: Path) -> dict[str, Any] | None:
    """A recording's JSON, or None when the file is unreadable or not a recording we know."""
    try:
        data = read_json_file(path)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != RECORDING_FORMAT:
        return None
    if data.get("version") != RECORDING_VERSION:
        return None
    response = data.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("text"), str):
        return None
    return data


def save_recording(root: Path, *, case_id: str, prompt_sha256: str, key: str, repeat: int,
                   model: str, request: Mapping[str, Any], response: Mapping[str, Any],
                   arm: str = AGENT_ARM) -> Path:
    """Write one recording whole (temporary file, then rename) and return its path."""
    path = recording_path(root, case_id, key, arm)
    record = {"format": RECORDING_FORMAT, "version": RECORDING_VERSION, "key": key,
              "case_id": case_id, "prompt_sha256": prompt_sha256, "repeat": repeat,
              "model": model, "request": dict(request), "response": dict(response),
              "recorded_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    atomic.write_atomic(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return path
