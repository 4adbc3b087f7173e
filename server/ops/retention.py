"""Retention, erasure and legal hold: personal data leaves on time, on request, or not at all while held.

What is kept, and for how long, is a setting per kind of data (`retention_*_days` in server/settings.py):
- inputs: the text a run read (lineage `runs.input`, kept only with `retain_inputs`) and a pending review's
  source text;
- outputs: what a model wrote (`runs.output`) and what a reviewer decided (`reviews.changes`, `final`,
  `note`), and the review list's proposals;
- examples: what the assistant learnt from corrections (`vendor_examples`, `triage_examples`);
- synced: mail, events and files synced from Microsoft 365 into the document index, by their own date, and
  quarantined sync payloads.

How content leaves the audit chain without breaking it: runs and reviews are hashed over their content's
digest (server/lineage/_chain.py, v2), so a purge replaces the text with "purged sha256:<digest>" and the
row still verifies. Each purge or erasure is itself a chained governance event (`audit_events`) naming
every row it touched and counting everything else it removed, so `deskpilot audit verify` can tell a
lawful purge from tampering. The files are written with SQLite's secure_delete and their write-ahead logs
checkpointed after, so removed text is not left in free pages or the log.

`erase(subject)` (`deskpilot audit erase --subject EMAIL`) removes what mentions one person's address:
runs whose input or output mentions it (and the review decisions, review items, cached answers and
examples that came from those runs), indexed documents (synced mail included) that mention it in their
text, title or metadata, and quarantined sync payloads. The event names the subject by a digest of the
address, never the address.

A legal hold (`deskpilot audit hold set --reason ...`) suspends both: purging and erasure refuse with
`LegalHold` until it is released. Setting and releasing are chained events too.

Drift's embeddings of inputs (vectors, no text) follow the inputs' period. Not covered, plainly: runs
still in progress (`open_runs`) are left until they close; the action and workflow tables (drafts an
approved action sent, its log) are records of what was done on the user's behalf and are kept; an erasure
cannot find a subject's drift embeddings (they carry no text or run id): they leave with the inputs' period.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import msgspec

from deskpilot.indexes.mentions import SQL_FUNCTION as MENTIONS
from deskpilot.indexes.mentions import register as register_mentions
from deskpilot.server.core.db import iso_utc
from deskpilot.server.core.wire import Out
from deskpilot.server.lineage import LineageStore
from deskpilot.server.settings import Settings

__all__ = ["EraseReport", "Hold", "LegalHold", "PurgeReport", "Retention", "RetentionStatus"]

log = logging.getLogger(__name__)

_HOLD_EVENTS = ("hold.set", "hold.released")
_SYNCED_PREFIX = "graph:"


class LegalHold(RuntimeError):
    """Purging and erasure are suspended while a legal hold is in place."""


class DocumentStore(Protocol):
    """What retention needs of the document index (indexes/index.py `DocumentIndex`)."""

    def find_documents(
        self,
        *,
        mentioning: str | None = None,
        dated_before: datetime | None = None,
        source_prefix: str | None = None,
    ) -> list[str]: ...

    def remove_documents(self, documents: list[str]) -> int: ...


class Hold(Out):
    since: str
    actor: str
    reason: str


class RetentionStatus(Out):
    """What the dashboard shows: days kept per kind of data (None: for ever), the hold, the last purge."""

    policy: dict[str, int | None]  # inputs, outputs, examples, synced
    hold: Hold | None
    last_purge_at: str | None
    check_seconds: float


class PurgeReport(msgspec.Struct, kw_only=True):
    """What one purge removed, per kind; `cutoffs` are the times before which each kind was purged."""

    at: str
    dry_run: bool = False
    cutoffs: dict[str, str]
    runs_inputs: int = 0
    runs_outputs: int = 0
    reviews: int = 0
    review_items: int = 0
    examples: int = 0
    drift_samples: int = 0  # drift's embeddings of inputs past the inputs' period
    documents: int = 0
    quarantined: int = 0
    event: str | None = None  # the chained purge entry's hash

    def total(self) -> int:
        counts = (self.runs_inputs, self.runs_outputs, self.reviews, self.review_items, self.examples)
        return sum(counts) + self.drift_samples + self.documents + self.quarantined


class EraseReport(msgspec.Struct, kw_only=True):
    subject_digest: str
    dry_run: bool = False
    runs: int = 0
    reviews: int = 0
    review_items: int = 0
    cached_answers: int = 0
    examples: int = 0
    documents: int = 0
    quarantined: int = 0
    event: str | None = None


class Retention:
    """Purges by policy, erases by subject, and keeps the legal hold; one per process, any thread."""

    def __init__(
        self,
        lineage: LineageStore,
        settings: Settings,
        *,
        index: Callable[[], DocumentStore] | None = None,
    ) -> None:
        self.lineage, self.settings = lineage, settings
        self._index = index  # built only when documents are touched (the index loads an embedder)

    # -- legal hold -----------------------------------------------------------------------------------

    def hold(self) -> Hold | None:
        """The legal hold in place, or None: the latest hold event decides."""
        latest = self.lineage.events(kinds=_HOLD_EVENTS, limit=1)
        if not latest or latest[0]["kind"] != "hold.set":
            return None
        event = latest[0]
        return Hold(since=event["at"], actor=event["actor"], reason=event["details"].get("reason", ""))

    def set_hold(self, reason: str, *, actor: str) -> Hold:
        if not reason.strip():
            raise ValueError("a legal hold needs a reason (a matter, a ticket)")
        current = self.hold()
        if current is not None:
            return current
        event = self.lineage.record_event("hold.set", {"reason": reason.strip()}, actor=actor)
        return Hold(since=event["at"], actor=actor, reason=reason.strip())

    def release_hold(self, reason: str, *, actor: str) -> bool:
        """Release the hold; False when there was none."""
        if self.hold() is None:
            return False
        self.lineage.record_event("hold.released", {"reason": reason.strip()}, actor=actor)
        return True

    def _refuse_if_held(self, what: str) -> None:
        hold = self.hold()
        if hold is not None:
            raise LegalHold(f"{what} refused: a legal hold is in place since {hold.since} ({hold.reason})")

    def status(self) -> RetentionStatus:
        last = self.lineage.events(kinds=["retention.purge"], limit=1)
        return RetentionStatus(
            policy={
                "inputs": self.settings.retention_inputs_days,
                "outputs": self.settings.retention_outputs_days,
                "examples": self.settings.retention_examples_days,
                "synced": self.settings.retention_synced_days,
            },
            hold=self.hold(),
            last_purge_at=last[0]["at"] if last else None,
            check_seconds=self.settings.retention_check_seconds,
        )

    # -- purging by policy ----------------------------------------------------------------------------

    def cutoffs(self, now: datetime) -> dict[str, datetime]:
        days = {
            "inputs": self.settings.retention_inputs_days,
            "outputs": self.settings.retention_outputs_days,
            "examples": self.settings.retention_examples_days,
            "synced": self.settings.retention_synced_days,
        }
        return {kind: now - timedelta(days=n) for kind, n in days.items() if n is not None}

    def due(self, now: datetime | None = None) -> bool:
        """Whether a periodic purge is due: a policy is set, no hold is in place, and the last purge (a
        chained event, so this survives restarts) is at least `retention_check_seconds` old."""
        now = now or self.lineage.now()
        if not self.cutoffs(now) or self.hold() is not None:
            return False
        last = self.lineage.events(kinds=["retention.purge"], limit=1)
        period = timedelta(seconds=self.settings.retention_check_seconds)
        return not last or datetime.fromisoformat(last[0]["at"]) <= now - period

    def purge_if_due(self, now: datetime | None = None) -> PurgeReport | None:
        """The worker's periodic call: `purge()` when `due()`."""
        now = now or self.lineage.now()
        return self.purge(now=now, actor="retention policy") if self.due(now) else None

    def purge(
        self, *, now: datetime | None = None, dry_run: bool = False, actor: str = "retention policy"
    ) -> PurgeReport:
        """Remove what the policy no longer allows to keep; a chained event records it (unless dry_run)."""
        self._refuse_if_held("purge")
        now = now or self.lineage.now()
        moments = self.cutoffs(now)
        cutoffs = {kind: iso_utc(at) for kind, at in moments.items()}
        report = PurgeReport(at=iso_utc(now), dry_run=dry_run, cutoffs=cutoffs)
        # The other files first, so the chained event below counts what they lost too.
        if "synced" in moments:
            report.documents = self._purge_documents(moments["synced"], dry_run)
            report.quarantined = self._purge_quarantine(cutoffs["synced"], None, dry_run)
        with self.lineage.transaction() as conn:
            present = _tables(conn)
            purged: dict[str, Any] = {}
            deleted: dict[str, int] = {}
            if "inputs" in cutoffs:
                purged["runs:input"] = _purge_inputs(conn, present, cutoffs["inputs"], report, dry_run)
            if "outputs" in cutoffs:
                seqs = _seqs(conn, "runs", "output", "started_at < ?", [cutoffs["outputs"]])
                report.runs_outputs = len(seqs)
                purged["runs:output"] = seqs
                review_seqs = _review_seqs(conn, "decided_at < ?", [cutoffs["outputs"]])
                report.reviews = len(review_seqs)
                purged["reviews"] = review_seqs
                report.review_items += _update(
                    conn,
                    dry_run,
                    "proposed = '{}', source_text = NULL",
                    "status != 'pending' AND proposed != '{}' AND created_at < ?",
                    [cutoffs["outputs"]],
                )
            if "examples" in cutoffs:
                for table in ("vendor_examples", "triage_examples"):
                    if table in present:
                        old = [
                            row[0]
                            for row in conn.execute(
                                f"SELECT id FROM {table} WHERE created_at < ?", [cutoffs["examples"]]
                            )
                        ]
                        deleted[table] = len(old)
                        if not dry_run:
                            _delete_in(conn, table, "id", old)
                report.examples = sum(deleted.values())
            if dry_run:
                return report
            details = {
                "cutoffs": cutoffs,
                "purged": _apply_purges(self.lineage, conn, purged),
                "counts": msgspec.structs.asdict(report) | {"event": None},
            }
            report.event = self.lineage.append_event(conn, "retention.purge", details, actor=actor)["hash"]
        _checkpoint(self.lineage.path)
        if report.total():
            log.info("retention purge: %s", msgspec.json.encode(report).decode())
        return report

    # -- erasure by subject ---------------------------------------------------------------------------

    def erase(self, subject: str, *, actor: str, dry_run: bool = False) -> EraseReport:
        """Remove every trace of one person's email address (see the module docstring for where)."""
        address = subject.strip().casefold()
        if "@" not in address or len(address) < 3 or any(c.isspace() for c in address):
            raise ValueError(f"not an email address: {subject!r}")
        self._refuse_if_held("erasure")
        report = EraseReport(subject_digest=subject_digest(address), dry_run=dry_run)
        # The other files first, so the chained event below counts what they lost too.
        report.documents = self._erase_documents(address, dry_run)
        report.quarantined = self._purge_quarantine(None, address, dry_run)
        with self.lineage.transaction() as conn:
            present = _tables(conn)
            run_rows = _mentioning(conn, "runs", ("input", "output"), address, "seq, id")
            run_ids = [row[1] for row in run_rows]
            report.runs = len(run_rows)
            review_seqs = sorted(
                {seq for (seq,) in _mentioning(conn, "reviews", ("changes", "final", "note"), address, "seq")}
                | set(_in(conn, "SELECT seq FROM reviews WHERE run_id IN ({})", run_ids))
            )
            report.reviews = len(review_seqs)
            queue_ids = set(_in(conn, "SELECT id FROM review_queue WHERE run_id IN ({})", run_ids))
            queue_ids |= {
                row[0]
                for row in _mentioning(conn, "review_queue", ("proposed", "source_text"), address, "id")
            }
            report.review_items = len(queue_ids)
            if "result_cache" in present:
                report.cached_answers = len(
                    _in(conn, "SELECT key FROM result_cache WHERE run_id IN ({})", run_ids)
                )
            example_ids = self._subject_examples(conn, present, address, run_ids)
            report.examples = sum(len(ids) for ids in example_ids.values())
            if dry_run:
                return report
            purged = {"runs": [row[0] for row in run_rows], "reviews": review_seqs}
            _delete_in(conn, "review_queue", "id", sorted(queue_ids))
            if "result_cache" in present:
                _delete_in(conn, "result_cache", "run_id", run_ids)
            for table, ids in example_ids.items():
                _delete_in(conn, table, "id", ids)
            details = {
                "subject": report.subject_digest,
                "purged": _apply_purges(self.lineage, conn, purged),
                "counts": msgspec.structs.asdict(report) | {"event": None},
            }
            report.event = self.lineage.append_event(conn, "audit.erase", details, actor=actor)["hash"]
        _checkpoint(self.lineage.path)
        log.info("erased subject %s: %s", report.subject_digest, msgspec.json.encode(report).decode())
        return report

    @staticmethod
    def _subject_examples(
        conn: sqlite3.Connection, present: set[str], address: str, run_ids: list[str]
    ) -> dict[str, list[str]]:
        searched = {
            "vendor_examples": ("header", "proposed", "vendor", "address"),
            "triage_examples": ("text",),
        }
        out: dict[str, list[str]] = {}
        for table, columns in searched.items():
            if table in present:
                ids = {row[0] for row in _mentioning(conn, table, columns, address, "id")}
                ids |= set(_in(conn, f"SELECT id FROM {table} WHERE run_id IN ({{}})", run_ids))
                out[table] = sorted(ids)
        return out

    # -- the other files ------------------------------------------------------------------------------

    def _documents(self) -> DocumentStore | None:
        return self._index() if self._index is not None else None

    def _purge_documents(self, before: datetime, dry_run: bool) -> int:
        index = self._documents()
        if index is None:
            return 0
        sources = index.find_documents(dated_before=before, source_prefix=_SYNCED_PREFIX)
        return len(sources) if dry_run else index.remove_documents(sources)

    def _erase_documents(self, address: str, dry_run: bool) -> int:
        index = self._documents()
        if index is None:
            return 0
        sources = index.find_documents(mentioning=address)
        return len(sources) if dry_run else index.remove_documents(sources)

    def _purge_quarantine(self, before: str | None, address: str | None, dry_run: bool = False) -> int:
        """Quarantined sync payloads (raw Graph JSON) older than `before` or mentioning `address`."""
        path = self.settings.sync_db_path
        if (before is None and address is None) or not path.is_file():
            return 0
        payload = "CAST(payload AS TEXT)"
        where, params = (
            ("at < ?", [before])
            if before is not None
            else (f"instr(lower({payload}), ?) AND {MENTIONS}({payload}, ?)", [address, address])
        )
        with closing(sqlite3.connect(path, timeout=30)) as conn:
            register_mentions(conn)
            conn.execute("PRAGMA secure_delete=ON")
            if "quarantine" not in _tables(conn):
                return 0
            if dry_run:
                (count,) = conn.execute(f"SELECT COUNT(*) FROM quarantine WHERE {where}", params).fetchone()
                return int(count)
            with conn:
                removed = conn.execute(f"DELETE FROM quarantine WHERE {where}", params).rowcount
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed


def subject_digest(address: str) -> str:
    """How events name an erased subject: a digest of the case-folded address. Pseudonymous, not
    anonymous: whoever knows the address can check that it was erased, which is what an auditor needs."""
    return "sha256:" + hashlib.sha256(f"deskpilot-erase\n{address.casefold()}".encode()).hexdigest()


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _seqs(conn: sqlite3.Connection, table: str, column: str, where: str, params: list[Any]) -> list[int]:
    """Rows of a chained table whose `column` still holds content and that match `where`."""
    sql = (
        f"SELECT seq FROM {table} WHERE {column} IS NOT NULL AND substr({column}, 1, 7) != 'purged ' "
        f"AND {where} ORDER BY seq"
    )
    return [seq for (seq,) in conn.execute(sql, params)]


def _review_seqs(conn: sqlite3.Connection, where: str, params: list[Any]) -> list[int]:
    live = " OR ".join(f"substr({c}, 1, 7) != 'purged '" for c in ("changes", "final", "note"))
    sql = f"SELECT seq FROM reviews WHERE ({live}) AND {where} ORDER BY seq"
    return [seq for (seq,) in conn.execute(sql, params)]


def _mentioning(
    conn: sqlite3.Connection, table: str, columns: tuple[str, ...], needle: str, select: str
) -> list[tuple[Any, ...]]:
    """Rows whose text columns mention the address `needle` as a whole address (indexes/mentions.py; a
    tombstone never matches one). `instr` first, so the check in Python runs only on candidates."""
    register_mentions(conn)
    where = " OR ".join(f"(instr(lower({c}), ?) AND {MENTIONS}({c}, ?))" for c in columns)
    return conn.execute(f"SELECT {select} FROM {table} WHERE {where}", [needle] * 2 * len(columns)).fetchall()


def _in(conn: sqlite3.Connection, sql: str, values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(values), 500):
        part = values[start : start + 500]
        out += [row[0] for row in conn.execute(sql.format(", ".join("?" for _ in part)), part)]
    return out


def _delete_in(conn: sqlite3.Connection, table: str, column: str, values: list[Any]) -> None:
    for start in range(0, len(values), 500):
        part = values[start : start + 500]
        conn.execute(f"DELETE FROM {table} WHERE {column} IN ({', '.join('?' for _ in part)})", part)


def _purge_inputs(
    conn: sqlite3.Connection, present: set[str], cutoff: str, report: PurgeReport, dry_run: bool
) -> list[int]:
    """Inputs past their period: the runs' (returned, to tombstone), review items' source text, and drift's
    embeddings of inputs (vectors, but derived from the text: the reference window then slides forward to
    the oldest kept)."""
    seqs = _seqs(conn, "runs", "input", "started_at < ?", [cutoff])
    report.runs_inputs = len(seqs)
    report.review_items += _update(
        conn, dry_run, "source_text = NULL", "source_text IS NOT NULL AND created_at < ?", [cutoff]
    )
    if "drift_samples" in present:
        (report.drift_samples,) = conn.execute(
            "SELECT COUNT(*) FROM drift_samples WHERE at < ?", [cutoff]
        ).fetchone()
        if not dry_run:
            conn.execute("DELETE FROM drift_samples WHERE at < ?", [cutoff])
    return seqs


def _update(conn: sqlite3.Connection, dry_run: bool, assign: str, where: str, params: list[Any]) -> int:
    """Count the review items `where` selects, then, unless dry_run, clear their content (`assign`)."""
    (count,) = conn.execute(f"SELECT COUNT(*) FROM review_queue WHERE {where}", params).fetchone()
    if count and not dry_run:
        conn.execute(f"UPDATE review_queue SET {assign} WHERE {where}", params)
    return int(count)


def _apply_purges(
    lineage: LineageStore, conn: sqlite3.Connection, purged: dict[str, list[int]]
) -> dict[str, Any]:
    """Tombstone the chained rows ("runs:input" -> seqs, ...) and return what the purge entry records,
    merged per table as `verify()` reads it."""
    out: dict[str, Any] = {}
    for key, seqs in purged.items():
        table, _, column = key.partition(":")
        if not seqs:
            continue
        done = lineage.purge(conn, table, seqs, [column] if column else None)
        merged = out.setdefault(table, {"columns": [], "v2": [], "v1": []})
        merged["columns"] = sorted(set(merged["columns"]) | set(done["columns"]))
        merged["v2"] = sorted(set(merged["v2"]) | set(done["v2"]))
        v1 = {entry["seq"]: entry for entry in merged["v1"]} | {entry["seq"]: entry for entry in done["v1"]}
        merged["v1"] = [v1[seq] for seq in sorted(v1)]
    return out


def _checkpoint(path: Path) -> None:
    """Fold the write-ahead log into the file and truncate it, so purged text does not linger in the log."""
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
