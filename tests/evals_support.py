"""Helpers shared by the eval tests (kept out of conftest.py, which other areas own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
EVALS = REPO / "evals"
KB = REPO / "kb"


def scorer_cases() -> list[dict[str, Any]]:
    """Every scorer fixture, from tests/fixtures/scorers/*.yaml, with its file name."""
    cases = []
    for path in sorted((FIXTURES / "scorers").glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            case["file"] = path.name
            cases.append(case)
    return cases
