"""The one atomic writer: whole files, the umask's mode, recognisable temporary names."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_plumber import atomic


@pytest.fixture
def umask() -> Iterator[None]:
    saved = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(saved)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_the_written_file_has_the_mode_the_umask_gives(
    tmp_path: Path, umask: None, mask: int, expected: int
) -> None:
    os.umask(mask)
    target = tmp_path / "sub" / "out.json"
    atomic.write_atomic(target, "{}\n", durable=True)
    assert target.read_text() == "{}\n"
    assert _mode(target) == expected
    assert os.listdir(target.parent) == ["out.json"]


def test_replaces_whole_and_keeps_bytes_exact(tmp_path: Path) -> None:
    target = tmp_path / "a.md"
    target.write_text("old\n")
    atomic.write_atomic(target, "line\r\nnext\n")
    assert target.read_bytes() == b"line\r\nnext\n"
    atomic.write_atomic(target, b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("kept\n")
    with pytest.raises(UnicodeEncodeError):
        atomic.write_atomic(target, "\udcff")
    assert target.read_text() == "kept\n"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_temporary_names_are_recognisable_and_found_when_stale(tmp_path: Path) -> None:
    target = tmp_path / "agent.md"
    staged = atomic.stage(target, "x")
    assert staged.parent == tmp_path
    assert staged.name.startswith(".agent.md.") and staged.name.endswith(".plumber-tmp")
    assert atomic.is_temp_name(staged.name)
    (tmp_path / ".agent.md.abc.tmp").write_text("someone else's\n")
    (tmp_path / "agent.plumber-tmp").write_text("not hidden: not ours\n")
    assert atomic.stale_temp_files(tmp_path) == [staged]
    atomic.commit(staged, target)
    assert target.read_text() == "x"
    assert atomic.stale_temp_files(tmp_path) == []


def test_a_symlink_at_the_temporary_name_is_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("safe\n")
    names = iter([tmp_path / ".t.planted.plumber-tmp", tmp_path / ".t.fresh.plumber-tmp"])
    (tmp_path / ".t.planted.plumber-tmp").symlink_to(victim)
    monkeypatch.setattr(atomic, "temp_path", lambda target: next(names))
    atomic.write_atomic(tmp_path / "t", "new\n")
    assert victim.read_text() == "safe\n"
    assert (tmp_path / "t").read_text() == "new\n"
