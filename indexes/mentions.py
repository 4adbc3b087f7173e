"""Whether a text mentions an email address as a whole address, not inside a longer one.

`ann.lee@contoso.com` is mentioned by "Mail from Ann.Lee@Contoso.com." but not by "joann.lee@contoso.com"
or "ann.lee@contoso.com.au": an erasure must remove one person's data, not a namesake's. Registered as the
SQLite function `deskpilot_mentions(text, address)` on the connections that search for a subject (the
index's, and lineage's during an erasure), after a cheap `instr` prefilter.
"""

from __future__ import annotations

import functools
import re
import sqlite3

__all__ = ["SQL_FUNCTION", "mentions", "register"]

SQL_FUNCTION = "deskpilot_mentions"


@functools.lru_cache(maxsize=64)
def _pattern(address: str) -> re.Pattern[str]:
    # Before: no character that could belong to the local part. After: no character that would continue
    # the domain (a letter, digit or hyphen, or a dot followed by one); a full stop ending a sentence is fine.
    return re.compile(rf"(?<![\w.%+-]){re.escape(address)}(?![\w-]|\.[\w-])", re.IGNORECASE)


def mentions(text: str | bytes | None, address: str) -> bool:
    if text is None:
        return False
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return _pattern(address.casefold()).search(text) is not None


def register(conn: sqlite3.Connection) -> None:
    conn.create_function(SQL_FUNCTION, 2, mentions, deterministic=True)
