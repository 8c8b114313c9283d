"""`plumber build`, `plumber validate`, `plumber schema`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import build as builder
from ..errors import CheckFailed
from ..kb import FILE_MODELS, iter_examples, json_schemas
from ..paths import default_kb, default_templates
from . import cli

_kb_option = click.option(
    "--kb", "kb_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="Knowledge-base folder. Default: ./kb if present, else the one shipped with the package.",
)
_templates_option = click.option(
    "--templates", "templates_dir", type=click.Path(path_type=Path, file_okay=False),
    default=None, help="Jinja2 templates folder. Default: ./templates if present, else shipped.",
)


@cli.command()
@_kb_option
@_templates_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("."), show_default=True,
              help="Folder that receives agents/ and commands/.")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 and list the files that differ from a fresh build.")
def build(kb_dir: Path | None, templates_dir: Path | None, out_dir: Path, check: bool) -> None:
    """Render the agent and its commands from the knowledge base.

    The same knowledge base always gives the same bytes. Nothing is written unless the whole
    build succeeds. Stale files of ours (a command removed from the knowledge base) are deleted;
    other files in agents/ and commands/ are left alone.
    """
    pack = builder.build_pack(kb_dir or default_kb(), templates_dir or default_templates())
    if check:
        differences = builder.check(out_dir, pack)
        if differences:
            for change in differences:
                click.echo(f"stale: {change}")
            click.echo(f"{len(differences)} file(s) differ from a fresh build; run plumber build.")
            raise CheckFailed()
        click.echo(f"up to date: {len(pack.files)} files match a fresh build")
        return
    changes = builder.write(out_dir, pack)
    kinds = ("create", "update", "delete", "unchanged")
    counts = {kind: sum(c.kind == kind for c in changes) for kind in kinds}
    for change in changes:
        if change.kind != "unchanged":
            click.echo(str(change))
    click.echo(
        f"built {len(pack.files)} files into {out_dir}: {counts['create']} created, "
        f"{counts['update']} updated, {counts['delete']} deleted, {counts['unchanged']} unchanged"
    )


@cli.command()
@_kb_option
@_templates_option
def validate(kb_dir: Path | None, templates_dir: Path | None) -> None:
    """Check the knowledge base (schema, cross-references) and lint the rendered files.

    Lint covers front matter (parses, names, enum values, description lengths) and Markdown
    structure (one H1, no skipped heading levels, a language on every code fence, nothing
    Claude Code would run as shell).
    """
    pack = builder.build_pack(kb_dir or default_kb(), templates_dir or default_templates())
    kb = pack.kb
    examples = sum(1 for topic in (kb.persona, *kb.topics) for _ in iter_examples(topic))
    click.echo(
        f"ok: {len(kb.principles.principles)} principles, {len(kb.topics)} topics, "
        f"{examples} examples, {len(kb.commands.commands)} commands, "
        f"{len(kb.mantras.mantras)} mantras; {len(pack.files)} rendered files lint clean"
    )


_SCHEMA_NAMES = {name.split("/")[0].removesuffix(".yaml"): name for name in FILE_MODELS}


@cli.command()
@click.argument("file", required=False, type=click.Choice(sorted(_SCHEMA_NAMES)))
def schema(file: str | None) -> None:
    """Print the knowledge base's JSON Schema: every file's, or FILE's alone.

    FILE is agent, principles, persona, topics, commands or mantras. Point your editor's YAML
    language server at a file's schema for completion and inline errors.
    """
    schemas = json_schemas()
    chosen = schemas[_SCHEMA_NAMES[file]] if file else schemas
    click.echo(json.dumps(chosen, indent=2, ensure_ascii=False))
