"""The folders the server may read documents from: the roots the settings name, and those the user added.

A local server is reachable by every program on the machine and, through the browser, by web pages; a
request that names a path is no proof that a person chose that folder. So indexing reads only inside
roots: `settings.index_roots` (the user's Documents folder by default; IT may set others) and the
folders the user adds in the pane's Settings or with `deskpilot index --add-root`. Added roots are kept
in `<home>/index-roots.json` (0600, in the 0700 app data folder), read at every check and never cached,
so a root the CLI adds counts at once for a running server.

A path is checked after it is resolved (symlinks followed, `..` removed): a link inside a root that
points outside is outside. A path outside the roots and a path that does not exist are refused alike
(`NotInRoots`, one message shape), so the answer tells nothing about what exists outside.

A root the API adds must be an existing folder that neither is a filesystem root nor holds the app data
folder (whose files, tokens and database a root must never cover) nor lies inside it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

import msgspec

from deskpilot.server.settings import Settings

__all__ = ["IndexRoot", "IndexRoots", "NotInRoots", "RootRefused"]

STATE_FILE = "index-roots.json"


class NotInRoots(PermissionError):
    """A path the server may not read: outside every root, or not there (the two are not told apart)."""

    def __init__(self, given: str) -> None:
        super().__init__(
            f"{given!r} is not in a folder you chose for indexing; add the folder in Settings "
            "(Folders to index) or with `deskpilot index --add-root FOLDER`"
        )
        self.given = given


class RootRefused(ValueError):
    """A folder that cannot become a root (not a folder, a filesystem root, the app data folder)."""


class IndexRoot(msgspec.Struct, kw_only=True, rename="camel"):
    path: str
    source: str  # "settings" (config or environment: only IT changes it) or "added" (the user)
    exists: bool


class _State(msgspec.Struct, kw_only=True):
    added: list[str] = []


def _expanded(path: str | os.PathLike[str]) -> Path:
    """`~` and `~user` expanded; a `~user` that names no user stays as given (relative, so refused):
    pathlib raises RuntimeError for it, which was a 500."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(_expanded(path)))


def _key(path: Path) -> str:
    return os.path.normcase(str(path))


def _inside(path: Path, root: Path) -> bool:
    p, r = _key(path), _key(root)
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


class IndexRoots:
    """The roots of one app data folder; safe to share between threads."""

    def __init__(self, settings: Settings) -> None:
        self.configured = tuple(settings.index_roots)
        self.home = settings.home
        self.state_path = settings.home / STATE_FILE
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------------------

    def added(self) -> list[Path]:
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            return [Path(p) for p in msgspec.json.decode(data, type=_State).added]
        except msgspec.DecodeError:
            return []  # a damaged file grants nothing; the next change rewrites it

    def listing(self) -> list[IndexRoot]:
        configured = [IndexRoot(path=str(p), source="settings", exists=p.is_dir()) for p in self.configured]
        known = {_key(Path(r.path)) for r in configured}
        added = [
            IndexRoot(path=str(p), source="added", exists=p.is_dir())
            for p in self.added()
            if _key(p) not in known
        ]
        return configured + added

    def _resolved_roots(self) -> list[Path]:
        return [_resolved(Path(p)) for p in (*self.configured, *self.added())]

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """Whether `path` (resolved as far as it exists) lies inside a root."""
        target = _resolved(Path(path))
        if _inside(target, _resolved(self.home)):
            return False
        return any(_inside(target, root) for root in self._resolved_roots())

    def check(self, given: str) -> Path:
        """The path as given (`~` expanded), if it exists and resolves inside a root; else `NotInRoots`."""
        path = _expanded(given)
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # missing, a symlink loop, unreadable: all alike
            raise NotInRoots(given) from exc
        if not any(_inside(target, root) for root in self._resolved_roots()) or _inside(
            target, _resolved(self.home)
        ):
            raise NotInRoots(given)  # nor ever the app data folder (its token, databases), whatever the roots
        return path

    # -- changing --------------------------------------------------------------------------------------

    def _folder(self, folder: str | os.PathLike[str]) -> Path:
        """`folder` resolved (so a link cannot be re-pointed later), if it may become a root."""
        path = _expanded(folder)
        if not path.is_absolute():
            raise RootRefused(f"{str(folder)!r}: give the folder's full path")
        target = _resolved(path)
        if not target.is_dir():
            raise RootRefused(f"{str(folder)!r} is not a folder")
        if target == Path(target.anchor):
            raise RootRefused(f"{str(folder)!r} is a whole drive; choose the folders that hold documents")
        home = _resolved(self.home)
        if _inside(home, target) or _inside(target, home):
            raise RootRefused(f"{str(folder)!r} holds or is inside Deskpilot's own data folder ({home})")
        return target

    def add(self, folder: str | os.PathLike[str]) -> Path:
        """Add an existing folder as a root; returns it resolved."""
        target = self._folder(folder)
        with self._lock:
            added = self.added()
            if not any(_key(p) == _key(target) for p in added):
                self._write([*added, target])
        return target

    def remove(self, folder: str | os.PathLike[str]) -> bool:
        """Forget an added root; False if it was not one. A root from the settings stays."""
        given = _expanded(folder)
        keys = {_key(given), _key(_resolved(given))}
        if any(_key(p) in keys or _key(_resolved(p)) in keys for p in self.configured):
            raise RootRefused(f"{str(folder)!r} comes from the settings (index_roots); only IT can remove it")
        with self._lock:
            added = self.added()
            kept = [p for p in added if _key(p) not in keys]
            if len(kept) == len(added):
                return False
            self._write(kept)
        return True

    def set_added(self, folders: list[str]) -> list[IndexRoot]:
        """Make the added roots exactly `folders` (the pane's list): a folder not yet a root is checked
        as `add` checks it; one that already is stays as it is, even if it is gone for now."""
        configured = {_key(_resolved(p)) for p in self.configured}
        with self._lock:
            current = {_key(p): p for p in self.added()}
            wanted: dict[str, Path] = {}
            for folder in folders:
                given = _expanded(folder)
                known = current.get(_key(given)) or current.get(_key(_resolved(given)))
                path = known if known is not None else self._folder(folder)
                if _key(path) not in configured:
                    wanted.setdefault(_key(path), path)
            self._write(list(wanted.values()))
        return self.listing()

    def _write(self, added: list[Path]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        data = msgspec.json.encode(_State(added=[str(p) for p in added]))
        fd, tmp = tempfile.mkstemp(dir=self.home, prefix=".index-roots.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.state_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
