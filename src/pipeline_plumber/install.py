"""Install the pack into a `.claude` folder the user owns, like a package: plan, then apply.

Planning reads the disk and writes nothing: every file gets a status (create, identical,
update, keep, overwrite, remove, skip) before anything is touched. Applying writes each file to a
temporary name first and renames it into place, then writes the manifest last: the package
version, the knowledge-base hash, the render options and each installed file's sha256. The
manifest is how a later install, `status` and `uninstall` tell a file we wrote and nobody
touched (safe to update or remove) from one the user changed.

A changed file is treated the way package managers treat edited configuration files (pacman's
`.pacnew`, dpkg's kept conffiles): it is kept, the package's version is written beside it as
`<name>.new` (Claude Code loads only `*.md`, so the `.new` file is inert), and the install goes
on with every other file. `--force` overwrites instead, keeping the old copy as `<name>.bak`.

One install at a time: `install_lock(root)` holds an flock on `<root>/.pipeline-plumber.lock`
from planning to the manifest, and removes the temporary files a killed install left behind.

    with install_lock(root) as created:
        plan = prepare_install(kb_dir, templates, root, InstallOptions(), root_created=created)
        apply_install(plan)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import __version__, atomic
from .build import build_pack
from .claude_code import MODEL_ALIASES, accepts_model
from .errors import InputError
from .jsonsource import MAX_JSON_BYTES, loads_bounded
from .render import RenderOptions

PACKAGE = "pipeline-plumber"
MANIFEST_NAME = ".pipeline-plumber.json"
LOCK_NAME = ".pipeline-plumber.lock"
NEW_SUFFIX = ".new"
"""The package's version of a file the user changed is written beside it as `<name>.new`."""
MANIFEST_FORMAT = 1
DEFAULT = "default"
"""`--model default` / `--tools default`: forget a remembered choice, use the knowledge base's."""

Scope = Literal["project", "user"]
FileStatus = Literal["create", "identical", "update", "keep", "overwrite", "remove", "skip"]
FileState = Literal["ok", "changed", "deleted"]
WRITES: tuple[FileStatus, ...] = ("create", "update", "overwrite")
"""The statuses that write the file itself (a kept file's `.new` is written on the side)."""
UninstallStatus = Literal["remove", "keep", "missing"]


class InstallError(InputError):
    """The install cannot start: bad target, unreadable manifest, unsafe path (exit 2)."""


class ManifestTooNew(InstallError):
    """The manifest was written in a format newer than this version reads."""


class ManifestFile(BaseModel):
    """`<root>/.pipeline-plumber.json`: what an install wrote, so the next one can tell our files
    from the user's. Written last, by a dumper, and read back against this schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = Field(description="Manifest format; a newer one than we read is refused.")
    package: Literal["pipeline-plumber"] = Field(description="The package that wrote it.")
    version: str = Field(description="That package's version.")
    kb_digest: str = Field(description="sha256 of the knowledge base the files were built from.")
    agent: str = Field(description="The agent's name.")
    namespace: str = Field(description="The commands' folder and prefix: /<namespace>:schema.")
    model: str | None = Field(description="`--model` given at install time; None: the kb's.")
    tools: list[str] | None = Field(description="`--tools` given at install time; None: the kb's.")
    files: dict[str, str] = Field(description="Each installed file (relative path) -> sha256.")
    dirs: list[str] = Field(
        description="Folders the install created (relative, '.' is the root); uninstall removes "
        "them when they are empty."
    )


@dataclass(frozen=True)
class InstallOptions:
    """What the user chose. None keeps the previous install's choice (or the kb's)."""

    model: str | None = None
    tools: str | None = None  # comma-separated
    force: bool = False


@dataclass(frozen=True)
class FileAction:
    path: str
    status: FileStatus
    reason: str = ""
    backup: str | None = None
    new_file: str | None = None
    """For `keep`: where the package's version goes (`<path>.new`)."""
    new_file_changes: bool = False
    """For `keep`: whether `new_file` must be (re)written; False when it already holds it."""

    def __str__(self) -> str:
        detail = self.reason
        if self.backup:
            detail += f"; --force: the old copy is kept as {self.backup}"
        if self.new_file:
            detail += f"; the new version {'goes' if self.new_file_changes else 'is'} beside it" \
                      f" as {self.new_file}"
        return f"{self.status:10} {self.path}" + (f"  ({detail})" if detail else "")

    @property
    def changes_something(self) -> bool:
        return self.status in (*WRITES, "remove") or self.new_file_changes


@dataclass(frozen=True)
class InstallPlan:
    root: Path
    actions: tuple[FileAction, ...]
    contents: dict[str, str]
    manifest: ManifestFile
    manifest_status: Literal["create", "identical", "update"]
    new_dirs: tuple[str, ...]
    force: bool
    notes: tuple[str, ...] = ()

    @property
    def kept(self) -> list[FileAction]:
        """Files the user changed: left as they are, the new version beside each as `.new`."""
        return [a for a in self.actions if a.status == "keep"]

    @property
    def changes_nothing(self) -> bool:
        return self.manifest_status == "identical" and not any(
            a.changes_something for a in self.actions
        )


@dataclass(frozen=True)
class InstalledFile:
    path: str
    state: FileState
    outdated: bool


@dataclass(frozen=True)
class StatusReport:
    root: Path
    manifest: ManifestFile
    files: tuple[InstalledFile, ...]
    pending: tuple[str, ...]
    """`<name>.new` files beside changed files, holding the installed package's version."""
    package_version: str
    package_kb_digest: str
    outdated: tuple[str, ...]
    """Paths a fresh install (same options) would create, change or remove."""

    @property
    def installed_is_newer(self) -> bool:
        return _version_key(self.manifest.version) > _version_key(self.package_version)


@dataclass(frozen=True)
class UninstallAction:
    path: str
    status: UninstallStatus

    def __str__(self) -> str:
        reason = {
            "remove": "",
            "keep": "changed since it was installed; kept",
            "missing": "already gone",
        }[self.status]
        return f"{self.status:10} {self.path}" + (f"  ({reason})" if reason else "")


@dataclass(frozen=True)
class UninstallPlan:
    root: Path
    actions: tuple[UninstallAction, ...]
    dirs: tuple[str, ...]
    manifest: ManifestFile


@dataclass(frozen=True)
class UninstallResult:
    removed: tuple[str, ...]
    kept: tuple[str, ...]
    removed_dirs: tuple[str, ...]


# --- where ---------------------------------------------------------------------------------------


def install_root(scope: Scope | None, target: Path | None, *, home: Path | None = None) -> Path:
    """`--target`, else `./.claude` (project scope, the default) or `~/.claude` (user scope)."""
    if target is not None:
        return target
    if scope == "user":
        return (home or Path.home()) / ".claude"
    return Path(".claude")


def check_root(root: Path) -> None:
    """Refuse a root we should not write into, with the reason and what to do instead."""
    if root.is_symlink():
        resolved = root.resolve()
        raise InstallError(
            f"{root} is a symlink to {resolved}; refusing to write through it: "
            f"pass --target {resolved} to install there"
        )
    if root.exists() and not root.is_dir():
        raise InstallError(f"{root} is a file, not a folder: pass --target with a folder")
    existing = root
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != root and not existing.is_dir():
        raise InstallError(f"cannot create {root}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InstallError(f"cannot write to {root}: {existing} is not writable")


def relative_path(rel: str, root: Path) -> PurePosixPath:
    """`rel` as a path that stays inside `root`; anything else is refused."""
    path = PurePosixPath(rel)
    if not rel or path.is_absolute() or any(part in ("", ".", "..") for part in path.parts):
        raise InstallError(
            f"{rel!r} would be written outside {root}: the agent's and the commands' names "
            "must be plain file names"
        )
    return path


def project_layout(files: dict[str, str], namespace: str) -> dict[str, str]:
    """The rendered pack as `.claude` holds it: commands in `commands/<namespace>/`, so they
    read `/<namespace>:schema`, the same as from the plugin."""
    laid_out = {}
    for rel, text in files.items():
        path = PurePosixPath(rel)
        if path.parts[0] == "commands":
            rel = str(PurePosixPath("commands", namespace, *path.parts[1:]))
        elif path.parts[0] != "agents":
            continue
        laid_out[rel] = text
    return laid_out


# --- the manifest ---------------------------------------------------------------------------------


def manifest_path(root: Path) -> Path:
    return root / MANIFEST_NAME


def read_manifest(root: Path) -> ManifestFile | None:
    """The manifest of the install in `root`; None if there is none."""
    path = manifest_path(root)
    if not path.exists():
        return None
    if not path.is_file():
        raise InstallError(f"{path}: the manifest is not a file: move it away")
    if path.stat().st_size > MAX_JSON_BYTES:  # a manifest lists ~15 files: a few KiB
        raise _corrupt(path, f"larger than {MAX_JSON_BYTES} bytes")
    try:
        data = loads_bounded(path.read_text(encoding="utf-8"))
    except ValueError as err:  # not UTF-8, not JSON, or nested too deeply
        raise _corrupt(path, f"not JSON ({err})") from err
    if not isinstance(data, dict):
        raise _corrupt(path, "not a JSON object")
    found = data.get("format")
    if isinstance(found, int) and found > MANIFEST_FORMAT:
        raise ManifestTooNew(
            f"{path}: written by a newer pipeline-plumber (manifest format {found}; this "
            f"version {__version__} reads format {MANIFEST_FORMAT}): upgrade pipeline-plumber"
        )
    try:
        manifest = ManifestFile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _corrupt(path, f"{where}: {first['msg']}") from err
    if manifest.format != MANIFEST_FORMAT:
        raise _corrupt(path, f"format {manifest.format} is unknown")
    for rel in [*manifest.files, *(d for d in manifest.dirs if d != ".")]:
        try:
            relative_path(rel, root)
        except InstallError as err:
            raise _corrupt(path, f"{rel!r} points outside {root}") from err
    return manifest


def _corrupt(path: Path, why: str) -> InstallError:
    return InstallError(
        f"{path}: corrupt manifest ({why}); delete it to forget the install, or re-run "
        "install with --force"
    )


def dump_manifest(manifest: ManifestFile) -> str:
    return json.dumps(manifest.model_dump(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- planning -----------------------------------------------------------------------------------


def render_options(options: InstallOptions, previous: ManifestFile | None) -> RenderOptions:
    """The user's choices, falling back to the previous install's, then the kb's."""
    model = options.model
    if model is None and previous is not None:
        model = previous.model
    if model == DEFAULT:
        model = None
    if model is not None and not accepts_model(model):
        raise InstallError(
            f"--model {model!r} is not a model Claude Code accepts: use {', '.join(MODEL_ALIASES)}"
            ", a full claude-... id, or 'default' for the knowledge base's"
        )
    tools: tuple[str, ...] | None
    if options.tools is None:
        tools = tuple(previous.tools) if previous and previous.tools is not None else None
    elif options.tools == DEFAULT:
        tools = None
    else:
        tools = tuple(t.strip() for t in options.tools.split(","))
        if not all(tools):
            raise InstallError(
                f"--tools {options.tools!r}: give tool names separated by commas, e.g. "
                "'Read,Grep,Glob,Bash', or 'default' for the knowledge base's"
            )
    return RenderOptions(model=model or None, tools=tools)


def prepare_install(
    kb_dir: Path,
    templates: Path,
    root: Path,
    options: InstallOptions = InstallOptions(),
    *,
    root_created: bool = False,
) -> InstallPlan:
    """Render the pack for a `.claude` folder and plan writing it into `root`. Writes nothing.
    `root_created`: `install_lock` made `root` for this install."""
    check_root(root)
    notes: list[str] = []
    try:
        previous = read_manifest(root)
    except ManifestTooNew:
        raise
    except InstallError:
        if not options.force:
            raise
        previous = None
        notes.append(f"ignoring the corrupt manifest {manifest_path(root)} (--force)")
    if previous and _version_key(previous.version) > _version_key(__version__):
        if not options.force:
            raise InstallError(
                f"{manifest_path(root)}: installed by pipeline-plumber {previous.version}, "
                f"newer than this {__version__}: upgrade, or pass --force to install "
                f"{__version__} over it"
            )
        notes.append(f"replacing pipeline-plumber {previous.version} with {__version__} (--force)")
    chosen = render_options(options, previous)
    pack = build_pack(kb_dir, templates, chosen, plugin=False)
    namespace = pack.kb.agent.namespace
    files = project_layout(pack.files, namespace)
    manifest = ManifestFile(
        format=MANIFEST_FORMAT,
        package=PACKAGE,
        version=__version__,
        kb_digest=pack.kb.digest,
        agent=pack.kb.agent.name,
        namespace=namespace,
        model=chosen.model,
        tools=list(chosen.tools) if chosen.tools is not None else None,
        files={rel: sha256(text) for rel, text in sorted(files.items())},
        dirs=[],
    )
    return plan_install(
        root, files, manifest, previous, force=options.force, notes=notes, root_created=root_created
    )


def plan_install(
    root: Path,
    files: dict[str, str],
    manifest: ManifestFile,
    previous: ManifestFile | None,
    *,
    force: bool = False,
    notes: Iterable[str] = (),
    root_created: bool = False,
) -> InstallPlan:
    """One status per file, decided from the disk and the previous manifest. Writes nothing.

    - create: no such file; identical: it already holds these bytes;
    - update: it holds what we installed last time, untouched since;
    - keep: it differs and we did not install it, or the user changed it since: it stays, and
      the new version is written beside it as `<name>.new`;
    - overwrite: as keep, with `force`: replaced, the old copy kept as `<name>.bak`;
    - remove: we installed it last time, the package no longer has it, nobody touched it
      (also a `.new` file of ours once the file beside it matches the package again);
    - skip: as remove, but the user changed it: left alone and no longer tracked.

    `root_created`: the caller created `root` for this install (`install_lock`), so uninstall
    may remove it.
    """
    for rel in files:
        relative_path(rel, root)
    check_root(root)
    known = previous.files if previous else {}
    actions: list[FileAction] = []
    for rel, text in sorted(files.items()):
        actions += _package_file_actions(root, rel, text, known, force=force)
    actions += _dropped_file_actions(root, files, known)
    new_dirs = _missing_dirs(root, files)
    manifest = manifest.model_copy(
        update={"dirs": _install_dirs(root, new_dirs, previous, root_created=root_created)}
    )
    return InstallPlan(
        root=root,
        actions=tuple(actions),
        contents=dict(files),
        manifest=manifest,
        manifest_status=_manifest_status(root, manifest),
        new_dirs=tuple(new_dirs),
        force=force,
        notes=tuple(notes),
    )


def _package_file_actions(
    root: Path, rel: str, text: str, known: dict[str, str], *, force: bool
) -> list[FileAction]:
    """What becomes of `rel`, a file of the package: create, identical, update, keep or
    overwrite, plus the removal of a `.new` file of ours it no longer needs."""
    target = root / rel
    _refuse_symlinked_parents(root, rel)
    if not target.exists() and not target.is_symlink():
        return [FileAction(rel, "create")]
    if target.is_dir() or target.is_symlink():
        what = "a folder" if target.is_dir() and not target.is_symlink() else "a symlink"
        raise InstallError(f"{target} is {what}, where the install puts a file: move it away")
    current = target.read_bytes()
    if current == text.encode("utf-8"):
        return [FileAction(rel, "identical"), *_stale_new_file(root, rel, text)]
    if rel in known and sha256(current) == known[rel]:
        return [FileAction(rel, "update")]
    reason = (
        "changed since pipeline-plumber installed it"
        if rel in known
        else "not installed by pipeline-plumber"
    )
    if force:
        return [
            FileAction(rel, "overwrite", reason, _backup_name(root, rel)),
            *_stale_new_file(root, rel, text),
        ]
    return [_keep(root, rel, text, reason)]


def _dropped_file_actions(
    root: Path, files: dict[str, str], known: dict[str, str]
) -> list[FileAction]:
    """The files we installed last time that the package no longer has: remove the untouched
    ones, skip (and stop tracking) the ones the user changed."""
    actions: list[FileAction] = []
    for rel, digest in sorted(known.items()):
        if rel in files:
            continue
        relative_path(rel, root)
        target = root / rel
        if not target.is_file():
            continue
        if sha256(target.read_bytes()) == digest:
            actions.append(FileAction(rel, "remove", "no longer part of the package"))
        else:
            actions.append(
                FileAction(rel, "skip", "no longer part of the package, but changed: left alone")
            )
    return actions


def _install_dirs(
    root: Path, new_dirs: list[str], previous: ManifestFile | None, *, root_created: bool
) -> list[str]:
    """The folders the manifest records as ours: those an earlier install made that still
    exist, those this one will make, and '.' when the root itself is new."""
    kept_dirs = [d for d in (previous.dirs if previous else []) if (root / d).is_dir()]
    if root_created:
        kept_dirs.append(".")
    return sorted({*kept_dirs, *new_dirs}, key=lambda d: (d != ".", d))


def _manifest_status(
    root: Path, manifest: ManifestFile
) -> Literal["create", "identical", "update"]:
    path = manifest_path(root)
    if not path.exists():
        return "create"
    if path.read_bytes() == dump_manifest(manifest).encode("utf-8"):
        return "identical"
    return "update"


def _keep(root: Path, rel: str, text: str, reason: str) -> FileAction:
    """Leave the user's file; plan the package's version beside it as `<rel>.new`."""
    new_rel = rel + NEW_SUFFIX
    new_path = root / new_rel
    if new_path.is_dir() or new_path.is_symlink():
        raise InstallError(f"{new_path} is a folder or a symlink, where the install puts the new "
                           f"version of {rel}: move it away")
    holds_it = new_path.is_file() and new_path.read_bytes() == text.encode("utf-8")
    return FileAction(rel, "keep", reason, new_file=new_rel, new_file_changes=not holds_it)


def _stale_new_file(root: Path, rel: str, text: str) -> list[FileAction]:
    """A `.new` file of ours that is no longer needed: the file beside it is the package's."""
    new_path = root / (rel + NEW_SUFFIX)
    if new_path.is_file() and not new_path.is_symlink() and new_path.read_bytes() == text.encode(
        "utf-8"
    ):
        return [FileAction(rel + NEW_SUFFIX, "remove", "the file beside it matches the package")]
    return []


def _refuse_symlinked_parents(root: Path, rel: str) -> None:
    parent = root
    for part in PurePosixPath(rel).parts[:-1]:
        parent = parent / part
        if parent.is_symlink():
            raise InstallError(
                f"{parent} is a symlink to {parent.resolve()}; refusing to write through it: "
                "replace it with a folder"
            )
        if parent.exists() and not parent.is_dir():
            raise InstallError(
                f"{parent} is a file, where the install needs a folder: move it away"
            )


def _missing_dirs(root: Path, files: Iterable[str]) -> list[str]:
    """The folders (relative to root, '.' for root itself) that writing `files` would create."""
    missing: set[str] = set()
    if not root.exists():
        missing.add(".")
    for rel in files:
        for parent in PurePosixPath(rel).parents:
            if str(parent) != "." and not (root / parent).exists():
                missing.add(str(parent))
    return sorted(missing, key=lambda d: (d != ".", d.count("/"), d))


def _backup_name(root: Path, rel: str) -> str:
    """`<file>.bak`, or `<file>.bak.1`, `.bak.2`... if taken. Claude Code reads only `*.md`."""
    candidate = f"{rel}.bak"
    n = 0
    while (root / candidate).exists() or (root / candidate).is_symlink():
        n += 1
        candidate = f"{rel}.bak.{n}"
    return candidate


# --- applying -----------------------------------------------------------------------------------


def apply_install(plan: InstallPlan) -> list[FileAction]:
    """Carry out `plan`: stage every new file, `.new` file and backup as a temporary file, then
    rename the backups and the files into place, remove stale files of ours, and rename the
    manifest last. A write error while staging leaves nothing behind. The temporary files a
    killed install left are removed first. Returns the actions that changed something."""
    root = plan.root
    remove_stale_temp_files(root, [*plan.contents, *(a.path for a in plan.actions)])
    if plan.changes_nothing:
        return []
    writes = [a for a in plan.actions if a.status in WRITES]
    created: list[Path] = []
    backups: list[tuple[Path, Path]] = []
    files: list[tuple[Path, Path]] = []
    manifest: list[tuple[Path, Path]] = []
    try:
        for rel in plan.new_dirs:
            directory = root / rel
            directory.mkdir()
            created.append(directory)
        for action in writes:
            target = root / action.path
            if action.backup:
                backup = root / action.backup
                backups.append((atomic.stage(backup, target.read_bytes()), backup))
            files.append((atomic.stage(target, plan.contents[action.path]), target))
        for action in plan.kept:
            if action.new_file and action.new_file_changes:
                target = root / action.new_file
                files.append((atomic.stage(target, plan.contents[action.path]), target))
        target = manifest_path(root)
        manifest.append((atomic.stage(target, dump_manifest(plan.manifest)), target))
    except OSError as err:
        for tmp, _ in [*backups, *files, *manifest]:
            tmp.unlink(missing_ok=True)
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise InstallError(f"cannot write to {root}: {err.strerror or err}") from err
    for tmp, target in [*backups, *files]:
        atomic.commit(tmp, target)
    for action in plan.actions:
        if action.status == "remove":
            (root / action.path).unlink(missing_ok=True)
    for tmp, target in manifest:
        atomic.commit(tmp, target)
    return [a for a in plan.actions if a.changes_something]


# --- status -------------------------------------------------------------------------------------


def status(kb_dir: Path, templates: Path, root: Path) -> StatusReport | None:
    """What is installed in `root` and how it compares with the package; None: nothing is."""
    if root.is_symlink():
        check_root(root)
    if root.exists() and not root.is_dir():
        check_root(root)
    manifest = read_manifest(root)
    if manifest is None:
        return None
    files = []
    pending = []
    for rel, digest in sorted(manifest.files.items()):
        path = root / rel
        if not path.is_file():
            state: FileState = "deleted"
        elif sha256(path.read_bytes()) == digest:
            state = "ok"
        else:
            state = "changed"
        files.append((rel, state))
        if state == "changed" and _holds(root / (rel + NEW_SUFFIX), digest):
            pending.append(rel + NEW_SUFFIX)
    options = RenderOptions(
        model=manifest.model, tools=tuple(manifest.tools) if manifest.tools is not None else None
    )
    pack = build_pack(kb_dir, templates, options, plugin=False)
    fresh = {
        rel: sha256(text)
        for rel, text in project_layout(pack.files, pack.kb.agent.namespace).items()
    }
    outdated = sorted(
        rel for rel in {*fresh, *manifest.files} if fresh.get(rel) != manifest.files.get(rel)
    )
    return StatusReport(
        root=root,
        manifest=manifest,
        files=tuple(InstalledFile(rel, state, rel in outdated) for rel, state in files),
        pending=tuple(pending),
        package_version=__version__,
        package_kb_digest=pack.kb.digest,
        outdated=tuple(outdated),
    )


# --- uninstall ----------------------------------------------------------------------------------


def plan_uninstall(root: Path) -> UninstallPlan | None:
    """Which of the manifest's files go (unchanged) and stay (changed); None: nothing installed.
    Writes nothing."""
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        check_root(root)
    manifest = read_manifest(root)
    if manifest is None:
        return None
    actions = []
    for rel, digest in sorted(manifest.files.items()):
        _refuse_symlinked_parents(root, rel)
        path = root / rel
        if not path.is_file():
            status_: UninstallStatus = "missing"
        elif sha256(path.read_bytes()) == digest:
            status_ = "remove"
        else:
            status_ = "keep"
        actions.append(UninstallAction(rel, status_))
        if status_ == "keep" and _holds(root / (rel + NEW_SUFFIX), digest):
            actions.append(UninstallAction(rel + NEW_SUFFIX, "remove"))
    dirs = sorted(manifest.dirs, key=lambda d: (d == ".", -d.count("/"), d))
    return UninstallPlan(root, tuple(actions), tuple(dirs), manifest)


def apply_uninstall(plan: UninstallPlan) -> UninstallResult:
    """Remove the unchanged files and the manifest, then the folders the install created if
    they are empty now. Everything else in the folder is left alone (but the temporary files
    a killed install left beside our files go too)."""
    remove_stale_temp_files(plan.root, [a.path for a in plan.actions])
    removed = []
    for action in plan.actions:
        if action.status == "remove":
            (plan.root / action.path).unlink()
            removed.append(action.path)
    manifest_path(plan.root).unlink()
    removed_dirs = []
    for rel in plan.dirs:
        directory = plan.root / rel
        if not directory.is_dir() or directory.is_symlink():
            continue
        left = {entry.name for entry in directory.iterdir()}
        if rel == "." and left == {LOCK_NAME}:
            (directory / LOCK_NAME).unlink()  # our own lock: the folder is empty otherwise
            left = set()
        if not left:
            directory.rmdir()
            removed_dirs.append(rel)
    return UninstallResult(
        removed=tuple(removed),
        kept=tuple(a.path for a in plan.actions if a.status == "keep"),
        removed_dirs=tuple(removed_dirs),
    )


# --- one install at a time ----------------------------------------------------------------------

_STALE_TEMP = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{6,16}\.(?:tmp|plumber-tmp)$")
"""The temporary names our writers use: `.<name>.<random>.tmp` (and `.plumber-tmp`)."""


@contextlib.contextmanager
def install_lock(root: Path) -> Iterator[bool]:
    """Hold an exclusive lock on `root` while planning and applying an install or uninstall, so
    two installs into the same folder run one after the other and each plans from what the
    other wrote. Creates `root` if needed and yields whether it did (so the manifest can claim
    it); on exit removes the lock file, and `root` itself if it was created and is still empty.
    Making `root` and taking its lock, and removing them, happen under a lock on the parent
    folder, so the install that makes the folder is the first to hold it."""
    check_root(root)
    lock = root / LOCK_NAME
    while True:
        with _parent_locked(root):
            created = _make_root(root)
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as err:
                raise InstallError(f"cannot lock {root}: {err.strerror or err}") from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                waiting = False
            except BlockingIOError:
                waiting = True
        if waiting:
            fcntl.flock(fd, fcntl.LOCK_EX)  # outside the parent's lock: the holder needs it
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before us removed this lock file: take the new one
    try:
        yield created
    finally:
        with _parent_locked(root):
            lock.unlink(missing_ok=True)
            if created:
                with contextlib.suppress(OSError):
                    root.rmdir()  # only succeeds when nothing was installed (dry run, failure)
        os.close(fd)


@contextlib.contextmanager
def _parent_locked(root: Path) -> Iterator[None]:
    """An exclusive lock on the folder that holds `root`, for the moments `root` and its lock
    file come and go."""
    try:
        fd = os.open(root.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise InstallError(f"cannot write to {root}: {err.strerror or err}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _make_root(root: Path) -> bool:
    if root.is_dir():
        return False
    try:
        root.mkdir()
    except FileExistsError:
        return False
    except OSError as err:
        raise InstallError(f"cannot write to {root}: {err.strerror or err}") from err
    return True


def remove_stale_temp_files(root: Path, rels: Iterable[str]) -> list[Path]:
    """Delete the temporary files an interrupted install left beside the files it writes:
    `.<name>.<random>.tmp` where <name> is one of `rels`, its `.new` or `.bak`, or the
    manifest. Nothing of anyone else's is touched."""
    names: dict[Path, set[str]] = {root: {MANIFEST_NAME}}
    for rel in rels:
        path = root / rel
        names.setdefault(path.parent, set()).add(path.name)
    removed = []
    for folder, ours in sorted(names.items()):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in folder.iterdir():
            match = _STALE_TEMP.match(entry.name)
            if not match or entry.is_symlink() or not entry.is_file():
                continue
            name = re.sub(r"(\.new|\.bak(\.\d+)?)$", "", match["name"])
            if name in ours or match["name"] in ours:
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


# --- where an install is ------------------------------------------------------------------------


def find_install(home: Path | None = None) -> tuple[Path, Scope] | None:
    """Where `status` looks without `--scope`/`--target`: the project's `.claude`, then the
    user's `~/.claude`; the first holding a manifest, with its scope. None: neither does."""
    scopes: tuple[Scope, ...] = ("project", "user")
    for scope in scopes:
        root = install_root(scope, None, home=home)
        if manifest_path(root).is_file():
            return root, scope
    return None


# --- helpers ------------------------------------------------------------------------------------


def _holds(path: Path, digest: str) -> bool:
    """Whether `path` is a regular file whose sha256 is `digest`."""
    return path.is_file() and not path.is_symlink() and sha256(path.read_bytes()) == digest



def sha256(content: str | bytes) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version))
