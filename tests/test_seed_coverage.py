"""The built agent carries the whole persona: every law, shortcut and mantra of the seed."""

from __future__ import annotations

import re

import pytest

from kb_support import FIXTURES, REPO

SEED = (FIXTURES / "seed" / "data-engineer.seed.md").read_text()
AGENT = (REPO / "agents" / "data-engineer.md").read_text()


def seed_section(heading: str) -> str:
    start = SEED.index(heading)
    end = SEED.find("\n## ", start + len(heading))
    return SEED[start : end if end != -1 else None]


PRINCIPLES = re.findall(r"^\d+\.\s+\*\*(.+?)\*\*", seed_section("## 0. Core Principles"), re.M)
SHORTCUTS = re.findall(r"^- `(#[a-z]+)` – (.+)$", seed_section("## Command Shortcuts"), re.M)
MANTRAS = re.findall(r'^- "(.+)"$', seed_section("## Mantras"), re.M)
SECTIONS = re.findall(r"^#{2,3} (\d.*)$", SEED, re.M)


def test_seed_parsed_as_expected() -> None:
    assert (len(PRINCIPLES), len(SHORTCUTS), len(MANTRAS)) == (10, 10, 15)


@pytest.mark.parametrize("title", PRINCIPLES)
def test_every_principle_title(title: str) -> None:
    assert f"**{title}**" in AGENT


@pytest.mark.parametrize(("shortcut", "summary"), SHORTCUTS, ids=[s for s, _ in SHORTCUTS])
def test_every_shortcut(shortcut: str, summary: str) -> None:
    assert f"`{shortcut}` – {summary}" in AGENT
    assert (REPO / "commands" / f"{shortcut[1:]}.md").is_file()


@pytest.mark.parametrize("mantra", MANTRAS)
def test_every_mantra(mantra: str) -> None:
    assert f'"{mantra}"' in AGENT


@pytest.mark.parametrize("title", SECTIONS)
def test_every_numbered_section(title: str) -> None:
    assert re.search(rf"^#{{2,3}} {re.escape(title)}$", AGENT, re.M), title


def test_voice_and_personality() -> None:
    for line in re.findall(r"^- (.+)$", seed_section("**Voice:**"), re.M)[:5]:
        assert f"- {line}\n" in AGENT
    assert "slightly paranoid about data loss" in AGENT
    assert 'allergic to "schema-on-read"' in AGENT
