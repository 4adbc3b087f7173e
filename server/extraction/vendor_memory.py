"""Extraction that learns from corrections: a memory per vendor, from every accepted or edited review.

How an example is born: when an extraction is queued for review, `hold()` keeps the document's layout
fingerprint, linked to its run and review item: a digest of each of its first lines (`HEADER_LINES`), and a
digest of every run of up to `RUN_LINES` consecutive lines among them with the run's position. Once a
person decides, `sync()` gives the example what they kept (the proposal for an accept, their values for an
edit) from the chained `reviews` table, and finds where the kept vendor name and address sit in the
fingerprint (first line, number of lines): that is where this vendor's fields are. A rejected item's
example is dropped. Sync runs before each use, so the decision needs no hook in the review API.

How it is used: a new document whose first lines share enough digests with a learnt example's
(`MIN_SIMILARITY`, Jaccard over the sets) is that vendor's; its corrected name and address are proposed
(`propose`) with a probability learnt from how often the memory's proposals were what the reviewer kept
(Laplace-smoothed counts per field, `vendor_stats`). A proposal says whether it is grounded: whether the
new document has the value at the remembered position (the same lines), as its own text; where it does
not (an OCR slip), the remembered value still stands for the same vendor, as the person corrected it.

Forgetting: `delete()` removes an example for good (the review decision stays in the audit chain, but no
longer steers anything). Retention: an example never holds the input's text, only digests of its lines
(like lineage's input digest) and the values the reviewer kept, which the chained decision holds anyway.
The tables are this feature's own migration set on the lineage file (`deskpilot.vendors`).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import msgspec
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from deskpilot.inference.extraction.normalize import normalize_text
from deskpilot.server.core.db import iso_utc, rows_as_dicts
from deskpilot.server.lineage import LineageStore, decode_content

__all__ = ["VENDOR_TABLES", "Proposal", "VendorExample", "VendorMemory", "line_key"]

VENDOR_TABLES = Migrations("deskpilot.vendors")
HEADER_LINES = 20
RUN_LINES = 6
MIN_SIMILARITY = 0.3
FIELDS = ("vendor", "vendorAddress")  # what the memory proposes (invoice's issuer name and address)


@VENDOR_TABLES()
def m001_vendor_examples(db: Database) -> None:
    # `vendor`, `address` and `layout` are NULL while the review is pending.
    db.execute(
        "CREATE TABLE IF NOT EXISTS vendor_examples (id TEXT PRIMARY KEY, review_id TEXT UNIQUE NOT NULL, "
        "run_id TEXT NOT NULL, created_at TEXT NOT NULL, learnt_at TEXT, header TEXT NOT NULL, "
        "runs TEXT NOT NULL, proposed TEXT NOT NULL, vendor TEXT, address TEXT, layout TEXT)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS vendor_stats (field TEXT PRIMARY KEY, proposed INTEGER NOT NULL, "
        "kept INTEGER NOT NULL)"
    )


def line_key(text: str) -> str:
    """A line's (or a run's) digest: letters and digits only, case-folded, so that spacing and punctuation
    the OCR or the reviewer changed do not matter."""
    key = re.sub(r"[\W_]+", "", normalize_text(text).casefold())
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _header(text: str) -> list[str]:
    return [line for line in (normalize_text(raw) for raw in text.splitlines()) if line][:HEADER_LINES]


def _fingerprint(text: str) -> tuple[list[str], dict[str, list[int]]]:
    lines = _header(text)
    runs: dict[str, list[int]] = {}
    for start in range(len(lines)):
        for size in range(1, RUN_LINES + 1):
            if start + size <= len(lines):
                runs.setdefault(line_key(" ".join(lines[start : start + size])), [start, size])
    return [line_key(line) for line in lines], runs


class VendorExample(msgspec.Struct, kw_only=True):
    """A learnt example: the vendor's name and address as a person kept them, and where they sit."""

    id: str
    review_id: str
    run_id: str
    created_at: str
    learnt_at: str | None
    vendor: str | None
    address: str | None
    layout: dict[str, list[int]]  # field -> [first line, number of lines] in the document's first lines


class Proposal(msgspec.Struct, frozen=True):
    """The memory's value for one field, and how likely it is what a person keeps."""

    value: Any
    probability: float
    example_id: str
    similarity: float
    grounded: bool  # the new document has this value where the example had it


class VendorMemory:
    def __init__(self, store: LineageStore) -> None:
        self._store = store
        store.migrate(VENDOR_TABLES)

    def hold(self, *, run_id: str, review_id: str, text: str, proposed: dict[str, Any]) -> None:
        """Keep a queued extraction's fingerprint and the memory's own proposals, until its decision."""
        header, runs = _fingerprint(text)
        row = [
            uuid.uuid4().hex,
            review_id,
            run_id,
            iso_utc(self._store.now()),
            msgspec.json.encode(header).decode(),
            msgspec.json.encode(runs).decode(),
            msgspec.json.encode(proposed).decode(),
        ]
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO vendor_examples "
                "(id, review_id, run_id, created_at, header, runs, proposed) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    def sync(self) -> int:
        """Learn from the decisions made since the last sync; returns the examples learnt."""
        with self._store.transaction() as conn:
            pending = conn.execute(
                "SELECT e.id, e.runs, e.proposed, d.decision, d.final FROM vendor_examples e "
                "JOIN reviews d ON d.review_id = e.review_id WHERE e.learnt_at IS NULL"
            ).fetchall()
            learnt = 0
            for example_id, runs_json, proposed_json, decision, final_json in pending:
                final = decode_content(final_json)
                if decision == "reject" or not final or not final.get("vendor"):
                    conn.execute("DELETE FROM vendor_examples WHERE id = ?", [example_id])
                    continue
                runs = msgspec.json.decode(runs_json)
                layout = {
                    field: runs[line_key(str(final[field]))]
                    for field in FIELDS
                    if final.get(field) and line_key(str(final[field])) in runs
                }
                conn.execute(
                    "UPDATE vendor_examples SET learnt_at = ?, vendor = ?, address = ?, layout = ? "
                    "WHERE id = ?",
                    [
                        iso_utc(self._store.now()),
                        final.get("vendor"),
                        final.get("vendorAddress"),
                        msgspec.json.encode(layout).decode(),
                        example_id,
                    ],
                )
                self._count(conn, msgspec.json.decode(proposed_json), final)
                learnt += 1
        return learnt

    def _count(self, conn: Any, proposed: dict[str, Any], final: dict[str, Any]) -> None:
        """Whether each of the memory's proposals for this document was what the person kept."""
        for field, value in proposed.items():
            kept = line_key(str(value)) == line_key(str(final.get(field) or ""))
            conn.execute(
                "INSERT INTO vendor_stats VALUES (?, 1, ?) ON CONFLICT(field) DO UPDATE SET "
                "proposed = proposed + 1, kept = kept + excluded.kept",
                [field, int(kept)],
            )

    def propose(self, text: str) -> dict[str, Proposal]:
        """The learnt values for a new document whose first lines are a known vendor's (see the module
        docstring); empty for a vendor not seen and corrected before."""
        self.sync()
        header, runs = _fingerprint(text)
        mine = set(header)
        best: tuple[float, dict[str, Any]] | None = None
        with self._store.reading() as conn:
            examples = list(
                rows_as_dicts(conn.execute("SELECT * FROM vendor_examples WHERE learnt_at IS NOT NULL"))
            )
            stats = {f: (p, k) for f, p, k in conn.execute("SELECT field, proposed, kept FROM vendor_stats")}
        for row in examples:
            theirs = set(msgspec.json.decode(row["header"]))
            similarity = len(mine & theirs) / len(mine | theirs) if mine | theirs else 0.0
            if similarity >= MIN_SIMILARITY and (best is None or similarity > best[0]):
                best = (similarity, row)
        if best is None:
            return {}
        similarity, row = best
        layout = msgspec.json.decode(row["layout"] or "{}")
        found = {}
        for field, value in (("vendor", row["vendor"]), ("vendorAddress", row["address"])):
            if not value:
                continue
            proposed, kept = stats.get(field, (0, 0))
            grounded = runs.get(line_key(str(value))) == layout.get(field)
            found[field] = Proposal(
                value=value,
                probability=round((kept + 1) / (proposed + 2), 4),
                example_id=row["id"],
                similarity=round(similarity, 4),
                grounded=grounded,
            )
        return found

    def examples(self, limit: int = 100) -> list[VendorExample]:
        """Learnt examples, newest first."""
        self.sync()
        with self._store.reading() as conn:
            rows = rows_as_dicts(
                conn.execute(
                    "SELECT id, review_id, run_id, created_at, learnt_at, vendor, address, layout "
                    "FROM vendor_examples WHERE learnt_at IS NOT NULL ORDER BY learnt_at DESC, id LIMIT ?",
                    [limit],
                )
            )
            return [
                msgspec.convert({**r, "layout": msgspec.json.decode(r["layout"] or "{}")}, VendorExample)
                for r in rows
            ]

    def delete(self, example_id: str) -> bool:
        """Forget an example for good; False if there was none."""
        with self._store.transaction() as conn:
            return conn.execute("DELETE FROM vendor_examples WHERE id = ?", [example_id]).rowcount > 0
