"""`plumber install`, `plumber status`, `plumber uninstall`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import install as installer
from ..errors import CheckFailed
from ..paths import default_kb, default_templates
from ..words import plural
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
    keep (you changed it, or it is not ours: left as it is, the new version written beside it
    as <file>.new), overwrite (the same, with --force), remove (a file of ours the package no
    longer has), skip (the same, but changed: left alone). Running it again updates what we
    installed and nobody touched; the exit code is 0 when files were kept.
    """
    root = _root(scope, target)
    options = installer.InstallOptions(model=model, tools=tools, force=force)
    kb, templates = kb_dir or default_kb(), templates_dir or default_templates()
    lock = contextlib.nullcontext(False) if dry_run else installer.install_lock(root)
    with lock as root_created:
        plan = installer.prepare_install(kb, templates, root, options, root_created=root_created)
        for note in plan.notes:
            click.echo(f"note: {note}")
        if plan.changes_nothing:
            if not dry_run:
                installer.apply_install(plan)  # still clears what a killed install left
            click.echo(f"nothing to do: {plural(len(plan.actions), 'file')} in {root} already "
                       f"installed (pipeline-plumber {plan.manifest.version})")
            _echo_kept(root, plan.kept)
            return
        _echo_plan(f"plan for {root} (pipeline-plumber {plan.manifest.version}, model "
                   f"{plan.manifest.model or 'from the knowledge base'}):", plan.actions,
                   plan.manifest_status)
        if dry_run:
            click.echo("dry run: nothing written")
            return
        installer.apply_install(plan)
    statuses: list[str] = [*(a.status for a in plan.actions), plan.manifest_status]
    counts = [f"{statuses.count(status)} {word}" for status, word in (
        ("create", "created"), ("update", "updated"), ("keep", "kept"),
        ("overwrite", "overwritten (backed up)"), ("remove", "removed"))
        if statuses.count(status)]
    click.echo(f"installed into {root}: {', '.join(counts) or 'nothing changed'}; "
               f"commands: /{plan.manifest.namespace}:<name>")
    _echo_kept(root, plan.kept)


def _echo_plan(heading: str, actions: Sequence[object], manifest_status: str) -> None:
    """A plan as printed: the heading, one line per file, the manifest's line last."""
    click.echo(heading)
    for action in actions:
        click.echo(f"  {action}")
    click.echo(f"  {manifest_status:10} {installer.MANIFEST_NAME}")


def _echo_kept(root: Path, kept: list[installer.FileAction]) -> None:
    """Each kept file with the command that shows what the new version would change."""
    if not kept:
        return
    click.echo(f"kept {plural(len(kept), 'file')} you changed; the new version is beside each "
               "(merge it, or re-run with --force to overwrite, keeping a .bak):")
    for action in kept:
        click.echo(f"  diff {root / action.path} {root / str(action.new_file)}")


@cli.command()
@_where
@_kb_option
@_templates_option
def status(scope: str | None, target: Path | None, kb_dir: Path | None,
           templates_dir: Path | None) -> None:
    """Show what is installed and whether the package would install something else.

    Without --scope or --target, looks in ./.claude, then in ~/.claude, and says which it found.
    Lists each installed file as ok, changed or deleted since the install, the pending .new
    files beside changed ones, and compares the installed version and knowledge base with the
    package's. Exit 1 when nothing is installed.
    """
    searched = scope is None and target is None
    where: str = scope or "target"
    if searched:
        found = installer.find_install()
        root, where = found if found else (installer.install_root("project", None), "project")
    else:
        root = _root(scope, target)
    report = installer.status(kb_dir or default_kb(), templates_dir or default_templates(), root)
    if report is None:
        user = installer.install_root("user", None)
        click.echo(f"not installed in {root}" + (f" or {user}" if searched else "")
                   + f" (no {installer.MANIFEST_NAME}): run `plumber install` (or `plumber "
                   "install --scope user` for every project)")
        raise CheckFailed()
    manifest = report.manifest
    scope_note = {"project": " (project scope)", "user": " (user scope)"}.get(where, "")
    click.echo(f"installed in {root}{scope_note}: pipeline-plumber {manifest.version}, knowledge "
               f"base {manifest.kb_digest[:12]}, model "
               f"{manifest.model or 'from the knowledge base'}, "
               f"{plural(len(manifest.files), 'file')}")
    pending = set(report.pending)
    for file in report.files:
        note = {"ok": "", "changed": "  (changed since installed)",
                "deleted": "  (deleted since installed)"}[file.state]
        new_file = file.path + installer.NEW_SUFFIX
        if new_file in pending:
            note = f"  (changed since installed; kept, the new version is in {new_file})"
        click.echo(f"  {file.state:8} {file.path}{note}")
    changed = sum(f.state == "changed" for f in report.files)
    deleted = sum(f.state == "deleted" for f in report.files)
    click.echo(f"{changed} changed, {deleted} deleted, {len(pending)} pending .new")
    for new_file in report.pending:
        click.echo(f"  diff {root / new_file.removesuffix(installer.NEW_SUFFIX)} "
                   f"{root / new_file}")
    package = (f"package: pipeline-plumber {report.package_version}, knowledge base "
               f"{report.package_kb_digest[:12]}")
    if report.installed_is_newer:
        click.echo(f"{package}: older than the installed version")
    elif report.outdated:
        click.echo(f"{package}: differs from the install in "
                   f"{plural(len(report.outdated), 'file')}; run `plumber install` to update")
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
    if installer.plan_uninstall(root) is None:
        click.echo(f"nothing to uninstall in {root} (no {installer.MANIFEST_NAME})")
        return
    lock = contextlib.nullcontext(False) if dry_run else installer.install_lock(root)
    with lock:
        plan = installer.plan_uninstall(root)
        if plan is None:
            click.echo(f"nothing to uninstall in {root} (no {installer.MANIFEST_NAME})")
            return
        _echo_plan(f"uninstalling pipeline-plumber {plan.manifest.version} from {root}:",
                   plan.actions, "remove")
        if dry_run:
            click.echo("dry run: nothing removed")
            return
        result = installer.apply_uninstall(plan)
    kept = f": {', '.join(result.kept)}" if result.kept else ""
    click.echo(f"removed {plural(len(result.removed), 'file')}; kept {len(result.kept)} "
               f"changed{kept}")
