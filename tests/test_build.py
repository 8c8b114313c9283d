"""`plumber build`: same input, same bytes; atomic writes; --check; template errors located."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kb_support import REPO, TEMPLATES, copy_minimal_kb, snapshot
from pipeline_plumber import atomic, frontmatter
from pipeline_plumber import build as builder
from pipeline_plumber.kb import load_kb
from support.cli import plumber
from support.pack_cache import PackCache

COMMAND_NAMES = ("schema", "etl", "optimize", "dq", "governance")
COMMAND_NAMES += ("partition", "index", "pipeline", "airflow", "star")


def test_committed_output_equals_a_fresh_build() -> None:
    pack = builder.build_pack(REPO / "kb", TEMPLATES)
    assert builder.check(REPO, pack) == []
    assert "agents/data-engineer.md" in pack.files
    assert sorted(p for p in pack.files if p.startswith("commands/")) == [
        f"commands/{name}.md"
        for name in sorted(
            COMMAND_NAMES
        )
    ]


def test_same_input_same_bytes_across_processes(tmp_path: Path) -> None:
    """This process and another with a different string-hash seed write the same bytes."""
    ours = os.environ.get("PYTHONHASHSEED", "random")
    other = str(int(ours) + 1) if ours.isdigit() else "1"  # "random": 1 in 2**32 to collide
    args = ["build", "--kb", str(REPO / "kb"), "--templates", str(TEMPLATES), "--out"]
    assert plumber(*args, str(tmp_path / "here")).exit_code == 0
    subprocess.run(
        [sys.executable, "-m", "pipeline_plumber", *args, str(tmp_path / "there")],
        check=True,
        env={**os.environ, "PYTHONHASHSEED": other},
        capture_output=True,
    )
    here = snapshot(tmp_path / "here")
    assert snapshot(tmp_path / "there") == here
    assert len(here) == len(builder.build_pack(REPO / "kb", TEMPLATES).files) + 1  # record


def test_rebuild_changes_nothing_and_says_so(tmp_path: Path) -> None:
    kb = copy_minimal_kb(tmp_path)
    args = ("build", "--kb", str(kb), "--templates", str(TEMPLATES), "--out", str(tmp_path / "o"))
    assert "3 created" in plumber(*args).output  # agent, command, the build's record
    second = plumber(*args)
    assert second.exit_code == 0
    assert "0 created, 0 updated, 0 deleted, 3 unchanged" in second.output


def test_check_reports_stale_files_and_writes_nothing(tmp_path: Path) -> None:
    kb = copy_minimal_kb(tmp_path)
    out = tmp_path / "o"
    base = ("--kb", str(kb), "--templates", str(TEMPLATES), "--out", str(out))
    assert plumber("build", *base).exit_code == 0
    assert plumber("build", "--check", *base).exit_code == 0

    (kb / "mantras.yaml").write_text("title: Mantras\nmantras:\n  - Keys first\n  - Keys last\n")
    before = snapshot(out)
    result = plumber("build", "--check", *base)
    assert result.exit_code == 1
    assert "stale: update    agents/tiny-agent.md (1 lines differ)" in result.output
    assert snapshot(out) == before


def _built_minimal(tmp_path: Path) -> tuple[Path, Path, tuple[str, ...]]:
    """A copy of the minimal knowledge base built once: (kb, output folder, build arguments)."""
    kb = copy_minimal_kb(tmp_path)
    out = tmp_path / "o"
    base = ("build", "--kb", str(kb), "--templates", str(TEMPLATES), "--out", str(out))
    assert plumber(*base).exit_code == 0
    return kb, out, base


def test_files_the_last_build_wrote_and_this_one_does_not_are_deleted(tmp_path: Path) -> None:
    kb, out, base = _built_minimal(tmp_path)
    agent_yaml = kb / "agent.yaml"
    agent_yaml.write_text(agent_yaml.read_text().replace("name: tiny-agent", "name: small-agent"))

    result = plumber(*base)

    assert result.exit_code == 0, result.output
    assert "delete    agents/tiny-agent.md" in result.output
    assert not (out / "agents" / "tiny-agent.md").exists()
    assert (out / "agents" / "small-agent.md").is_file()
    record = json.loads((out / builder.RECORD_PATH).read_text())
    assert record["files"] == ["agents/small-agent.md", "commands/keys.md"]


def test_a_hand_written_command_forking_into_the_agent_survives_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builder, "build_pack", PackCache(builder.build_pack).build)  # 4 builds
    out = tmp_path / "o"
    base = ("build", "--kb", str(REPO / "kb"), "--templates", str(TEMPLATES), "--out", str(out))
    assert plumber(*base).exit_code == 0
    mine = out / "commands" / "my-team-review.md"
    mine.write_text('---\ndescription: "Our review"\ncontext: fork\nagent: data-engineer\n---\n'
                    "Review $ARGUMENTS our way.\n")
    theirs = out / "agents" / "helper.md"
    theirs.write_text("---\nname: data-engineer\ndescription: x\n---\nHelp.\n")

    for args in (base, (*base[:1], "--check", *base[1:]), base):
        result = plumber(*args)
        assert result.exit_code == 0, result.output
        assert "delete " not in result.output  # a change line is "delete    <path>"

    assert mine.is_file() and theirs.is_file()


def test_a_tampered_record_deletes_nothing_outside_the_shapes_we_render(tmp_path: Path) -> None:
    _, out, base = _built_minimal(tmp_path)
    outside = tmp_path / "outside.md"
    keep = {"README.md": "mine\n", "commands/notes.txt": "mine\n", "commands/sub/x.md": "mine\n"}
    for rel, text in keep.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    outside.write_text("mine\n")
    (out / "commands" / "link.md").symlink_to(outside)
    names = [*keep, "../outside.md", "commands/link.md", "/etc/hostname", "commands/../README.md"]
    (out / builder.RECORD_PATH).write_text(json.dumps({"files": names}))

    result = plumber(*base)

    assert result.exit_code == 0, result.output
    assert "delete " not in result.output and "0 deleted" in result.output
    assert all((out / rel).read_text() == text for rel, text in keep.items())
    assert outside.read_text() == "mine\n" and (out / "commands" / "link.md").is_symlink()


def test_a_failed_write_leaves_the_output_as_it_was(tmp_path: Path) -> None:
    kb = copy_minimal_kb(tmp_path)
    out = tmp_path / "o"
    base = ("build", "--kb", str(kb), "--templates", str(TEMPLATES), "--out", str(out))
    plumber(*base)
    (kb / "agent.yaml").write_text((kb / "agent.yaml").read_text().replace("tiny.", "small."))
    (out / "commands" / "keys.md").unlink()
    (out / "commands").rmdir()
    (out / "commands").write_text("a file where a folder should be\n")
    before = snapshot(out)

    result = plumber(*base)

    assert result.exit_code == 2
    assert result.output.startswith("error: ") and len(result.output.splitlines()) == 1
    assert snapshot(out) == before
    assert not [p for p in out.rglob("*") if atomic.is_temp_name(p.name)], "temporary files left"


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664)])
def test_build_output_has_the_mode_the_umask_gives(
    tmp_path: Path, mask: int, expected: int
) -> None:
    kb = copy_minimal_kb(tmp_path)
    out = tmp_path / "o"
    saved = os.umask(mask)
    try:
        result = plumber("build", "--kb", str(kb), "--templates", str(TEMPLATES), "--out", str(out))
    finally:
        os.umask(saved)
    assert result.exit_code == 0, result.output
    modes = {p.relative_to(out).as_posix(): p.stat().st_mode & 0o777 for p in out.rglob("*.md")}
    assert modes and set(modes.values()) == {expected}, modes


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% if %}\n", "command.md.j2:1: template error"),
        ("---\n{{ front_matter }}---\n\n{{ command.nmae }}\n", "command.md.j2:4: template error"),
    ],
    ids=["syntax-error", "undefined-attribute"],
)
def test_template_errors_name_file_and_line(tmp_path: Path, template: str, expected: str) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    for source in TEMPLATES.iterdir():
        (templates / source.name).write_text(source.read_text())
    (templates / "command.md.j2").write_text(template)
    kb = copy_minimal_kb(tmp_path)
    result = plumber(
        "build", "--kb", str(kb), "--templates", str(templates), "--out", str(tmp_path / "o")
    )
    assert result.exit_code == 2
    assert expected in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_front_matter_reads_back_exactly_even_with_yaml_traps(tmp_path: Path) -> None:
    kb = copy_minimal_kb(tmp_path)
    tricky = "C# and #hashtags: [tables], {keys} & 'quotes' \"too\""
    (kb / "agent.yaml").write_text(
        (kb / "agent.yaml").read_text().replace("Use for tiny tasks.", json.dumps(tricky))
    )
    (kb / "commands.yaml").write_text(
        (kb / "commands.yaml").read_text().replace('"<table>"', '"[table] #1: name"')
    )
    pack = builder.build_pack(kb, TEMPLATES)

    agent, _, _ = frontmatter.split(pack.files["agents/tiny-agent.md"])
    command, _, _ = frontmatter.split(pack.files["commands/keys.md"])
    assert agent == {"name": "tiny-agent", "description": tricky, "model": "inherit"}
    assert command == {
        "description": "Suggest keys for a table",
        "argument-hint": "[table] #1: name",
        "context": "fork",
        "agent": "tiny-agent",
    }
    assert '\nargument-hint: "' in pack.files["commands/keys.md"]


def test_built_agent_front_matter() -> None:
    text = (REPO / "agents" / "data-engineer.md").read_text()
    fields, body, _ = frontmatter.split(text)
    assert fields is not None
    assert fields["name"] == "data-engineer"
    assert fields["model"] == "inherit"
    description = fields["description"]
    assert len(description.split()) <= 60
    for term in (
        "schema design",
        "DDL",
        "ETL/ELT",
        "pipeline",
        "data quality",
        "partitioning",
        "indexing",
        "Airflow",
        "star schema",
        "SQL tuning",
        "Use proactively when",
    ):
        assert term.lower() in description.lower(), term
    assert body.lstrip().startswith("# The Data Engineer (The Pipeline Plumber)")


def test_every_command_forks_into_the_agent_with_its_shortcut() -> None:
    kb = load_kb(REPO / "kb")
    for command in kb.commands.commands:
        text = (REPO / "commands" / f"{command.name}.md").read_text()
        fields, body, _ = frontmatter.split(text)
        assert fields is not None
        assert fields["description"] == command.description
        assert fields["argument-hint"] == command.argument_hint
        assert fields["context"] == "fork"
        assert fields["agent"].split(":")[-1] == "data-engineer"
        assert body.lstrip().startswith(f"#{command.name} $ARGUMENTS\n")
        for item in command.checklist:
            assert f"- {item.text}\n" in body
        assert f"{kb.commands.no_arguments_label}: {command.no_arguments}\n" in body
        for place in kb.example_places(command.examples):
            assert f"- `{place.id}`: under \"{place.section}\", the block that opens" in body


def test_json_schema_documents_every_field() -> None:
    result = plumber("schema")
    assert result.exit_code == 0
    schemas = json.loads(result.output)
    assert set(schemas) == {
        "agent.yaml",
        "practice.yaml",
        "principles.yaml",
        "persona.yaml",
        "topics/*.yaml",
        "commands.yaml",
        "mantras.yaml",
    }
    undocumented = []
    for name, schema in schemas.items():
        root = [] if "$ref" in schema else [("<root>", schema)]
        for model_name, model in [*root, *schema.get("$defs", {}).items()]:
            assert model.get("additionalProperties") is False, (name, model_name)
            for prop, spec in model.get("properties", {}).items():
                if "description" not in spec and "$ref" not in spec and "items" not in spec:
                    undocumented.append(f"{name}:{model_name}.{prop}")
    assert undocumented == []


def test_exported_schema_accepts_the_shipped_files_and_rejects_unknown_keys() -> None:
    import jsonschema

    schemas = json.loads(plumber("schema").output)
    kb = REPO / "kb"
    for name, schema in schemas.items():
        files = sorted(kb.glob(name))
        assert files, name
        for path in files:
            jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    bad = yaml.safe_load((kb / "mantras.yaml").read_text()) | {"mantra": "typo"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas["mantras.yaml"])


def test_module_entry_point_gives_one_line_and_no_traceback(tmp_path: Path) -> None:
    kb = copy_minimal_kb(tmp_path)
    (kb / "mantras.yaml").write_text("title: [\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline_plumber", "validate", "--kb", str(kb)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "mantras.yaml:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_error_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline_plumber", "build", "--nope"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
