"""JSON that others write (recordings, judge votes, run folders) is read within limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline_plumber import jsonsource
from pipeline_plumber.evals.runner import RECORDING_FORMAT, RECORDING_VERSION, read_recording
from pipeline_plumber.live.run_folder import read_json, read_jsonl


def _recording(text: object) -> dict[str, object]:
    return {"format": RECORDING_FORMAT, "version": RECORDING_VERSION,
            "response": {"text": "answer", "extra": text}}


def test_a_plain_recording_reads(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_recording("fine")))
    assert read_recording(path) == _recording("fine")


@pytest.mark.parametrize("depth", [100, 100_000])
def test_a_deeply_nested_recording_is_not_a_recording(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "r.json"
    nested = "[" * depth + "]" * depth
    path.write_text(json.dumps(_recording(0))[:-2] + f', "x": {nested}}}}}')
    assert read_recording(path) is None
    assert read_json(path) is None


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_recording("x" * (jsonsource.MAX_JSON_BYTES + 1))))
    with pytest.raises(ValueError, match="larger than"):
        jsonsource.read_json_file(path)
    assert read_recording(path) is None


def test_a_deep_line_in_results_is_skipped_and_the_others_kept(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"a": 1}\n' + "[" * 50_000 + "]" * 50_000 + '\n{"b": 2}\n')
    assert list(read_jsonl(path)) == [{"a": 1}, {"b": 2}]


def test_depth_counts_arrays_and_objects() -> None:
    assert jsonsource.depth(1) == 0
    assert jsonsource.depth({"a": [1, {"b": []}]}) == 4
    assert jsonsource.loads_bounded("[" * 64 + "]" * 64) is not None
    with pytest.raises(ValueError, match="deeper than 64"):
        jsonsource.loads_bounded("[" * 65 + "]" * 65)
