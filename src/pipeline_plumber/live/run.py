"""A live run from start to resume: plan the items, write the spec, send, and read it all back.

The spec holds everything needed to rebuild every request byte for byte (the system prompt once,
each item's user message, the config), so `--resume DIR` finishes the run that was started even
if the knowledge base or the cases changed since.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError, Problem
from .request import LiveConfig, WorkItem, build_request, request_key
from .store import RunFolder, now_iso

API_KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"


def api_key_from_env() -> str | None:
    """The key, from the environment only; it is never written anywhere."""
    return os.environ.get(API_KEY_ENV) or None


def base_url_from_env() -> str | None:
    return os.environ.get(BASE_URL_ENV) or None


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


def start(folder: RunFolder, plan: RunPlan) -> None:
    folder.create(plan.to_spec())


def load(folder: RunFolder) -> RunPlan:
    return plan_from_spec(folder.load_spec(), folder.spec_path.as_posix())


def results_in_order(folder: RunFolder, items: Sequence[WorkItem]) -> list[dict[str, Any]]:
    """The standing result of each item, in plan order (items without one are left out)."""
    standing = folder.results()
    return [standing[i.key] for i in items if i.key in standing]


def default_run_dir(root: Path) -> Path:
    """`<root>/<UTC timestamp>`, unique."""
    stamp = now_iso().replace(":", "").replace("-", "")[:15]
    path = root / stamp
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path
