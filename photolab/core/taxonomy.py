"""The taxonomy: a plain-text, commented list of tags in categories, with aliases.

See ``photolab/data/taxonomy.txt`` (copied to ``LIBRARY/.photolab/taxonomy.txt``)
for the format. Loading a malformed file fails with the line number and what
is wrong. Renaming or merging a tag rewrites the file (keeping its comments),
keeps the old name as an alias and records the change in the catalog, so a
tag's history survives.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from photolab.core.errors import PhotolabError

CATEGORIES = ("people", "places", "events", "objects", "quality")
SOURCES = ("prior", "starter", "measure", "faces", "head")
TAXONOMY_FILE = "taxonomy.txt"
_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")


class TaxonomyError(PhotolabError, ValueError):
    """A taxonomy file is malformed; the message names the file and line."""


def read_text_file(path: Path, error: type[Exception], what: str) -> str:
    """The text of a settings file a person edits (UTF-8); a byte that is not UTF-8 raises ``error`` naming
    the file, the line and column, and how to fix it."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start:exc.end].hex(" ")
        raise error(f"{path}:{line}: byte 0x{bad} (column {col}) is not UTF-8; save the {what} file as UTF-8 "
                    "(in most editors: Save with Encoding, UTF-8) or retype that character") from None


@dataclass(frozen=True)
class Tag:
    name: str
    category: str
    source: str
    aliases: tuple[str, ...] = ()
    line: int = 0


@dataclass
class Taxonomy:
    """An ordered set of tags with alias lookup."""

    tags: list[Tag]
    path: Path | None = None
    _lookup: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._lookup = {}
        for t in self.tags:
            self._lookup[_norm(t.name)] = t.name
            for a in t.aliases:
                self._lookup[_norm(a)] = t.name

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tags]

    def __len__(self) -> int:
        return len(self.tags)

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) is not None

    def __getitem__(self, name: str) -> Tag:
        canonical = self.resolve(name)
        if canonical is None:
            raise KeyError(f"unknown tag {name!r}; known tags: {', '.join(self.names)}")
        return next(t for t in self.tags if t.name == canonical)

    def resolve(self, text: str) -> str | None:
        """Canonical tag for a name or alias (case- and whitespace-insensitive), or None."""
        return self._lookup.get(_norm(text))

    def complete(self, prefix: str, limit: int = 10) -> list[str]:
        """Tags whose name or an alias starts with ``prefix`` (for completion in widgets)."""
        p = _norm(prefix)
        out: list[str] = []
        for key, name in self._lookup.items():
            if key.startswith(p) and name not in out:
                out.append(name)
        return out[:limit]

    def by_source(self, source: str) -> list[str]:
        return [t.name for t in self.tags if t.source == source]

    def by_category(self, category: str) -> list[str]:
        return [t.name for t in self.tags if t.category == category]


def _norm(text: str) -> str:
    return " ".join(str(text).lower().replace("_", " ").split())


def parse_taxonomy(text: str, *, path: str | os.PathLike | None = None) -> Taxonomy:
    """Parse taxonomy text; raise :class:`TaxonomyError` naming the line on any problem."""
    where = str(path) if path else "<taxonomy>"
    tags: list[Tag] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 3)
        if len(parts) < 3:
            raise TaxonomyError(f"{where}:{lineno}: expected 'CATEGORY TAG SCORED-BY [ALIASES]', got {raw.strip()!r}")
        category, name, source = parts[0].lower(), parts[1].lower(), parts[2].lower()
        if category not in CATEGORIES:
            raise TaxonomyError(f"{where}:{lineno}: unknown category {parts[0]!r}; use one of {', '.join(CATEGORIES)}")
        if not _TAG_RE.match(name):
            raise TaxonomyError(f"{where}:{lineno}: bad tag name {parts[1]!r}; use lower-case letters, digits and _")
        if source not in SOURCES:
            raise TaxonomyError(f"{where}:{lineno}: unknown SCORED-BY {parts[2]!r}; use one of {', '.join(SOURCES)}")
        aliases = tuple(a.strip() for a in parts[3].split(",") if a.strip()) if len(parts) > 3 else ()
        for key in [name] + list(aliases):
            k = _norm(key)
            if k in seen:
                raise TaxonomyError(f"{where}:{lineno}: {key!r} is already used on line {seen[k]}")
            seen[k] = lineno
        tags.append(Tag(name, category, source, aliases, lineno))
    if not tags:
        raise TaxonomyError(f"{where}: no tags defined")
    return Taxonomy(tags, Path(path) if path else None)


def default_taxonomy_text() -> str:
    return resources.files("photolab").joinpath("data", TAXONOMY_FILE).read_text(encoding="utf-8")


def load_taxonomy(library=None) -> Taxonomy:
    """The library's taxonomy (created from the shipped default on first use), or the default."""
    if library is None:
        return parse_taxonomy(default_taxonomy_text(), path="photolab/data/taxonomy.txt")
    from photolab.core.library import open_library

    lib = open_library(library)
    path = lib.state / TAXONOMY_FILE
    if not path.exists():
        if lib.catalog.read_only:   # a read-only library: the default, without writing it there
            return parse_taxonomy(default_taxonomy_text(), path="photolab/data/taxonomy.txt")
        path.write_text(default_taxonomy_text(), encoding="utf-8")
    return parse_taxonomy(read_text_file(path, TaxonomyError, "taxonomy"), path=path)


def rename_tag(library, old: str, new: str, *, merge: bool = False) -> Taxonomy:
    """Rename a tag (or merge it into an existing one with ``merge=True``), keeping its history.

    The file is rewritten with its comments intact, the old name becomes an
    alias of the new one, catalog rows that carry the old name are moved to
    the new name, and the change is recorded in ``tag_history``.
    """
    from photolab.store.catalog import utcnow
    from photolab.core.library import open_library

    lib = open_library(library)
    tax = load_taxonomy(lib)
    old_name = tax.resolve(old)
    if old_name is None:
        raise TaxonomyError(f"{tax.path}: no tag {old!r} to rename")
    new = new.strip().lower()
    target = tax.resolve(new)
    if target is not None and target != old_name and not merge:
        raise TaxonomyError(f"{tax.path}: {new!r} already exists; use merge=True to merge {old_name!r} into it")
    if merge and target is None:
        raise TaxonomyError(f"{tax.path}: cannot merge into {new!r}: no such tag")
    if not _TAG_RE.match(new):
        raise TaxonomyError(f"bad tag name {new!r}; use lower-case letters, digits and _")
    old_tag = tax[old_name]
    lines = tax.path.read_text(encoding="utf-8").splitlines(keepends=True)
    if merge:
        into = tax[target]
        lines[old_tag.line - 1] = f"# merged into {target}: {lines[old_tag.line - 1].lstrip('# ')}"
        extra = ", ".join(into.aliases + (old_name,) + old_tag.aliases)
        lines[into.line - 1] = f"{into.category:8s} {into.name:15s} {into.source:8s} {extra}\n"
        final = target
    else:
        aliases = ", ".join([a for a in old_tag.aliases if _norm(a) != _norm(new)] + [old_name])
        lines[old_tag.line - 1] = f"{old_tag.category:8s} {new:15s} {old_tag.source:8s} {aliases}\n"
        final = new
    text = "".join(lines)
    parsed = parse_taxonomy(text, path=tax.path)  # validate before writing
    tmp = tax.path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    shutil.copymode(tax.path, tmp)
    os.replace(tmp, tax.path)
    from photolab.store.tags import record_tag_change, rename_tag_rows   # every table the schema says names a tag

    with lib.catalog.write() as db:
        rename_tag_rows(db, old_name, final)
        record_tag_change(db, old_name, final, "merge" if merge else "rename", utcnow())
    return parsed
