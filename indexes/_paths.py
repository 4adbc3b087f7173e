"""Which files an index run looks at: walking folders under exclusion rules."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePath

from deskpilot.indexes._loaders import SUPPORTED_SUFFIXES

__all__ = ["ExcludeRules", "walk"]


class ExcludeRules:
    """Glob patterns for paths that are never indexed.

    A pattern without "/" matches any single path component *below* the indexed folder ("*.tmp",
    ".git", "Private"), so that indexing ~/.local/docs still works with the default ".*". A pattern
    with "/" matches the whole absolute path ("*/Legal/*", "/home/me/Docs/secret.txt"), and also the
    path relative to the indexed folder ("Archive/2019/*"). Matching is case-insensitive where the
    file system usually is (Windows).
    """

    def __init__(self, patterns: Iterable[str], always: Iterable[Path] = ()) -> None:
        self.patterns = tuple(dict.fromkeys(p.strip() for p in patterns if p.strip()))
        self._names = [p for p in self.patterns if "/" not in p.replace("\\", "/")]
        self._paths = [p.replace("\\", "/") for p in self.patterns if "/" in p.replace("\\", "/")]
        self._always = [Path(p).absolute() for p in always]

    def _match(self, text: str, pattern: str) -> bool:
        return fnmatch.fnmatch(os.path.normcase(text), os.path.normcase(pattern))

    def excluded(self, path: Path, root: Path) -> bool:
        if any(path == a or a in path.parents for a in self._always):
            return True
        relative: PurePath
        try:
            relative = path.relative_to(root)
        except ValueError:
            relative = PurePath(path.name)
        names = relative.parts or (path.name,)
        if any(self._match(name, pattern) for name in names for pattern in self._names):
            return True
        full, rel = path.as_posix(), relative.as_posix()
        return any(self._match(full, p) or self._match(rel, p.lstrip("/")) for p in self._paths)


def walk(root: Path, rules: ExcludeRules) -> Iterator[tuple[Path, bool]]:
    """(file, supported) for every non-excluded file at or below `root`, in a stable order.

    Linked folders are not entered, and a linked file is read only if it resolves inside `root`: the
    folder a person chose to index is all that is read, whatever its links point at."""
    if root.is_file():
        if not rules.excluded(root, root.parent):
            yield root, root.suffix.lower() in SUPPORTED_SUFFIXES
        return
    top = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not rules.excluded(here / d, root))
        for name in sorted(filenames):
            path = here / name
            if rules.excluded(path, root) or (path.is_symlink() and not _links_inside(path, top)):
                continue
            yield path, path.suffix.lower() in SUPPORTED_SUFFIXES


def _links_inside(link: Path, top: str) -> bool:
    """A symlink to a file inside the folder `top` (already resolved)."""
    target = os.path.realpath(link)
    return os.path.isfile(target) and (target + os.sep).startswith(top.rstrip(os.sep) + os.sep)


def normalize_roots(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Absolute paths, without duplicates or paths inside another given folder."""
    roots = sorted({Path(os.path.abspath(Path(p).expanduser())) for p in paths})
    return [r for r in roots if not any(o != r and o in r.parents for o in roots)]
