"""The real Claude Code 2.1.328 validator accepts the built pack laid out in a project."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kb_support import REPO, TEMPLATES
from pipeline_plumber.build import build_pack
from pipeline_plumber.install import project_layout


def lay_out_project(project: Path) -> None:
    """The built files where Claude Code looks in a project, laid out as `install` lays them."""
    pack = build_pack(REPO / "kb", TEMPLATES, plugin=False)
    for rel, text in project_layout(pack.files, pack.kb.agent.namespace).items():
        target = project / ".claude" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def validate(claude_cli: Path, folder: Path, home: Path) -> subprocess.CompletedProcess[str]:
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [str(claude_cli), "plugin", "validate", "--strict", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "HOME": str(home),
            "PATH": "/usr/bin:/bin",
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        },
    )


def test_strict_validation_passes_on_the_built_pack(claude_cli: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    lay_out_project(project)
    assert len(list((project / ".claude" / "commands" / "de").glob("*.md"))) == 10
    result = validate(claude_cli, project, tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_catches_a_broken_agent(claude_cli: Path, tmp_path: Path) -> None:
    """The same check fails without the agent's description: the pass above means something."""
    project = tmp_path / "project"
    lay_out_project(project)
    agent = project / ".claude" / "agents" / "data-engineer.md"
    agent.write_text(
        "\n".join(
            line for line in agent.read_text().splitlines() if not line.startswith("description:")
        )
    )
    result = validate(claude_cli, project, tmp_path / "home")
    assert result.returncode == 1, result.stdout + result.stderr
