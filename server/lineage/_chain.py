"""Hash-chained, append-only tables: the hash, the append and the check.

Nothing here knows about runs. A chained table is any table with the columns
`seq INTEGER PRIMARY KEY AUTOINCREMENT`, `prev_hash TEXT` and `hash TEXT`, plus its own columns; runs are
the first, and reviews or actions can be chained later by calling the same two functions.

The hash of a row, written out so that an auditor can re-implement it without this code::

    hash = "sha256:" + hex(sha256(PREFIX + "\\n" + (prev_hash or "") + "\\n" + canonical_json(row)))

where `row` is every stored column except `hash` (so `seq` and `prev_hash` are covered too), with NULL
columns left out, encoded by `msgspec.json.encode(..., order="sorted")`: keys sorted, no whitespace,
UTF-8. Leaving NULLs out is what lets a later migration add a nullable column without changing the hash
of any existing row: an absent column and a NULL one are the same thing.

Version 2 (rows with `hash_v = 2`: runs and reviews written since content hashes, m011) is the same with
PREFIX "deskpilot-lineage-v2" and each content column (`CONTENT_COLUMNS`) replaced in `row` by
"sha256:" + hex(sha256(its stored text)). The chain then covers content by its digest, so retention can
purge the text: the column becomes "purged sha256:<hex>" (a tombstone that keeps the digest), the row
still verifies, and the purge is itself a chained governance event (`audit_events`) naming every row it
touched. A tombstone that no purge entry accounts for is reported.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from deskpilot.server.core.db import rows_as_dicts

__all__ = [
    "CONTENT_COLUMNS",
    "HASH_PREFIX",
    "HASH_PREFIX_V2",
    "TOMBSTONE",
    "append_chained",
    "canonical_json",
    "chain_hash",
    "content_digest",
    "decode_content",
    "is_tombstone",
    "rest_digest",
    "tombstone",
    "verify_chain",
]

# Versioned so that a future change to the canonical form is a new prefix, never a silent re-meaning.
HASH_PREFIX = "deskpilot-lineage-v1"
HASH_PREFIX_V2 = "deskpilot-lineage-v2"

# The columns that hold personal content (what a person wrote or a model said about it), per chained
# table. Rows written with `hash_v = 2` are hashed over these columns' digests, not their text, so the
# text can be purged later and the row still verifies (see `tombstone`).
CONTENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": ("input", "output"),
    "reviews": ("changes", "final", "note"),
}

# A purged content column holds "purged sha256:<hex>": the digest of what was there. It is not JSON
# text (JSON never starts with "p"), so it can never be mistaken for content.
TOMBSTONE = "purged "

_CHAIN_COLUMNS = frozenset({"seq", "prev_hash", "hash", "hash_v"})


def canonical_json(row: Mapping[str, Any]) -> bytes:
    """The bytes a row's hash is taken over: every column but `hash`, NULLs left out, keys sorted."""
    return msgspec.json.encode(
        {key: value for key, value in row.items() if value is not None and key != "hash"}, order="sorted"
    )


def content_digest(value: str | bytes) -> str:
    """The digest a v2 row's hash covers for one content column: sha256 of its stored text."""
    data = value.encode() if isinstance(value, str) else value
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_tombstone(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(TOMBSTONE)


def decode_content(value: str | None, default: Any = None) -> Any:
    """A content column's JSON text decoded; `default` where it is NULL or was purged."""
    return default if value is None or is_tombstone(value) else msgspec.json.decode(value)


def tombstone(value: str | bytes) -> str:
    """What a purged content column holds instead of `value` (idempotent on a tombstone)."""
    if isinstance(value, str) and is_tombstone(value):
        return value
    return TOMBSTONE + content_digest(value)


def chain_hash(prev_hash: str | None, row: Mapping[str, Any], table: str | None = None) -> str:
    """The row's hash: v1 over the row as stored, v2 (`hash_v` = 2) over its content columns' digests."""
    prefix = HASH_PREFIX
    if row.get("hash_v") == 2:
        if table is None or table not in CONTENT_COLUMNS:
            raise ValueError(f"a v2 row needs a table with content columns, not {table!r}")
        prefix, row = HASH_PREFIX_V2, _digested(row, CONTENT_COLUMNS[table])
    digest = hashlib.sha256()
    digest.update(f"{prefix}\n{prev_hash or ''}\n".encode())
    digest.update(canonical_json(row))
    return "sha256:" + digest.hexdigest()


def rest_digest(row: Mapping[str, Any], table: str) -> str:
    """A digest of every column but the content ones: what a purge of a v1 row records, so the rest of
    that row stays checkable once its content (and with it the means to re-derive its hash) is gone."""
    rest = {key: value for key, value in row.items() if key not in CONTENT_COLUMNS.get(table, ())}
    return "sha256:" + hashlib.sha256(canonical_json(rest)).hexdigest()


def _digested(row: Mapping[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    out = dict(row)
    for column in columns:
        value = out.get(column)
        if value is not None:
            out[column] = value[len(TOMBSTONE) :] if is_tombstone(value) else content_digest(value)
    return out


def append_chained(conn: sqlite3.Connection, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Append `row` to the chained `table` and return it exactly as stored, chain columns included.

    The caller must hold a write transaction (`BEGIN IMMEDIATE`), so that reading the head and inserting
    after it is one serialized step and the chain cannot fork.
    """
    if not conn.in_transaction:
        raise RuntimeError("append_chained() must run inside a write transaction")
    if _CHAIN_COLUMNS & row.keys():
        raise ValueError(f"the chain columns {sorted(_CHAIN_COLUMNS)} are set by append_chained()")
    affinities = _column_affinities(conn, table)
    unknown = row.keys() - affinities.keys()
    if unknown:
        raise ValueError(f"{table} has no column(s) {sorted(unknown)}")
    # Hash what SQLite will give back, not what we were handed: 1 in a REAL column reads back as 1.0.
    stored = {name: _as_stored(value, affinities[name], f"{table}.{name}") for name, value in row.items()}
    head = conn.execute(f"SELECT seq, hash FROM {_quote(table)} ORDER BY seq DESC LIMIT 1").fetchone()
    # AUTOINCREMENT never reuses a number, even after the last row is deleted; follow it so that such
    # a deletion stays visible as a gap.
    issued = _issued_seq(conn, table) or 0
    stored["seq"] = max(issued, head[0] if head else 0) + 1
    stored["prev_hash"] = head[1] if head else None
    if table in CONTENT_COLUMNS and "hash_v" in affinities:
        stored["hash_v"] = 2
    stored["hash"] = chain_hash(stored["prev_hash"], stored, table)
    columns = ", ".join(_quote(name) for name in stored)
    placeholders = ", ".join("?" for _ in stored)
    conn.execute(f"INSERT INTO {_quote(table)} ({columns}) VALUES ({placeholders})", list(stored.values()))
    return stored


def verify_chain(
    conn: sqlite3.Connection,
    table: str,
    *,
    id_column: str = "id",
    noun: str = "id",
    purged: Mapping[int, Mapping[str, Any]] | None = None,
) -> tuple[int, str | None, list[str]]:
    """Re-derive every hash of `table` in seq order: (rows checked, head hash, problems as sentences).

    Problems name a row by seq and by `id_column`, introduced by `noun` ("seq 3 (run 9f2c...)"). Run it
    inside one read transaction so that the rows and `sqlite_sequence` come from the same snapshot.

    `purged` maps the seq of each row a chained purge entry says it purged to what that entry recorded
    ({"hash", "rest"} for a v1 row). A purged column must be accounted for there: a v2 row still verifies
    by its content digests; a v1 row cannot be re-derived without its content, so its hash must be the one
    the purge entry recorded and the rest of the row must match the entry's `rest` digest.
    """
    purged = purged or {}

    def who(row: Mapping[str, Any]) -> str:
        return f"seq {row['seq']} ({noun} {row.get(id_column)})"

    problems: list[str] = []
    checked = 0
    previous: dict[str, Any] | None = None
    for row in rows_as_dicts(conn.execute(f"SELECT * FROM {_quote(table)} ORDER BY seq")):
        checked += 1
        if previous is None and row["seq"] != 1:
            problems.append(
                f"{table}: broken genesis, {_span(1, row['seq'] - 1)} missing before {who(row)}: "
                "rows were deleted from the start of the chain"
            )
        elif previous is None and row["prev_hash"] is not None:
            problems.append(f"{table} {who(row)}: broken genesis, the first row must have no prev_hash")
        elif previous is not None and row["seq"] != previous["seq"] + 1:
            problems.append(
                f"{table}: {_span(previous['seq'] + 1, row['seq'] - 1)} missing between {who(previous)} "
                f"and {who(row)}: rows were deleted"
            )
        elif previous is not None and row["prev_hash"] != previous["hash"]:
            problems.append(f"{table} {who(row)}: broken link, prev_hash is not the hash of {who(previous)}")
        problems.extend(_check_row(table, row, purged.get(row["seq"]), who))
        previous = row
    problems.extend(_check_tail(conn, table, previous, who))
    return checked, previous["hash"] if previous else None, problems


def _check_row(
    table: str,
    row: Mapping[str, Any],
    purge: Mapping[str, Any] | None,
    who: Callable[[Mapping[str, Any]], str],
) -> list[str]:
    columns = [c for c in CONTENT_COLUMNS.get(table, ()) if is_tombstone(row.get(c))]
    if columns and purge is None:
        return [f"{table} {who(row)}: {', '.join(columns)} purged without a chained purge entry"]
    if not columns or row.get("hash_v") == 2:
        if chain_hash(row["prev_hash"], row, table) != row["hash"]:
            return [f"{table} {who(row)}: hash mismatch, the row was changed after it was written"]
        return []
    assert purge is not None
    if purge.get("hash") != row["hash"] or purge.get("rest") != rest_digest(row, table):
        return [f"{table} {who(row)}: does not match what its purge entry recorded: changed after the purge"]
    return []


def _check_tail(
    conn: sqlite3.Connection,
    table: str,
    last: dict[str, Any] | None,
    who: Callable[[Mapping[str, Any]], str],
) -> list[str]:
    """Deleting the newest rows leaves a valid-looking chain; only AUTOINCREMENT's record remembers them."""
    issued = _issued_seq(conn, table)
    last_seq = last["seq"] if last else 0
    if issued is None:
        return [f"{table}: sqlite_sequence has no entry although rows exist"] if last else []
    if issued > last_seq:
        after = f"after {who(last)}" if last else "(the table is empty)"
        return [
            f"{table}: {_span(last_seq + 1, issued)} missing {after}: sqlite_sequence shows seq {issued} "
            "was written, so rows were deleted from the end"
        ]
    if issued < last_seq:
        return [f"{table}: sqlite_sequence says {issued} but rows go up to seq {last_seq}: it was altered"]
    return []


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}-{last}"


def _issued_seq(conn: sqlite3.Connection, table: str) -> int | None:
    found = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", [table]).fetchone()
    return None if found is None else int(found[0])


def _column_affinities(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    columns = conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
    if not columns:
        raise ValueError(f"no table {table!r}")
    return {name: _affinity(declared) for _, name, declared, *_ in columns}


def _affinity(declared: str) -> str:
    """SQLite's column affinity rules (https://www.sqlite.org/datatype3.html, section 3.1), in order."""
    declared = declared.upper()
    if "INT" in declared:
        return "INTEGER"
    if any(word in declared for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in declared or not declared:
        return "BLOB"
    if any(word in declared for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _as_stored(value: Any, affinity: str, column: str) -> Any:
    """What SQLite will hand back for `value` in a column of this affinity; refuse what it would mangle."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None  # SQLite stores NaN as NULL
    if isinstance(value, bool):
        value = int(value)
    if affinity == "TEXT" and isinstance(value, str):
        return value
    if affinity == "INTEGER" and isinstance(value, int | float):
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if affinity == "REAL" and isinstance(value, int | float):
        return float(value)
    if affinity == "BLOB" and isinstance(value, str | int | float | bytes):
        return value
    raise TypeError(f"{column}: cannot store {type(value).__name__} in a column of {affinity} affinity")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
