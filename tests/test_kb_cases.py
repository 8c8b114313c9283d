"""Data-driven knowledge-base cases: each invalid input names the error it must produce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kb_support import FIXTURES, TEMPLATES, copy_minimal_kb, snapshot
from support.cli import plumber

CASES: list[dict[str, Any]] = yaml.safe_load((FIXTURES / "kb_cases.yaml").read_text())


def apply_edit(kb: Path, case: dict[str, Any]) -> None:
    target = kb / case["file"]
    if case.get("delete"):
        target.unlink()
    elif "write" in case:
        target.write_text(case["write"])
    elif "append" in case:
        target.write_text(target.read_text() + case["append"])
    else:
        old, new = case["replace"]
        text = target.read_text()
        assert old in text, f"fixture {case['id']}: {old!r} not in {case['file']}"
        new = new.replace("{words}", " ".join(["word"] * case.get("words", 0)))
        target.write_text(text.replace(old, new, 1))
    if "then" in case:
        apply_edit(kb, {"id": case["id"], **case["then"]})


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_build_outcome(case: dict[str, Any], tmp_path: Path) -> None:
    kb = copy_minimal_kb(tmp_path)
    apply_edit(kb, case)
    out = tmp_path / "out"
    (out / "agents").mkdir(parents=True)
    (out / "agents" / "keep.md").write_text("not ours\n")
    before = snapshot(out)

    result = plumber("build", "--kb", str(kb), "--templates", str(TEMPLATES), "--out", str(out))

    assert result.exit_code == case["exit"], result.output
    if case["exit"] == 0:
        assert (out / "agents" / "tiny-agent.md").is_file()
        return
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert any(case["error"] in line for line in lines), result.output
    assert "Traceback" not in result.output
    assert snapshot(out) == before, "a failed build must leave the output folder as it was"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    kb = copy_minimal_kb(tmp_path)
    for case_id in ("unknown-key", "yaml-syntax-error", "missing-required-field"):
        apply_edit(kb, next(c for c in CASES if c["id"] == case_id))
    result = plumber("validate", "--kb", str(kb), "--templates", str(TEMPLATES))
    assert result.exit_code == 2
    assert len([line for line in result.output.splitlines() if line.startswith("error: ")]) == 3
