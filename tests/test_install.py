"""`plumber install / status / uninstall` on real folders: plans, writes, manifests, refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from install_support import (
    AGENT,
    INSTALLED,
    MANIFEST,
    REPO,
    one_error,
    tree,
)
from pipeline_plumber import frontmatter
from pipeline_plumber import install as installer
from pipeline_plumber.build import build_pack
from pipeline_plumber.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, InputError
from support.cli import plumber
from support.pack_cache import PackCache

PACKS = PackCache(build_pack)


@pytest.fixture(autouse=True)
def render_each_input_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installs here plan and write for real; the pack they install is rendered once per input."""
    monkeypatch.setattr(installer, "build_pack", PACKS.build)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def installed(project: Path, *args: str) -> Path:
    result = plumber("install", *args, cwd=project)
    assert result.exit_code == 0, result.output
    return project / ".claude"


def manifest_of(root: Path) -> dict[str, object]:
    data = json.loads((root / MANIFEST).read_text())
    assert isinstance(data, dict)
    return data


def plan_lines(output: str) -> dict[str, str]:
    """{path: status} from the plan `install` prints."""
    lines = {}
    for line in output.splitlines():
        parts = line.split()
        if line.startswith("  ") and len(parts) >= 2 and parts[0] in (
            "create", "identical", "update", "keep", "overwrite", "remove", "skip",
        ):
            lines[parts[1]] = parts[0]
    return lines


# --- install: the plan and the files -------------------------------------------------------------


def test_dry_run_prints_the_plan_and_writes_nothing(project: Path) -> None:
    result = plumber("install", "--dry-run", cwd=project)
    assert result.exit_code == 0, result.output
    assert plan_lines(result.output) == {**dict.fromkeys(INSTALLED, "create"), MANIFEST: "create"}
    assert "dry run: nothing written" in result.output
    assert tree(project) == {}


def test_project_install_writes_agent_commands_and_manifest_last(project: Path) -> None:
    root = installed(project)
    files = {rel for rel, data in tree(root).items() if data is not None}
    assert files == {*INSTALLED, MANIFEST}
    agent, body, _ = frontmatter.split((root / AGENT).read_text())
    assert agent is not None and agent["name"] == "data-engineer"
    assert body == (REPO / AGENT).read_text().split("\n---\n", 1)[1]
    schema, _, _ = frontmatter.split((root / "commands/de/schema.md").read_text())
    # a project install names the agent bare; the repository's plugin names it de:data-engineer
    assert schema is not None and schema["agent"] == "data-engineer"
    manifest = manifest_of(root)
    assert manifest["version"] == installer.__version__
    assert manifest["files"] == {
        rel: installer.sha256((root / rel).read_bytes()) for rel in INSTALLED
    }
    assert manifest["dirs"] == [".", "agents", "commands", "commands/de"]
    assert not [p for p in root.rglob("*.tmp")]


def test_rerun_changes_nothing_and_says_so(project: Path) -> None:
    root = installed(project)
    before = tree(root)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    result = plumber("install", cwd=project)
    assert result.exit_code == 0
    assert "nothing to do: 11 files" in result.output
    assert tree(root) == before
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps


def test_user_scope_installs_under_home(tmp_path: Path, project: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = plumber("install", "--scope", "user", cwd=project, home=home)
    assert result.exit_code == 0, result.output
    assert (home / ".claude" / AGENT).is_file()
    assert (home / ".claude" / "commands/de/star.md").is_file()
    assert tree(project) == {}


def test_target_and_scope_together_is_a_usage_error(project: Path) -> None:
    result = plumber("install", "--scope", "user", "--target", "x", cwd=project)
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stderr.splitlines()[-1] == "error: give --scope or --target, not both"
    assert "Error:" not in result.stderr  # one prefix, click's usage errors included


def test_model_and_tools_are_rendered_and_remembered(project: Path) -> None:
    root = installed(project, "--model", "sonnet", "--tools", "Read, Grep,Glob")
    fields, _, _ = frontmatter.split((root / AGENT).read_text())
    assert fields is not None
    assert (fields["model"], fields["tools"]) == ("sonnet", ["Read", "Grep", "Glob"])

    again = plumber("install", cwd=project)
    assert "nothing to do" in again.output  # the choices are kept, not reset

    result = plumber("install", "--model", "opus", cwd=project)
    assert result.exit_code == 0
    # only the agent changes; we installed it and nobody touched it, so it is an update
    assert plan_lines(result.output)[AGENT] == "update"
    assert set(plan_lines(result.output).values()) == {"update", "identical"}
    fields, _, _ = frontmatter.split((root / AGENT).read_text())
    assert fields is not None and fields["model"] == "opus"

    installed(project, "--model", "default", "--tools", "default")
    fields, _, _ = frontmatter.split((root / AGENT).read_text())
    assert fields is not None and fields["model"] == "inherit" and "tools" not in fields


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt-4"], "--model 'gpt-4' is not a model Claude Code accepts"),
        (["--tools", "Read,,Grep"], "--tools 'Read,,Grep': give tool names separated by commas"),
    ],
    ids=["unknown-model", "empty-tool"],
)
def test_bad_options_are_one_line(project: Path, args: list[str], message: str) -> None:
    result = plumber("install", *args, cwd=project)
    assert result.exit_code == EXIT_BAD_INPUT
    assert message in one_error(result)
    assert tree(project) == {}


# --- conflicts -----------------------------------------------------------------------------------


def test_a_file_we_did_not_install_is_kept_and_the_new_version_written_beside_it(
    project: Path,
) -> None:
    theirs = project / ".claude" / AGENT
    theirs.parent.mkdir(parents=True)
    text = "---\nname: data-engineer\ndescription: another pack's\n---\nTheirs.\n"
    theirs.write_text(text)
    result = plumber("install", cwd=project)
    assert result.exit_code == 0, result.output
    assert plan_lines(result.output)[AGENT] == "keep"
    assert "not installed by pipeline-plumber; the new version goes beside it as " \
        f"{AGENT}.new" in result.output
    assert theirs.read_text() == text
    assert (project / ".claude" / f"{AGENT}.new").read_text() == (REPO / AGENT).read_text()
    assert (project / ".claude/commands/de/etl.md").is_file()

    dry = plumber("install", "--dry-run", cwd=project)
    assert dry.exit_code == 0
    assert "nothing to do" in dry.output


def test_force_overwrites_and_keeps_the_old_copy_beside_it(project: Path) -> None:
    theirs = project / ".claude" / AGENT
    theirs.parent.mkdir(parents=True)
    theirs.write_text("Theirs.\n")
    (theirs.parent / "data-engineer.md.bak").write_text("an older backup\n")
    result = plumber("install", "--force", cwd=project)
    assert result.exit_code == 0, result.output
    assert plan_lines(result.output)[AGENT] == "overwrite"
    assert "the old copy is kept as agents/data-engineer.md.bak.1" in result.output
    assert (theirs.parent / "data-engineer.md.bak.1").read_text() == "Theirs.\n"
    assert (theirs.parent / "data-engineer.md.bak").read_text() == "an older backup\n"
    assert theirs.read_text() == (REPO / AGENT).read_text()
    assert AGENT in manifest_of(project / ".claude")["files"]  # type: ignore[operator]


def test_a_file_changed_since_install_is_kept_without_force(project: Path) -> None:
    root = installed(project, "--model", "sonnet")
    edited = root / "commands/de/etl.md"
    edited.write_text(edited.read_text() + "\nMy own note.\n")
    result = plumber("install", "--model", "opus", cwd=project)
    assert result.exit_code == 0, result.output
    statuses = plan_lines(result.output)
    assert statuses["commands/de/etl.md"] == "keep"
    assert statuses[AGENT] == "update"
    assert "changed since pipeline-plumber installed it" in result.output
    assert "My own note." in edited.read_text()
    assert "model: opus" in (root / AGENT).read_text()


def kb_with_etl_changed(tmp_path: Path) -> Path:
    """A copy of the knowledge base whose next release changes only the `etl` command."""
    kb = tmp_path / "kb-next"
    shutil.copytree(REPO / "kb", kb)
    commands = kb / "commands.yaml"
    old = "A staging step and an idempotent load"
    assert commands.read_text().count(old) == 1
    commands.write_text(commands.read_text().replace(old, "A staging table and an idempotent load"))
    return kb


def test_an_upgrade_updates_around_an_edited_file(project: Path, tmp_path: Path) -> None:
    """Edit schema.md, ship a change to etl: etl is updated, schema kept, schema.md.new written,
    exit 0; status and a second run say so; --force overwrites with a .bak."""
    root = installed(project)
    schema = root / "commands/de/schema.md"
    schema.write_text(schema.read_text() + "\nOur team's naming rules.\n")
    edited = schema.read_text()
    kb = kb_with_etl_changed(tmp_path)

    result = plumber("install", "--kb", str(kb), cwd=project)
    assert result.exit_code == 0, result.output
    assert "error" not in result.output
    statuses = plan_lines(result.output)
    assert statuses["commands/de/etl.md"] == "update"
    assert statuses["commands/de/schema.md"] == "keep"
    assert {statuses[rel] for rel in INSTALLED if "etl" not in rel and "schema" not in rel} == {
        "identical"}
    assert "A staging table and an idempotent load" in (root / "commands/de/etl.md").read_text()
    assert schema.read_text() == edited
    new = root / "commands/de/schema.md.new"
    assert "Our team's naming rules." not in new.read_text()
    assert new.read_text() == (REPO / "commands/schema.md").read_text().replace(
        "agent: de:data-engineer", "agent: data-engineer")
    assert "installed into .claude: 2 updated, 1 kept;" in result.output  # etl + manifest
    assert "kept 1 file you changed" in result.output
    assert "  diff .claude/commands/de/schema.md .claude/commands/de/schema.md.new" in \
        result.output.splitlines()

    status = plumber("status", "--kb", str(kb), cwd=project)
    assert status.exit_code == 0, status.output
    assert ("  changed  commands/de/schema.md  (changed since installed; kept, the new version "
            "is in commands/de/schema.md.new)") in status.output
    assert "1 changed, 0 deleted, 1 pending .new" in status.output
    assert ": same as installed" in status.output

    again = plumber("install", "--kb", str(kb), cwd=project)
    assert again.exit_code == 0, again.output
    assert "nothing to do: 11 files in .claude already installed" in again.output
    assert "kept 1 file you changed" in again.output
    assert again.stderr == ""

    forced = plumber("install", "--kb", str(kb), "--force", cwd=project)
    assert forced.exit_code == 0, forced.output
    assert plan_lines(forced.output)["commands/de/schema.md"] == "overwrite"
    assert plan_lines(forced.output)["commands/de/schema.md.new"] == "remove"
    assert (root / "commands/de/schema.md.bak").read_text() == edited
    assert "Our team's naming rules." not in schema.read_text()
    assert not new.exists()
    after = plumber("status", "--kb", str(kb), cwd=project)
    assert "0 changed, 0 deleted, 0 pending .new" in after.output


def test_taking_the_new_version_clears_the_pending_file(project: Path) -> None:
    root = installed(project)
    schema = root / "commands/de/schema.md"
    schema.write_text("mine\n")
    assert plumber("install", cwd=project).exit_code == 0
    new = root / "commands/de/schema.md.new"
    assert new.is_file()
    schema.write_text(new.read_text())  # the user takes the new version but leaves .new
    result = plumber("install", cwd=project)
    assert plan_lines(result.output)["commands/de/schema.md.new"] == "remove"
    assert not new.exists()
    assert "0 changed, 0 deleted, 0 pending .new" in plumber("status", cwd=project).output


def test_reinstall_after_uninstall_keeps_the_edited_file(project: Path) -> None:
    root = installed(project)
    schema = root / "commands/de/schema.md"
    schema.write_text(schema.read_text() + "\nmine\n")
    edited = schema.read_text()
    assert plumber("uninstall", cwd=project).exit_code == 0
    assert schema.read_text() == edited
    result = plumber("install", cwd=project)
    assert result.exit_code == 0, result.output
    assert plan_lines(result.output)["commands/de/schema.md"] == "keep"
    assert schema.read_text() == edited
    assert (root / "commands/de/schema.md.new").is_file()
    assert "kept 1 file you changed" in result.output
    gone = plumber("uninstall", cwd=project)
    assert "remove     commands/de/schema.md.new" in gone.output
    assert tree(project) == {
        ".claude": None, ".claude/commands": None, ".claude/commands/de": None,
        ".claude/commands/de/schema.md": edited.encode(),
    }


def test_a_deleted_file_is_created_again(project: Path) -> None:
    root = installed(project)
    (root / "commands/de/dq.md").unlink()
    result = plumber("install", cwd=project)
    assert plan_lines(result.output)["commands/de/dq.md"] == "create"
    assert (root / "commands/de/dq.md").is_file()


def test_files_the_package_dropped_are_removed_or_skipped(project: Path) -> None:
    """A command of an older version: removed if untouched, left alone if changed."""
    root = installed(project)
    manifest = manifest_of(root)
    files = manifest["files"]
    assert isinstance(files, dict)
    for name, text in (("old", "old command\n"), ("edited", "edited old command\n")):
        (root / f"commands/de/{name}.md").write_text(text)
        files[f"commands/de/{name}.md"] = installer.sha256(text.replace("edited ", ""))
    (root / MANIFEST).write_text(json.dumps(manifest))
    result = plumber("install", cwd=project)
    assert result.exit_code == 0, result.output
    statuses = plan_lines(result.output)
    assert statuses["commands/de/old.md"] == "remove"
    assert statuses["commands/de/edited.md"] == "skip"
    assert not (root / "commands/de/old.md").exists()
    assert (root / "commands/de/edited.md").read_text() == "edited old command\n"
    assert set(manifest_of(root)["files"]) == set(INSTALLED)  # type: ignore[arg-type]


def test_a_failed_write_leaves_nothing_behind(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stage = installer.atomic.stage
    calls = 0

    def failing_stage(target: Path, content: str | bytes, *, durable: bool = False) -> Path:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise OSError(28, "No space left on device")
        return real_stage(target, content, durable=durable)

    monkeypatch.setattr(installer.atomic, "stage", failing_stage)
    result = plumber("install", cwd=project)
    assert result.exit_code == EXIT_BAD_INPUT
    assert one_error(result) == "error: cannot write to .claude: No space left on device"
    assert tree(project) == {}


# --- status --------------------------------------------------------------------------------------


def test_status_reports_changed_and_deleted_files(project: Path) -> None:
    root = installed(project)
    (root / "commands/de/etl.md").write_text("mine\n")
    (root / "commands/de/dq.md").unlink()
    result = plumber("status", cwd=project)
    assert result.exit_code == 0, result.output
    assert f"installed in .claude (project scope): pipeline-plumber {installer.__version__}" in (
        result.output)
    assert "  changed  commands/de/etl.md  (changed since installed)" in result.output
    assert "  deleted  commands/de/dq.md  (deleted since installed)" in result.output
    assert f"  ok       {AGENT}" in result.output
    assert "1 changed, 1 deleted, 0 pending .new" in result.output
    assert ": same as installed" in result.output


def test_status_says_when_the_package_would_install_something_else(
    project: Path, tmp_path: Path
) -> None:
    kb = tmp_path / "kb"
    shutil.copytree(REPO / "kb", kb)
    agent_yaml = kb / "agent.yaml"
    agent_yaml.write_text(agent_yaml.read_text().replace("Use this mindset", "Use this attitude"))
    installed(project, "--kb", str(kb))
    result = plumber("status", cwd=project)
    assert result.exit_code == 0, result.output
    assert "differs from the install in 1 file; run `plumber install` to update" in result.output
    update = plumber("install", cwd=project)
    assert plan_lines(update.output)[AGENT] == "update"
    assert ": same as installed" in plumber("status", cwd=project).output


def test_status_of_an_installed_newer_version(project: Path) -> None:
    root = installed(project)
    manifest = manifest_of(root)
    manifest["version"] = "99.0.0"
    (root / MANIFEST).write_text(json.dumps(manifest))
    result = plumber("status", cwd=project)
    assert result.exit_code == 0
    assert "older than the installed version" in result.output
    refused = plumber("install", cwd=project)
    assert refused.exit_code == EXIT_BAD_INPUT
    assert "installed by pipeline-plumber 99.0.0, newer than this" in one_error(refused)
    forced = plumber("install", "--force", cwd=project)
    assert forced.exit_code == 0, forced.output
    assert manifest_of(root)["version"] == installer.__version__


def test_status_when_nothing_is_installed(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = plumber("status", cwd=project, home=home)
    assert result.exit_code == EXIT_CHECK_FAILED
    assert f"not installed in .claude or {home / '.claude'}" in result.output
    assert "`plumber install --scope user`" in result.output


def test_status_finds_a_user_scope_install(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert plumber("install", "--scope", "user", cwd=project, home=home).exit_code == 0
    result = plumber("status", cwd=project, home=home)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"installed in {home / '.claude'} (user scope): ")
    installed(project)  # the project's install comes first
    project_first = plumber("status", cwd=project, home=home)
    assert project_first.output.startswith("installed in .claude (project scope): ")


# --- uninstall -----------------------------------------------------------------------------------


def test_uninstall_removes_ours_keeps_changed_and_everything_else(project: Path) -> None:
    root = project / ".claude"
    (root / "commands" / "other").mkdir(parents=True)
    (root / "commands" / "other" / "x.md").write_text("someone else's\n")
    (root / "settings.json").write_text("{}\n")
    installed(project)
    (root / "commands/de/etl.md").write_text("mine\n")
    result = plumber("uninstall", cwd=project)
    assert result.exit_code == 0, result.output
    assert "keep       commands/de/etl.md  (changed since it was installed; kept)" in result.output
    assert "kept 1 changed: commands/de/etl.md" in result.output
    assert tree(root) == {
        "commands": None,
        "commands/de": None,
        "commands/de/etl.md": b"mine\n",
        "commands/other": None,
        "commands/other/x.md": b"someone else's\n",
        "settings.json": b"{}\n",
    }


def test_uninstall_removes_the_folders_it_created_when_empty(project: Path) -> None:
    installed(project)
    result = plumber("uninstall", cwd=project)
    assert result.exit_code == 0, result.output
    assert "removed 11 files; kept 0 changed" in result.output
    assert not (project / ".claude").exists()
    assert tree(project) == {}


def test_uninstall_keeps_a_de_folder_that_was_there_before(project: Path) -> None:
    (project / ".claude" / "commands" / "de").mkdir(parents=True)
    installed(project)
    assert plumber("uninstall", cwd=project).exit_code == 0
    assert tree(project) == {".claude": None, ".claude/commands": None, ".claude/commands/de": None}


def test_uninstall_dry_run_and_nothing_installed(project: Path) -> None:
    root = installed(project)
    before = tree(root)
    result = plumber("uninstall", "--dry-run", cwd=project)
    assert result.exit_code == 0
    assert "dry run: nothing removed" in result.output
    assert tree(root) == before
    assert plumber("uninstall", cwd=project).exit_code == 0
    again = plumber("uninstall", cwd=project)
    assert again.exit_code == 0
    assert "nothing to uninstall in .claude" in again.output


# --- bad situations: one line, non-zero exit, nothing written ------------------------------------


def _corrupt(root: Path, text: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(text)


MANIFESTS = {
    "not-json": ("{not json", "corrupt manifest (not JSON"),
    "not-an-object": ("[]", "corrupt manifest (not a JSON object)"),
    "unknown-key": (None, "corrupt manifest (surprise: Extra inputs are not permitted)"),
    "path-escapes": (None, "corrupt manifest ('../../outside.md' points outside .claude)"),
    "newer-format": (None, "written by a newer pipeline-plumber (manifest format 2"),
}


def _bad_manifest(project: Path, case: str) -> None:
    text, _ = MANIFESTS[case]
    root = project / ".claude"
    if text is not None:
        _corrupt(root, text)
        return
    installed(project)
    manifest = manifest_of(root)
    if case == "unknown-key":
        manifest["surprise"] = 1
    elif case == "path-escapes":
        manifest["files"] = {"../../outside.md": "0" * 64}
    else:
        manifest["format"] = 2
    (root / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("command", ["install", "status", "uninstall"])
@pytest.mark.parametrize("case", sorted(MANIFESTS))
def test_a_bad_manifest_stops_every_command(project: Path, command: str, case: str) -> None:
    _bad_manifest(project, case)
    outside = project.parent / "outside.md"
    outside.write_text("not ours\n")
    before = tree(project)
    result = plumber(command, cwd=project)
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert MANIFESTS[case][1] in one_error(result)
    assert tree(project) == before
    assert outside.read_text() == "not ours\n"


def test_force_installs_over_a_corrupt_manifest_but_not_a_newer_one(project: Path) -> None:
    _bad_manifest(project, "not-json")
    result = plumber("install", "--force", cwd=project)
    assert result.exit_code == 0, result.output
    assert "note: ignoring the corrupt manifest" in result.output
    _bad_manifest(project, "newer-format")
    refused = plumber("install", "--force", cwd=project)
    assert refused.exit_code == EXIT_BAD_INPUT
    assert "upgrade pipeline-plumber" in one_error(refused)


def test_target_that_is_a_file(project: Path) -> None:
    (project / "file").write_text("x\n")
    for command in ("install", "status", "uninstall"):
        result = plumber(command, "--target", "file", cwd=project)
        assert result.exit_code == EXIT_BAD_INPUT
        assert one_error(result) == (
            "error: file is a file, not a folder: pass --target with a folder"
        )
    nested = plumber("install", "--target", "file/.claude", cwd=project)
    assert nested.exit_code == EXIT_BAD_INPUT
    assert one_error(nested) == "error: cannot create file/.claude: file is a file, not a folder"


def test_symlinked_claude_folder_is_refused_with_the_way_out(project: Path, tmp_path: Path) -> None:
    real = tmp_path / "dotfiles-claude"
    real.mkdir()
    (project / ".claude").symlink_to(real)
    for command in ("install", "status", "uninstall"):
        result = plumber(command, cwd=project)
        assert result.exit_code == EXIT_BAD_INPUT
        assert one_error(result) == (
            f"error: .claude is a symlink to {real}; refusing to write through it: "
            f"pass --target {real} to install there"
        )
    assert tree(real) == {}
    assert plumber("install", "--target", str(real), cwd=project).exit_code == 0
    assert (real / AGENT).is_file()


def test_symlinked_commands_folder_is_refused(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / ".claude").mkdir()
    (project / ".claude" / "commands").symlink_to(elsewhere)
    result = plumber("install", cwd=project)
    assert result.exit_code == EXIT_BAD_INPUT
    assert "error: .claude/commands is a symlink to" in one_error(result)
    assert tree(elsewhere) == {}


def test_unwritable_target(tmp_path: Path, project: Path) -> None:
    if os.geteuid() == 0:  # root writes through file modes; sysfs refuses everyone
        target = Path("/sys/pipeline-plumber-test/.claude")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        target = locked / ".claude"
    result = plumber("install", "--target", str(target), cwd=project)
    assert result.exit_code == EXIT_BAD_INPUT
    assert one_error(result).startswith(f"error: cannot write to {target}: ")
    assert not target.exists()


def test_an_agent_name_that_would_escape_the_target(project: Path, tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    shutil.copytree(REPO / "kb", kb)
    agent_yaml = kb / "agent.yaml"
    agent_yaml.write_text(agent_yaml.read_text().replace("name: data-engineer", "name: ../../x"))
    result = plumber("install", "--kb", str(kb), cwd=project)
    assert result.exit_code == EXIT_BAD_INPUT
    assert "agent.yaml:2: name: " in one_error(result)
    assert tree(project) == {}
    assert not (tmp_path / "x.md").exists()


@pytest.mark.parametrize("rel", ["../x.md", "agents/../../x.md", "/etc/x.md", ""])
def test_plan_refuses_paths_outside_the_root(tmp_path: Path, rel: str) -> None:
    """The last line of defence, below the knowledge base's own name check."""
    manifest = installer.ManifestFile(
        format=1, package="pipeline-plumber", version="0", kb_digest="", agent="x",
        namespace="de", model=None, tools=None, files={}, dirs=[],
    )
    with pytest.raises(InputError, match="would be written outside"):
        installer.plan_install(tmp_path / ".claude", {rel: "x"}, manifest, None)


# --- one install at a time, and what a killed one leaves ----------------------------------------


def run_plumber(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """`plumber ARGS` in its own process, as a second terminal would run it."""
    return subprocess.Popen([sys.executable, "-m", "pipeline_plumber", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def blocked_on_a_lock() -> set[int]:
    """The processes waiting for an flock, from the kernel's own list (`-> FLOCK ... <pid>`)."""
    waiting = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[2] == "FLOCK":
            waiting.add(int(fields[5]))
    return waiting


def wait_until_blocked(runs: list[subprocess.Popen[str]]) -> None:
    """Return once every run is waiting for the lock: no guessing how long start-up takes."""
    pids = {run.pid for run in runs}
    deadline = time.monotonic() + 120
    while not pids <= blocked_on_a_lock():
        for run in runs:
            assert run.poll() is None, run.stdout.read() if run.stdout else run.returncode
        assert time.monotonic() < deadline, "the installs never reached the lock"
        time.sleep(0.01)


def test_concurrent_installs_into_a_new_target_leave_a_complete_manifest(tmp_path: Path) -> None:
    """Two installs wait on a third that made the new folder; when it ends without installing
    (and so removes the folder), they race to make it again: one installs, one finds it done."""
    target = tmp_path / "team" / ".claude"
    target.parent.mkdir()
    with installer.install_lock(target) as created:
        assert created
        runs = [run_plumber("install", "--target", str(target), cwd=tmp_path) for _ in range(2)]
        wait_until_blocked(runs)
    outputs = [(run.wait(timeout=120), run.stdout.read() if run.stdout else "") for run in runs]
    assert [code for code, _ in outputs] == [0, 0], outputs
    assert sum("nothing to do" in out for _, out in outputs) == 1, outputs
    assert manifest_of(target)["dirs"] == [".", "agents", "commands", "commands/de"]
    assert {rel for rel, data in tree(target).items() if data is not None} == {*INSTALLED, MANIFEST}
    assert plumber("uninstall", "--target", str(target), cwd=tmp_path).exit_code == 0
    assert not target.exists()


def test_the_lock_makes_a_second_install_wait(project: Path) -> None:
    root = project / ".claude"
    with installer.install_lock(root) as created:
        assert created
        second = run_plumber("install", cwd=project)
        wait_until_blocked([second])
        assert not (root / MANIFEST).exists()
    assert second.wait(timeout=120) == 0
    assert manifest_of(root)["dirs"] == [".", "agents", "commands", "commands/de"]
    assert not (root / installer.LOCK_NAME).exists()


KILLED_MID_INSTALL = """
import os, signal, sys
from pipeline_plumber import atomic
from pipeline_plumber.cli import main
atomic.commit = lambda tmp, target, durable=False: os.kill(os.getpid(), signal.SIGKILL)
sys.argv = ["plumber", "install"]
main()
"""


def test_a_killed_install_leaves_temporary_files_the_next_run_removes(project: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_INSTALL], cwd=project, check=False,
                            capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    root = project / ".claude"
    left = sorted(p.name for p in root.rglob(".*") if p.is_file() and "tmp" in p.name)
    assert len(left) == 12, left  # 11 files and the manifest were staged, none renamed
    theirs = root / "agents" / ".notes.txt.a1b2c3d4.tmp"
    theirs.write_text("another tool's temporary file\n")

    result = plumber("install", cwd=project)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in root.rglob("*tmp")) == [theirs.name], result.output
    assert plumber("uninstall", cwd=project).exit_code == 0
    # the folders the killed run made are not in any manifest, so they stay
    assert tree(root) == {"agents": None, f"agents/{theirs.name}": theirs.read_bytes(),
                          "commands": None, "commands/de": None}
