"""The README stays true: its CLI reference is the commands' own help, its quick start runs."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

from kb_support import REPO


def load_clidoc() -> ModuleType:
    """scripts/clidoc.py, a development script outside the package, loaded from its file."""
    spec = importlib.util.spec_from_file_location("clidoc", REPO / "scripts" / "clidoc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_help() -> None:
    readme = (REPO / "README.md").read_text()
    assert load_clidoc().splice(readme) == readme, "run: python scripts/clidoc.py README.md"


def test_quick_start_commands_are_make_targets_and_ci_runs_the_test_one() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make \w+)", quick, re.M)
    assert commands == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    for command in commands:
        assert re.search(rf"^{command.split()[1]}:", makefile, re.M), command
    assert "make test" in (REPO / ".ci" / "run").read_text()
