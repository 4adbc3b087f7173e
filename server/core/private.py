"""Files only their owner can read: the app data folder 0700, and every folder in it 0700, every file 0600.

The app data folder holds model outputs, indexed text, lineage, webhook URLs and the access token. On
POSIX systems two things keep it private, independent of the user's umask:
- `make_private(home)` runs at every start (the server's app start-up, `deskpilot worker`, every `deskpilot`
  command): it sets the folder and the folders under it to 0700 and the files to 0600. An install made
  before this existed (0755 folders, 0644 databases) is fixed the next time it starts.
- `private_umask()` runs at the process entry points (the `deskpilot` command, which `serve` and `worker`
  are): umask 077, so that what is created afterwards (a database's -wal and -shm files, index segments,
  logs, caches), by our code or a library's, is created private. SQLite also gives -wal and -shm files the
  mode of their database.
Symbolic links are neither followed nor changed: the folder is walked as it is, and a link out of it (a
user's `schemas` folder elsewhere, say) is not ours to change.

On Windows, POSIX modes mean nothing and neither function changes anything: the app data folder lives in
the user's profile (%LOCALAPPDATA%), whose ACL gives access to the user, SYSTEM and Administrators only,
and files created in it inherit that ACL.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "make_private", "private_umask"]

log = logging.getLogger("deskpilot.server")

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_umask() -> None:
    """umask 077 for this process (POSIX): every file it creates from now on is readable by its owner only."""
    if sys.platform != "win32":
        os.umask(0o077)


def make_private(home: Path) -> int:
    """Create `home` if needed, then make it and everything in it owner-only; returns how many paths changed.

    A path that cannot be changed (owned by another user, on a read-only file system) is logged and left.
    """
    home.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":
        return 0
    changed = int(_set_mode(home, DIR_MODE))
    for folder, dirs, files in os.walk(home, followlinks=False):
        for name in dirs:
            changed += _set_mode(Path(folder, name), DIR_MODE)
        for name in files:
            changed += _set_mode(Path(folder, name), FILE_MODE)
    if changed:
        log.info("made %d path(s) in %s readable by their owner only", changed, home)
    return changed


def _set_mode(path: Path, mode: int) -> bool:
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or stat.S_IMODE(info.st_mode) == mode:
            return False
        os.chmod(path, mode)
    except FileNotFoundError:  # removed while we walked (a -journal file, a staged write)
        return False
    except OSError as exc:
        log.warning("could not make %s readable by its owner only: %s", path, exc)
        return False
    return True
