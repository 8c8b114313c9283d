"""`plumber install`, `plumber status`, `plumber uninstall`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import install as installer
from ..errors import EXIT_CHECK_FAILED
from ..paths import default_kb, default_templates
from . import cli
from .build import _kb_option, _templates_option

F = TypeVar("F", bound=Callable[..., Any])


def _where(command: F) -> F:
    command = click.option(
        "--target", type=click.Path(path_type=Path), default=None,
        help="Install into this folder instead (it plays the part of .claude).",
    )(command)
    return click.option(
        "--scope", type=click.Choice(["project", "user"]), default=None,
        help="project: ./.claude (the default); user: ~/.claude.",
    )(command)


def _root(scope: str | None, target: Path | None) -> Path:
    if scope is not None and target is not None:
        raise click.UsageError("give --scope or --target, not both")
    return installer.install_root("user" if scope == "user" else "project", target)


@cli.command()
@_where
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option("--force", is_flag=True,
              help="Overwrite files we did not install or that were changed since; each old "
                   "copy is kept beside it as <file>.bak.")
@click.option("--model", default=None, metavar="MODEL",
              help="The agent's model: inherit, sonnet, opus, haiku or a full id; 'default' for "
                   "the knowledge base's. Remembered by later installs.")
@click.option("--tools", default=None, metavar="LIST",
              help="Tools the agent may use, comma-separated (e.g. Read,Grep,Glob,Bash); "
                   "'default' for the knowledge base's (all tools). Remembered by later installs.")
@_kb_option
@_templates_option
def install(scope: str | None, target: Path | None, dry_run: bool, force: bool,
            model: str | None, tools: str | None, kb_dir: Path | None,
            templates_dir: Path | None) -> None:
    """Install the agent and the /de: commands into .claude (or ~/.claude, or --target).

    The agent goes to <root>/agents/, the commands to <root>/commands/de/, and a manifest of
    what was written (version, knowledge-base hash, each file's sha256) to
    <root>/.pipeline-plumber.json. Each file gets a status first: create, identical, update,
    conflict (not ours, or changed since we installed it: needs --force), remove (a file of
    ours the package no longer has), skip (the same, but changed: left alone). Running it again
    updates what we installed and nobody touched.
    """
    root = _root(scope, target)
    plan = installer.prepare_install(
        kb_dir or default_kb(), templates_dir or default_templates(), root,
        installer.InstallOptions(model=model, tools=tools, force=force),
    )
    for note in plan.notes:
        click.echo(f"note: {note}")
    if plan.changes_nothing:
        click.echo(f"nothing to do: {len(plan.actions)} files in {root} are already installed "
                   f"and identical (pipeline-plumber {plan.manifest.version})")
        return
    click.echo(f"plan for {root} (pipeline-plumber {plan.manifest.version}, "
               f"model {plan.manifest.model or 'from the knowledge base'}):")
    for action in plan.actions:
        click.echo(f"  {action}")
    click.echo(f"  {plan.manifest_status:10} {installer.MANIFEST_NAME}")
    refusal = plan.refusal()
    if dry_run:
        if refusal:
            raise refusal
        click.echo("dry run: nothing written")
        return
    done = installer.apply_install(plan)
    counts = {status: sum(a.status == status for a in done)
              for status in ("create", "update", "conflict", "remove")}
    click.echo(
        f"installed into {root}: {counts['create']} created, {counts['update']} updated, "
        f"{counts['conflict']} overwritten (backed up), {counts['remove']} removed; "
        f"commands: /{plan.manifest.namespace}:<name>"
    )


@cli.command()
@_where
@_kb_option
@_templates_option
def status(scope: str | None, target: Path | None, kb_dir: Path | None,
           templates_dir: Path | None) -> None:
    """Show what is installed and whether the package would install something else.

    Lists each installed file as ok, changed or deleted since the install, and compares the
    installed version and knowledge base with the package's. Exit 1 when nothing is installed.
    """
    root = _root(scope, target)
    report = installer.status(kb_dir or default_kb(), templates_dir or default_templates(), root)
    if report is None:
        click.echo(f"not installed in {root} (no {installer.MANIFEST_NAME})")
        raise SystemExit(EXIT_CHECK_FAILED)
    manifest = report.manifest
    click.echo(f"installed in {root}: pipeline-plumber {manifest.version}, knowledge base "
               f"{manifest.kb_digest[:12]}, model {manifest.model or 'from the knowledge base'}, "
               f"{len(manifest.files)} files")
    for file in report.files:
        note = {"ok": "", "changed": "  (changed since installed)",
                "deleted": "  (deleted since installed)"}[file.state]
        click.echo(f"  {file.state:8} {file.path}{note}")
    changed = sum(f.state == "changed" for f in report.files)
    deleted = sum(f.state == "deleted" for f in report.files)
    click.echo(f"{changed} changed, {deleted} deleted")
    package = (f"package: pipeline-plumber {report.package_version}, knowledge base "
               f"{report.package_kb_digest[:12]}")
    if report.installed_is_newer:
        click.echo(f"{package}: older than the installed version")
    elif report.outdated:
        click.echo(f"{package}: differs from the install in {len(report.outdated)} files; "
                   "run `plumber install` to update")
    else:
        click.echo(f"{package}: same as installed")


@cli.command()
@_where
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
def uninstall(scope: str | None, target: Path | None, dry_run: bool) -> None:
    """Remove what install wrote, keeping any file changed since.

    Changed files are kept (and listed), the manifest is removed, folders the install created
    are removed if empty, and nothing else is touched.
    """
    root = _root(scope, target)
    plan = installer.plan_uninstall(root)
    if plan is None:
        click.echo(f"nothing to uninstall in {root} (no {installer.MANIFEST_NAME})")
        return
    click.echo(f"uninstalling pipeline-plumber {plan.manifest.version} from {root}:")
    for action in plan.actions:
        click.echo(f"  {action}")
    click.echo(f"  {'remove':10} {installer.MANIFEST_NAME}")
    if dry_run:
        click.echo("dry run: nothing removed")
        return
    result = installer.apply_uninstall(plan)
    click.echo(f"removed {len(result.removed)} files; kept {len(result.kept)} changed"
               + (": " + ", ".join(result.kept) if result.kept else ""))
