"""The per-user secret that every client but `/healthz` presents: `Authorization: Bearer <token>`.

A server on localhost is reachable by every process on the machine, whoever runs it, and by every web page
the user opens. Host and Origin checks keep web pages out (server/web/security.py), but a process that
simply leaves Origin out looks like the CLI. So, as Jupyter does, the server trusts only clients that can
read a random token from the user's own app data folder: `<home>/token`, mode 0600.

- The CLI (and the installer's health check) read the file; the task pane gets the token in its start URL
  from the per-user manifest `deskpilot install` writes, keeps it in sessionStorage and sends it as a header.
- The file is created with O_CREAT|O_EXCL and mode 0600 under a temporary name, then linked into place, so it
  is never readable by others, never seen half written, and two processes starting at once agree on one.
- `rotate_token` replaces the file atomically. A running server notices: `TokenFile.current()` stats the
  file on every request (about a microsecond) and reads it again when its identity, size or times change,
  so the old token is refused from the next request on, with no restart and no signal.

What it does not stop: malware running as the same user can read the file (see installer/README.md).
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["TokenFile", "ensure_token", "read_token", "rotate_token"]

_MODE = 0o600


def read_token(path: Path) -> str | None:
    """The token in `path`, or None if there is no usable one (missing, unreadable or empty)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def ensure_token(path: Path) -> str:
    """The token in `path`, created (0600, atomically) if there is none yet."""
    existing = read_token(path)
    if existing is not None:
        if os.name == "posix" and path.stat().st_mode & 0o077:  # loosened by hand: owner-only again
            os.chmod(path, _MODE)
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = _stage(path, secrets.token_urlsafe(32))
    try:
        try:
            os.link(staged, path)  # fails if the file is there: another process (or thread) won the race
        except FileExistsError:
            # Theirs is the token; a file that is there but unusable (emptied by hand) is replaced. A file
            # that link() made is never seen empty: the staged one was written and synced first.
            if read_token(path) is None:
                os.replace(staged, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
    token = read_token(path)
    if token is None:  # pragma: no cover - only if someone empties the file between the two lines
        raise OSError(f"could not create the token file {path}")
    return token


def rotate_token(path: Path) -> str:
    """Replace the token with a new one; the old one stops working at the server's next request."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    os.replace(_stage(path, token), path)
    return token


def _stage(path: Path, token: str) -> Path:
    """`token` in a new file beside `path`, created owner-only: never readable by others, not even briefly."""
    staged = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), _MODE)
    try:
        os.write(fd, token.encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return staged


class TokenFile:
    """The token file as the server sees it: the current token, re-read only when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int, int] | None = None
        self._token: bytes | None = None

    def current(self) -> bytes | None:
        """The token now in the file, or None (no file, no token: nobody is let in)."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp, self._token = None, None
            return None
        # A rotation replaces the file (a new inode); the times and size catch an edit in place.
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if stamp != self._stamp:
            token = read_token(self.path)
            self._token = token.encode("ascii") if token is not None else None
            self._stamp = stamp
        return self._token

    def matches(self, presented: bytes) -> bool:
        """Whether `presented` is the current token, compared in constant time."""
        expected = self.current()
        return expected is not None and hmac.compare_digest(presented, expected)
