"""Every YAML file we read has limits: size, nesting depth, aliases and what they expand to.

Each attack is refused with one line naming the file (and line), exit 2, before the document is
expanded, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kb_support import TEMPLATES, copy_minimal_kb
from pipeline_plumber import frontmatter, render, yamlsource
from pipeline_plumber.errors import InputError
from pipeline_plumber.evals.answers import load_answer_file
from pipeline_plumber.evals.cases import load_checklists
from pipeline_plumber.kb import load_kb
from pipeline_plumber.live.prices import load_prices
from support.cli import plumber


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """`levels` anchors, each a list of `width` aliases to the one before: width**levels items."""
    lines = ["title: Mantras", 'l0: &l0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    lines.append(f"mantras: [*l{levels}]")
    return "\n".join(lines) + "\n"


def deep_nesting(depth: int = 999) -> str:
    return "title: Mantras\nmantras: " + "[" * depth + "]" * depth + "\n"


def many_aliases(count: int = 1000) -> str:
    """About 107 KB: one 100 KB anchor and `count` aliases to it."""
    return (f"title: Mantras\nbig: &big \"{'x' * 100_000}\"\n"
            f"mantras: [{', '.join(['*big'] * count)}]\n")


ATTACKS = {
    "billion laughs": (billion_laughs(),
                       "mantras.yaml:7: YAML aliases expand to more than 10000 nodes"),
    "999-deep nesting": (deep_nesting(), "mantras.yaml:2: YAML nests deeper than 64 levels"),
    "1000 aliases": (many_aliases(), "mantras.yaml:3: YAML has more than 100 aliases"),
    "2 MiB": ("title: Mantras\nmantras:\n" + "  - Keys first\n" * 150_000,
              "mantras.yaml: file is larger than 1 MiB"),
}


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("command", ["validate", "build"])
def test_hostile_kb_yaml_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, attack: str, command: str
) -> None:
    text, expected = ATTACKS[attack]
    kb = copy_minimal_kb(tmp_path)
    (kb / "mantras.yaml").write_text(text)
    out = tmp_path / "out"
    args = ["--kb", str(kb)]
    if command == "build":
        args += ["--templates", str(TEMPLATES), "--out", str(out)]

    result = plumber(command, *args)

    assert result.exit_code == 2, result.output
    assert len(result.output.splitlines()) == 1, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_aliases_within_the_limits_still_load() -> None:
    doc = yamlsource.parse_yaml("a: &a [1, 2]\nb: *a\nc: {d: *a}\n", "ok.yaml")
    assert doc.data == {"a": [1, 2], "b": [1, 2], "c": {"d": [1, 2]}}
    nested = "x: " + "[" * 63 + "]" * 63 + "\n"  # the mapping is the first level
    assert yamlsource.parse_yaml(nested, "deep.yaml").data is not None


def test_an_alias_cannot_smuggle_depth_past_the_limit() -> None:
    text = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    with pytest.raises(InputError, match=r"x.yaml:2: YAML nests deeper than 64 levels"):
        yamlsource.parse_yaml(text, "x.yaml")


def test_a_rendered_file_past_the_limit_is_refused_while_rendering(tmp_path: Path) -> None:
    kb = copy_minimal_kb(tmp_path)
    mantra = "Keys first " * 10_000  # 110 KB of text, five times over
    (kb / "mantras.yaml").write_text(
        f"title: Mantras\nmantras: [&m \"{mantra}\", *m, *m, *m, *m]\n")
    out = tmp_path / "out"
    result = plumber("build", "--kb", str(kb), "--templates", str(TEMPLATES), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"error: agent.md.j2: rendered output is larger than {render.MAX_RENDERED_CHARS // 1024}"
        " KiB; the knowledge base repeats itself (aliases or pasted text)"]
    assert not out.exists()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


LOADERS: dict[str, tuple[str, Callable[[Path], object], Callable[[str], str]]] = {
    "eval case checklists": ("kb/commands.yaml", lambda p: load_checklists(p.parent),
                             lambda body: body),
    "price table": ("prices.yaml", load_prices, lambda body: body),
    "answer front matter": ("answer.md", load_answer_file,
                            lambda body: "---\n" + body + "---\nThe answer.\n"),
    "knowledge base": ("kb/agent.yaml", lambda p: load_kb(p.parent), lambda body: body),
}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("attack", ["billion laughs", "999-deep nesting", "1000 aliases"])
def test_every_yaml_reader_has_the_limits(tmp_path: Path, loader: str, attack: str) -> None:
    name, load, wrap = LOADERS[loader]
    text = ATTACKS[attack][0].replace("mantras", "items")
    path = _write(tmp_path, name, wrap(text))
    with pytest.raises(InputError) as caught:
        load(path)
    messages = [str(p) for p in caught.value.problems]
    assert any(m.startswith(path.as_posix()) and "YAML" in m for m in messages), messages


def test_front_matter_past_the_limits_reads_as_absent() -> None:
    fields, body, _ = frontmatter.split("---\n" + billion_laughs() + "---\nbody\n")
    assert fields is None and body == "body\n"
    fields, _, _ = frontmatter.split("---\nname: x\n---\nbody\n")
    assert fields == {"name": "x"}
