"""The human review queue and its audit record, in the lineage database.

Structured results a person should look at (low confidence, a failed rule check, repaired output) are
queued in `review_queue`, one item per run. A decision (accept, edit, reject) is appended to the chained,
append-only `reviews` table in the same transaction that closes the queue item, with the reviewer (a
person's name and email address), the field-level diff between what the model proposed and what the person
kept, and the document after review.
The queue is working state (a pending item also keeps the text its run read, `source_text`, for the
reviewer to read beside the fields, whatever `retain_inputs` says; the decision clears it); `reviews` is the
audit record, hash-chained exactly like `runs` (`_chain.py`)
and checked by `LineageStore.verify()`.

The override rate per task, template and model (`quality()`) comes from the chained decisions joined with
the runs they judge: overridden = edited or rejected, over everything a person decided.

How long a person took: the pane says when it opened the review (`opened_at` with the decision), and
`review_timing` (this feature's own migration set on the same file, `REVIEW_TABLES`) keeps the seconds
from open to decision, written in the decision's transaction. It is working data beside the chain, not
part of the audit record: a clock on the reviewer's machine is no evidence. `quality()` reports the median
per group next to the review rate, the human share of the work.
"""

from __future__ import annotations

import re
import statistics
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from deskpilot.server.core.db import iso_utc, rows_as_dicts
from deskpilot.server.core.wire import Person
from deskpilot.server.extraction.vendor_memory import VendorMemory
from deskpilot.server.lineage import LineageError, LineageStore, decode_content, is_tombstone

__all__ = [
    "REVIEW_TABLES",
    "STRUCTURED_RUN",
    "FieldChange",
    "QualityRow",
    "ReviewDecided",
    "ReviewItem",
    "ReviewQueue",
    "ReviewRecord",
    "UnknownReviewError",
    "field_changes",
]

# The runs whose results can go to review (runs aliased `r`): extractions and classifications. Not a
# summary, though a checked one has a confidence too (the share of its sentences the check supported).
STRUCTURED_RUN = "(r.task LIKE 'extract:%' OR r.task = 'classify')"

Decision = Literal["accept", "edit", "reject"]
REVIEW_TABLES = Migrations("deskpilot.reviews")


@REVIEW_TABLES()
def m001_review_timing(db: Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS review_timing (review_id TEXT PRIMARY KEY, opened_at TEXT NOT NULL, "
        "decided_at TEXT NOT NULL, seconds REAL NOT NULL)"
    )


_STATUS = {"accept": "accepted", "edit": "edited", "reject": "rejected"}


class UnknownReviewError(LineageError, LookupError):
    pass


class ReviewDecided(LineageError):
    """The item was decided already; decisions are final (make a new run to try again)."""


class FieldChange(msgspec.Struct, frozen=True):
    path: str
    before: Any
    after: Any


class ReviewRecord(msgspec.Struct, kw_only=True):
    """A decision as chained in `reviews`."""

    id: str
    review_id: str
    run_id: str
    decided_at: str
    reviewer: str  # the person's name
    reviewer_address: str | None = None  # their email address (None: a decision recorded before 0.3)
    decision: Decision
    changes: list[FieldChange]
    final: dict[str, Any] | None
    note: str | None = None
    task: str
    template_id: str
    model_id: str
    seq: int
    prev_hash: str | None
    hash: str


class ReviewItem(msgspec.Struct, kw_only=True):
    id: str
    run_id: str
    created_at: str
    status: Literal["pending", "accepted", "edited", "rejected"]
    task: str
    template_id: str
    model_id: str
    reasons: list[str]
    confidence: float | None
    proposed: dict[str, Any]  # the result as the model proposed it
    fields: dict[str, Any]  # per-field confidence reports, for the reviewer's eyes
    spec: dict[str, Any]  # what an edit is validated against (a schema name, or the allowed labels)
    source_text: str | None = None  # the text the run read, while the item waits (None once decided)
    decided_at: str | None = None
    decision: ReviewRecord | None = None


class QualityRow(msgspec.Struct, kw_only=True):
    task: str
    template_id: str
    model_id: str
    runs: int  # structured runs that finished
    queued: int  # of those, sent to review
    reviewed: int
    accepted: int
    edited: int
    rejected: int
    override_rate: float | None  # (edited + rejected) / reviewed
    fields_reviewed: int  # values in the reviewed results
    fields_changed: int  # values a reviewer changed
    field_override_rate: float | None
    review_rate: float | None = None  # queued / runs: the share of results a person had to look at
    reviews_timed: int = 0  # decisions that said when their review was opened
    median_review_seconds: float | None = None  # from open to decision, over those


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= _leaves(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, item in enumerate(value):
            out |= _leaves(item, f"{path}[{index}]")
        return out
    return {path: value}


def _order(path: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """Every value that differs, by path ("lineItems[1].amount"); a value that exists on one side only
    has null on the other."""
    old, new = _leaves(before), _leaves(after)
    paths = sorted(old.keys() | new.keys(), key=_order)
    return [FieldChange(p, old.get(p), new.get(p)) for p in paths if old.get(p) != new.get(p)]


_JSON_QUEUE = ("reasons", "proposed", "fields", "spec")


class ReviewQueue:
    """Review items and decisions, on the lineage store's database (same connection, same lock)."""

    def __init__(self, store: LineageStore) -> None:
        self._store = store
        store.migrate(REVIEW_TABLES)
        # What extraction learns from the decisions recorded here (vendor_memory.py).
        self.vendors = VendorMemory(store)

    def enqueue(
        self,
        *,
        run_id: str,
        task: str,
        template_id: str,
        model_id: str,
        reasons: list[str],
        confidence: float | None,
        proposed: dict[str, Any],
        fields: dict[str, Any],
        spec: dict[str, Any],
        source_text: str | None = None,
    ) -> ReviewItem:
        """Queue a run's result for a person. `source_text`: the text the run read, kept with the item
        until it is decided (so the reviewer sees it even where the run record does not keep inputs)."""
        row = {
            "id": uuid.uuid4().hex,
            "run_id": run_id,
            "created_at": iso_utc(self._store.now()),
            "status": "pending",
            "task": task,
            "template_id": template_id,
            "model_id": model_id,
            "reasons": reasons,
            "confidence": confidence,
            "proposed": proposed,
            "fields": fields,
            "spec": spec,
            "source_text": source_text or None,
            "decided_at": None,
        }
        encoded = {k: msgspec.json.encode(v).decode() if k in _JSON_QUEUE else v for k, v in row.items()}
        with self._store.transaction() as conn:
            conn.execute(
                f"INSERT INTO review_queue ({', '.join(encoded)}) VALUES ({', '.join('?' * len(encoded))})",
                list(encoded.values()),
            )
        return msgspec.convert(row, ReviewItem)

    def get(self, review_id: str) -> ReviewItem | None:
        items = self._select("WHERE q.id = ?", [review_id], limit=1)
        return items[0] if items else None

    def items(
        self, *, status: str | None = None, task: str | None = None, limit: int = 50
    ) -> list[ReviewItem]:
        """Newest first."""
        clauses, params = [], []
        if status is not None:
            clauses.append("q.status = ?")
            params.append(status)
        if task is not None:
            clauses.append("q.task = ?")
            params.append(task)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._select(where, params, limit=limit)

    def decide(
        self,
        review_id: str,
        *,
        decision: Decision,
        reviewer: Person | str,
        final: dict[str, Any] | None,
        note: str | None = None,
        opened_at: datetime | None = None,
    ) -> ReviewRecord:
        """Record the decision and close the item, in one transaction. `reviewer` is the person (their
        name and address are both recorded), or a name alone. `final` is the document the reviewer keeps
        (the proposal for accept, the edited one for edit, None for reject). `opened_at`: when the person
        opened the review (its time to decision is kept; a time after the decision counts as 0 s)."""
        name, address = (
            (reviewer.name.strip(), reviewer.address) if isinstance(reviewer, Person) else (reviewer, None)
        )
        with self._store.transaction() as conn:
            found = conn.execute(
                "SELECT status, run_id, task, template_id, model_id, proposed FROM review_queue WHERE id = ?",
                [review_id],
            ).fetchone()
            if found is None:
                raise UnknownReviewError(f"no review item {review_id!r}")
            status, run_id, task, template_id, model_id, proposed = found
            if status != "pending":
                raise ReviewDecided(f"review item {review_id} was already decided ({status})")
            changes = (
                field_changes(msgspec.json.decode(proposed), final) if decision == "edit" and final else []
            )
            now = self._store.now()
            decided_at = iso_utc(now)
            if opened_at is not None:
                opened = opened_at if opened_at.tzinfo else opened_at.replace(tzinfo=UTC)
                conn.execute(
                    "INSERT OR REPLACE INTO review_timing VALUES (?, ?, ?, ?)",
                    [review_id, iso_utc(opened), decided_at, max(0.0, (now - opened).total_seconds())],
                )
            row = {
                "id": uuid.uuid4().hex,
                "review_id": review_id,
                "run_id": run_id,
                "decided_at": decided_at,
                "reviewer": name,
                "reviewer_address": address,
                "decision": decision,
                "changes": msgspec.json.encode(changes).decode(),
                "final": None if final is None else msgspec.json.encode(final).decode(),
                "note": note,
                "task": task,
                "template_id": template_id,
                "model_id": model_id,
            }
            stored = self._store.append_chained(conn, "reviews", row)
            conn.execute(
                # The source was kept for the person deciding; once decided it is no longer needed here.
                "UPDATE review_queue SET status = ?, decided_at = ?, source_text = NULL WHERE id = ?",
                [_STATUS[decision], decided_at, review_id],
            )
        return _record(stored)

    def records(self, run_id: str | None = None) -> list[ReviewRecord]:
        """Chained decisions in chain order, optionally only those about one run."""
        sql, params = "SELECT * FROM reviews", []
        if run_id is not None:
            sql, params = sql + " WHERE run_id = ?", [run_id]
        with self._store.reading() as conn:
            return [_record(row) for row in rows_as_dicts(conn.execute(sql + " ORDER BY seq", params))]

    def quality(self) -> list[QualityRow]:
        """Override rates per task, template (name and version) and model; see the module docstring."""
        with self._store.reading() as conn:
            runs = conn.execute(
                "SELECT r.task, r.template_id, r.model_id, COUNT(*), COUNT(q.id) FROM runs r "
                "LEFT JOIN review_queue q ON q.run_id = r.id "
                f"WHERE r.status = 'ok' AND r.confidence IS NOT NULL AND {STRUCTURED_RUN} "
                "GROUP BY r.task, r.template_id, r.model_id"
            ).fetchall()
            decided = conn.execute(
                "SELECT d.task, d.template_id, d.model_id, d.decision, d.changes, q.proposed FROM reviews d "
                "LEFT JOIN review_queue q ON q.id = d.review_id"
            ).fetchall()
            timed = conn.execute(
                "SELECT d.task, d.template_id, d.model_id, t.seconds FROM reviews d "
                "JOIN review_timing t ON t.review_id = d.review_id"
            ).fetchall()
        groups: dict[tuple[str, str, str], dict[str, int]] = {}
        for task, template_id, model_id, count, queued in runs:
            groups[(task, template_id, model_id)] = {"runs": count, "queued": queued}
        for task, template_id, model_id, decision, changes, proposed in decided:
            group = groups.setdefault((task, template_id, model_id), {"runs": 0, "queued": 0})
            group[decision] = group.get(decision, 0) + 1
            group["fields_reviewed"] = group.get("fields_reviewed", 0) + len(
                _leaves(msgspec.json.decode(proposed))
            )
            # A purged decision (retention, erasure) still counts; its field-level detail is gone.
            changed = len(decode_content(changes, [])) if decision == "edit" else 0
            if decision == "reject":  # a rejected result is overridden in every value
                changed = len(_leaves(msgspec.json.decode(proposed)))
            group["fields_changed"] = group.get("fields_changed", 0) + changed
        seconds: dict[tuple[str, str, str], list[float]] = {}
        for task, template_id, model_id, taken in timed:
            seconds.setdefault((task, template_id, model_id), []).append(taken)
        return [_quality_row(key, counts, seconds.get(key, [])) for key, counts in sorted(groups.items())]

    def _select(self, where: str, params: list[Any], *, limit: int) -> list[ReviewItem]:
        with self._store.reading() as conn:
            rows = list(
                rows_as_dicts(
                    conn.execute(
                        f"SELECT q.* FROM review_queue q {where} ORDER BY q.created_at DESC, q.id LIMIT ?",
                        [*params, limit],
                    )
                )
            )
            decisions = {}
            ids = [row["id"] for row in rows]
            if ids:
                marks = ", ".join("?" * len(ids))
                for record in rows_as_dicts(
                    conn.execute(f"SELECT * FROM reviews WHERE review_id IN ({marks})", ids)
                ):
                    decisions[record["review_id"]] = _record(record)
        items = []
        for row in rows:
            fields = {k: msgspec.json.decode(v) if k in _JSON_QUEUE else v for k, v in row.items()}
            items.append(msgspec.convert({**fields, "decision": decisions.get(row["id"])}, ReviewItem))
        return items


def _record(row: dict[str, Any]) -> ReviewRecord:
    fields = dict(row)
    fields["changes"] = decode_content(fields["changes"], [])
    fields["final"] = decode_content(fields["final"])
    fields["note"] = None if is_tombstone(fields.get("note")) else fields.get("note")
    return msgspec.convert(fields, ReviewRecord)


def _quality_row(key: tuple[str, str, str], counts: dict[str, int], seconds: list[float]) -> QualityRow:
    accepted, edited, rejected = (counts.get(k, 0) for k in ("accept", "edit", "reject"))
    reviewed = accepted + edited + rejected
    fields_reviewed, fields_changed = counts.get("fields_reviewed", 0), counts.get("fields_changed", 0)
    return QualityRow(
        task=key[0],
        template_id=key[1],
        model_id=key[2],
        runs=counts["runs"],
        queued=counts["queued"],
        reviewed=reviewed,
        accepted=accepted,
        edited=edited,
        rejected=rejected,
        override_rate=round((edited + rejected) / reviewed, 4) if reviewed else None,
        fields_reviewed=fields_reviewed,
        fields_changed=fields_changed,
        field_override_rate=round(fields_changed / fields_reviewed, 4) if fields_reviewed else None,
        review_rate=round(counts["queued"] / counts["runs"], 4) if counts["runs"] else None,
        reviews_timed=len(seconds),
        median_review_seconds=round(statistics.median(seconds), 3) if seconds else None,
    )
