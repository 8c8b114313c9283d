"""Labels of hand-written answers: who may say why it is unusual or what it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_plumber.errors import InputError
from pipeline_plumber.evals.answers import load_answer_file


def _write(tmp_path: Path, front: str) -> Path:
    path = tmp_path / "answer.md"
    path.write_text(f"---\n{front}---\nThe answer.\n", encoding="utf-8")
    return path


def test_a_correct_answer_may_say_what_is_unusual_about_it(tmp_path: Path) -> None:
    answer = load_answer_file(_write(
        tmp_path, "provenance: hand-written correct\nreason: says recompute, not backfill\n"))
    assert answer.provenance == "correct"
    assert answer.label is not None and answer.label.reason == "says recompute, not backfill"


def test_a_reference_has_no_reason_and_a_correct_answer_fails_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"answer\.md:\d+: reason: "):
        load_answer_file(_write(tmp_path, "provenance: hand-written reference\nreason: x\n"))
    with pytest.raises(InputError, match=r"answer\.md:\d+: fails: "):
        load_answer_file(_write(tmp_path, "provenance: hand-written correct\nfails: [ddl]\n"))
