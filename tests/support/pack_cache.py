"""`build_pack` remembered by the bytes it reads, for test modules that install many times.

Rendering and linting the pack is most of what one in-process `plumber install` costs, and the
install tests run it some sixty times on a handful of inputs. `PackCache.build` has
`build_pack`'s signature and answers from memory only when every file under the knowledge base
and the templates is byte for byte what an earlier call read (and the options are equal), so a
test that edits its copy of the knowledge base gets a fresh render; failures are never kept.
That the same input always renders the same bytes is `test_build`'s to prove.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from pipeline_plumber.build import Pack
from pipeline_plumber.render import RenderOptions

BuildPack = Callable[..., Pack]
Key = tuple[str, str, RenderOptions | None, bool]


def tree_digest(folder: Path) -> str:
    """One digest of every file's path and bytes under `folder` ('' when it is not a folder)."""
    if not folder.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class PackCache:
    def __init__(self, build_pack: BuildPack) -> None:
        self._build_pack = build_pack
        self._packs: dict[Key, Pack] = {}

    def build(self, kb_dir: Path, templates: Path, options: RenderOptions | None = None, *,
              plugin: bool = True) -> Pack:
        key = (tree_digest(kb_dir), tree_digest(templates), options, plugin)
        pack = self._packs.get(key)
        if pack is None:
            pack = self._packs[key] = self._build_pack(kb_dir, templates, options, plugin=plugin)
        return Pack(pack.kb, dict(pack.files))  # a caller that edits its files edits a copy
