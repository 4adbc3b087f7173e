"""Mail, OneDrive and calendar into the document index, incrementally, through Graph delta queries.

`GraphSync.run()` is a plain function that returns what it did (a `SyncSummary`). Per scope (each mail
folder, the drive, the calendar) it follows the delta feed page by page: every item is validated
(`models.py`); a valid one is indexed (`graph:message:<id>`, `graph:driveItem:<id>`, `graph:event:<id>`)
or removed (`@removed`, `deleted`); an invalid one is quarantined with its payload and error, logged
and counted, and re-fetched by id at the end of every run until it validates. The page goes into the
index before its successor link goes into `SyncState`, so a crash at any point resumes from the last
recorded link and re-applies at most one page (see `state.py`). A 410 starts a full round of that
scope, which also removes what disappeared meanwhile. One scope failing (Graph unavailable after all
retries) is reported and the others go on.

Messages are requested with immutable ids (`Prefer: IdType="ImmutableId"`, in `graph.py`), so a message
moved between folders keeps its id: it is removed from the index only if the folder reporting it
removed is still the folder it was last seen in.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from deskpilot.indexes import SUPPORTED_SUFFIXES, DocumentIndex, DocumentInput, SkipFile, load_bytes
from deskpilot.server.connectors.graph import (
    MESSAGE_SELECT,
    Cancelled,
    DeltaExpired,
    GraphClient,
    GraphError,
    ItemDrift,
    NotFound,
    PageDrift,
    decode_item,
    quote_id,
)
from deskpilot.server.connectors.models import (
    DriveItem,
    Event,
    MailFolder,
    Message,
    drive_document,
    event_document,
    message_document,
)
from deskpilot.server.connectors.state import Cursor, SyncState
from deskpilot.server.settings import Settings

__all__ = ["GraphSync", "SyncBusy", "SyncLock", "SyncProgress", "SyncSummary"]

log = logging.getLogger("deskpilot.connectors")
ProgressCallback = Callable[["SyncProgress"], None]
_TEXT_BODY = 'outlook.body-content-type="text"'
_MAX_RESYNCS = 2  # per scope and run: a feed that keeps expiring is a failure, not a loop


class SyncProgress(msgspec.Struct, rename="camel", kw_only=True):
    phase: str  # "folders", "mail", "files", "calendar", "repair", "done"
    scope: str = ""
    items_done: int = 0
    items_total: int | None = None  # known for a first sync of the mailbox (folders' item counts)
    pages: int = 0
    retries: int = 0
    quarantined: int = 0


class SyncSummary(msgspec.Struct, rename="camel", kw_only=True):
    indexed: int = 0  # new or changed items (re)indexed
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0  # drive files not indexed: type, size, unreadable
    quarantined: int = 0  # payloads that did not validate in this run
    repaired: int = 0  # quarantined earlier, valid (or gone) now
    resyncs: int = 0  # full rounds after an expired delta link
    new_mail: int = 0  # new messages handed to the workflow triggers
    folders: int = 0
    pages: int = 0
    requests: int = 0
    retries: dict[str, int] = {}
    seconds: float = 0.0
    cancelled: bool = False
    errors: list[str] = []

    def line(self) -> str:
        retries = sum(self.retries.values())
        text = (
            f"indexed {self.indexed}, unchanged {self.unchanged}, removed {self.removed}, "
            f"skipped {self.skipped}, quarantined {self.quarantined}, repaired {self.repaired}; "
            f"{self.folders} folders, {self.pages} pages, {self.requests} requests, {retries} retried, "
            f"{self.resyncs} resyncs in {self.seconds:.1f} s"
        )
        return (
            text
            + (" (cancelled)" if self.cancelled else "")
            + (f"; {len(self.errors)} error(s)" if self.errors else "")
        )


class SyncBusy(RuntimeError):
    """Another sync (the server's or a `deskpilot sync`) holds the sync lock."""


class SyncLock:
    """One sync per app folder across processes (the server's, `deskpilot sync`); the operating system
    releases the lock when its holder dies, kill -9 included, so a crash never leaves it stuck."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if sys.platform == "win32":  # (not os.name: mypy reads only sys.platform as the platform)
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise SyncBusy("a sync is already running (the server's or another `deskpilot sync`)") from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SyncLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _field(raw: bytes | msgspec.Raw, name: str = "id") -> str | None:
    """A string property of a payload that may not match its Struct (to name what is quarantined)."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    found = value.get(name) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def _is_new(cursor: Any) -> bool:
    return cursor is None or bool(cursor.full)


class _Batch:
    """What one page does to the index and the state."""

    def __init__(self) -> None:
        self.docs: list[DocumentInput] = []
        self.put: list[dict[str, Any]] = []
        self.remove: list[str] = []
        self.new_mail: list[dict[str, Any]] = []


class GraphSync:
    def __init__(
        self,
        client: GraphClient,
        index: DocumentIndex,
        state: SyncState,
        settings: Settings,
        *,
        progress: ProgressCallback | None = None,
        now: Callable[[], datetime] | None = None,
        on_new_mail: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.client, self.index, self.state, self.settings = client, index, state, settings
        # New mail (not seen before, outside a scope's first full round) for the workflow triggers; it
        # is handed over before the page's link is recorded, like the index, so a crash re-delivers it
        # (the event log deduplicates by message id).
        self._on_new_mail = on_new_mail
        self._full_round: set[str] = set()
        self._progress_cb = progress
        self._now = now or (lambda: datetime.now(UTC))
        self.summary = SyncSummary()
        self.progress = SyncProgress(phase="starting")
        self._folder_names: dict[str, str] = {}
        self._quarantined_now: set[tuple[str, str]] = set()  # (kind, id): not re-fetched in the same run

    # -- the run ---------------------------------------------------------------------------------------

    def run(self, *, full: bool = False) -> SyncSummary:
        started = time.monotonic()
        run_id = self.state.start_run()
        status, error = "failed", None
        try:
            self._run(full)
            status = "ok" if not self.summary.errors else "partial"
        except Cancelled:
            self.summary.cancelled = True
            status = "cancelled"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.summary.seconds = round(time.monotonic() - started, 3)
            self.summary.requests = self.client.stats["requests"]
            self.summary.pages = self.client.stats["pages"]
            self.summary.retries = {
                k.removeprefix("retry:"): v for k, v in self.client.stats.items() if k.startswith("retry:")
            }
            self._report("done")
            self.state.finish_run(run_id, status, msgspec.to_builtins(self.summary), error)
            log.info("sync %s: %s", status, self.summary.line())
        return self.summary

    def _run(self, full: bool) -> None:
        folders = self._mail_folders()
        if full:
            for cursor in self.state.cursors():
                self.state.begin_full_round(cursor.scope, cursor.name)
        if folders is not None:
            known = {f"mail:{f.id}" for f in folders}
            for cursor in self.state.cursors():
                if cursor.scope.startswith("mail:") and cursor.scope not in known:
                    self._drop_scope(cursor.scope)
            new = [f for f in folders if _is_new(self.state.cursor(f"mail:{f.id}"))]
            self.progress.items_total = sum(f.total_item_count or 0 for f in new) or None
            for folder in folders:
                self._follow(
                    f"mail:{folder.id}",
                    self._folder_names[folder.id],
                    "mail",
                    f"me/mailFolders/{quote_id(folder.id)}/messages/delta",
                    {"$select": MESSAGE_SELECT},
                    self._apply_messages,
                )
        self._follow("drive", "OneDrive", "files", "me/drive/root/delta", None, self._apply_drive)
        now = self._now()
        window = timedelta(days=self.settings.graph_calendar_days)
        self._follow(
            "calendar",
            "Calendar",
            "calendar",
            "me/calendarView/delta",
            {"startDateTime": _iso(now - window), "endDateTime": _iso(now + window)},
            self._apply_events,
        )
        self._repair()

    def _report(self, phase: str, scope: str = "") -> None:
        p = self.progress
        p.phase, p.scope = phase, scope or p.scope
        p.pages = self.client.stats["pages"]
        p.retries = sum(v for k, v in self.client.stats.items() if k.startswith("retry:"))
        p.quarantined = self.summary.quarantined
        if self._progress_cb is not None:
            self._progress_cb(msgspec.structs.replace(p))

    # -- mail folders ----------------------------------------------------------------------------------

    def _mail_folders(self) -> list[MailFolder] | None:
        """Every mail folder (children too), or None when the list could not be read completely."""
        self._report("folders")
        out: list[MailFolder] = []
        pending: list[tuple[str, str]] = [("me/mailFolders", "")]
        try:
            while pending:
                url, prefix = pending.pop(0)
                for page in self.client.pages(url):
                    for raw in page.value:
                        try:
                            folder = decode_item(raw, MailFolder)
                        except ItemDrift as exc:
                            self._quarantine("folders", "mailFolder", raw, exc)
                            return None  # an unreadable folder must not look like a deleted one
                        name = f"{prefix}/{folder.display_name}" if prefix else folder.display_name
                        self._folder_names[folder.id] = name
                        out.append(folder)
                        if folder.child_folder_count:
                            pending.append((f"me/mailFolders/{quote_id(folder.id)}/childFolders", name))
        except (GraphError, PageDrift) as exc:
            self._fail("mail folders", exc)
            return None
        self.summary.folders = len(out)
        return out

    def _drop_scope(self, scope: str) -> None:
        sources = self.state.in_scope(scope)
        for source in sources:
            self.summary.removed += self.index.remove_document(source)
        self.state.drop_scope(scope)
        log.info("folder %s is gone: removed its %d item(s) from the index", scope, len(sources))

    # -- one delta feed --------------------------------------------------------------------------------

    def _follow(
        self,
        scope: str,
        name: str,
        phase: str,
        start: str,
        params: dict[str, str] | None,
        apply: Callable[[str, Sequence[msgspec.Raw], _Batch], None],
    ) -> None:
        cursor = self._open_cursor(scope, name)
        url, use_params = cursor.next_link or cursor.delta_link, None
        if url is None:
            url, use_params = start, params
        prefer = _TEXT_BODY if phase != "files" else ""
        resyncs = 0
        self._report(phase, name)
        while True:
            try:
                page = self.client.get_page(url, params=use_params, prefer=prefer)
            except DeltaExpired as exc:
                resyncs += 1
                self.summary.resyncs += 1
                if resyncs > _MAX_RESYNCS:
                    self._fail(name, exc)
                    return
                log.warning(
                    "%s: delta link expired (%s); resyncing the whole %s", name, exc.code or exc, phase
                )
                cursor = self.state.begin_full_round(scope, name)
                self._full_round.add(scope)
                url, use_params = start, params
                continue
            except PageDrift as exc:
                self._quarantine(scope, "page", exc.body, exc)
                self._fail(name, exc)
                return
            except (GraphError, NotFound) as exc:
                self._fail(name, exc)
                return
            batch = _Batch()
            apply(scope, page.value, batch)
            self._commit(scope, cursor.round, batch, page.next_link, page.delta_link)
            self.progress.items_done += len(page.value)
            self._report(phase, name)
            if page.next_link:
                url, use_params = page.next_link, None
                continue
            if page.delta_link is None:
                self._quarantine(
                    scope, "page", msgspec.json.encode(page), ValueError("no nextLink or deltaLink")
                )
                self._fail(name, GraphError("a page with neither @odata.nextLink nor @odata.deltaLink"))
                return
            if cursor.full:
                self._sweep(scope, cursor.round)
            return

    def _open_cursor(self, scope: str, name: str) -> Cursor:
        """Where the feed goes on from; a full round when there is no link to go on from."""
        cursor = self.state.cursor(scope)
        if cursor is None or (cursor.delta_link is None and cursor.next_link is None):
            cursor = self.state.begin_full_round(scope, name)
        elif cursor.name != name:
            self.state.rename(scope, name)
        if cursor.full:
            self._full_round.add(scope)
        else:
            self._full_round.discard(scope)
        return cursor

    def _commit(
        self, scope: str, round_: int, batch: _Batch, next_link: str | None, delta_link: str | None
    ) -> None:
        if batch.new_mail and self._on_new_mail is not None:
            self._on_new_mail(batch.new_mail)
            self.summary.new_mail += len(batch.new_mail)
        if batch.docs:
            for info in self.index.add_documents(batch.docs):
                if info.changed:
                    self.summary.indexed += 1
                else:
                    self.summary.unchanged += 1
        for source in batch.remove:
            self.summary.removed += self.index.remove_document(source)
        self.state.commit_page(
            scope, round_, put=batch.put, forget=batch.remove, next_link=next_link, delta_link=delta_link
        )

    def _sweep(self, scope: str, round_: int) -> None:
        """End of a full round: what the scope held before and did not show this time is gone."""
        gone = self.state.unseen(scope, round_)
        for source in gone:
            self.summary.removed += self.index.remove_document(source)
        self.state.commit_page(scope, round_, forget=gone)
        if gone:
            log.info("%s: %d item(s) no longer there after a full round", scope, len(gone))

    def _fail(self, name: str, exc: Exception) -> None:
        message = f"{name}: {exc}"
        self.summary.errors.append(message)
        log.error("sync of %s stopped: %s (resumes from its last page next time)", name, exc)

    def _quarantine(self, scope: str, kind: str, raw: bytes | msgspec.Raw, exc: Exception) -> str | None:
        graph_id = _field(raw) if kind != "page" else None
        if graph_id:
            self._quarantined_now.add((kind, graph_id))
        self.state.quarantine(scope, kind, graph_id, bytes(raw), str(exc))
        self.summary.quarantined += 1
        log.warning(
            "quarantined a %s payload that does not match the schema (scope %s, id %s): %s",
            kind,
            scope,
            (graph_id or "?")[:24],
            exc,
        )
        return graph_id

    def _keep_seen(self, batch: _Batch, source: str) -> None:
        """A quarantined item keeps its last good version in the index: a full round must not sweep it."""
        row = self.state.item(source)
        if row is not None:
            batch.put.append(
                {
                    "source": row.source,
                    "scope": row.scope,
                    "kind": row.kind,
                    "graph_id": row.graph_id,
                    "parent": row.parent,
                    "tag": row.tag,
                    "indexed": int(row.indexed),
                }
            )

    # -- items -----------------------------------------------------------------------------------------

    def _apply_messages(self, scope: str, values: Sequence[msgspec.Raw], batch: _Batch) -> None:
        folder = self._folder_names.get(scope.removeprefix("mail:"), "")
        for raw in values:
            try:
                message = decode_item(raw, Message)
            except ItemDrift as exc:
                graph_id = self._quarantine(scope, "message", raw, exc)
                if graph_id:
                    self._keep_seen(batch, f"graph:message:{graph_id}")
                continue
            source = f"graph:message:{message.id}"
            if message.removed is not None:
                row = self.state.item(source)
                if row is not None and row.scope == scope:  # not when it moved to a folder synced earlier
                    batch.remove.append(source)
                continue
            if (
                self._on_new_mail is not None
                and scope not in self._full_round
                and self.state.item(source) is None
            ):
                batch.new_mail.append(_mail_event(message, folder))
            batch.docs.append(message_document(message, folder))
            batch.put.append(
                {
                    "source": source,
                    "scope": scope,
                    "kind": "message",
                    "graph_id": message.id,
                    "tag": message.change_key,
                }
            )

    def _apply_events(self, scope: str, values: Sequence[msgspec.Raw], batch: _Batch) -> None:
        for raw in values:
            try:
                event = decode_item(raw, Event)
            except ItemDrift as exc:
                graph_id = self._quarantine(scope, "event", raw, exc)
                if graph_id:
                    self._keep_seen(batch, f"graph:event:{graph_id}")
                continue
            source = f"graph:event:{event.id}"
            if event.removed is not None:
                batch.remove.append(source)
                continue
            batch.docs.append(event_document(event))
            batch.put.append({"source": source, "scope": scope, "kind": "event", "graph_id": event.id})

    def _apply_drive(self, scope: str, values: Sequence[msgspec.Raw], batch: _Batch) -> None:
        for raw in values:
            try:
                item = decode_item(raw, DriveItem)
            except ItemDrift as exc:
                graph_id = self._quarantine(scope, "driveItem", raw, exc)
                if graph_id:
                    self._keep_seen(batch, f"graph:driveItem:{graph_id}")
                continue
            source = f"graph:driveItem:{item.id}"
            if item.deleted is not None or item.removed is not None:
                batch.remove += [source, *self._descendants(item.id)]
                continue
            if item.root is not None:
                continue
            parent = item.parent_reference.id if item.parent_reference else None
            row = {"source": source, "scope": scope, "graph_id": item.id, "parent": parent, "tag": item.e_tag}
            if item.folder is not None or item.file is None:
                batch.put.append({**row, "kind": "folder", "indexed": 0})
                continue
            self._apply_file(item, row, batch)

    def _descendants(self, folder_id: str) -> list[str]:
        out: list[str] = []
        for child in self.state.children(folder_id):
            out.append(child.source)
            if child.kind == "folder":
                out += self._descendants(child.graph_id)
        return out

    def _apply_file(self, item: DriveItem, row: dict[str, Any], batch: _Batch) -> None:
        source = row["source"]
        known = self.state.item(source)
        if known is not None and item.e_tag and known.tag == item.e_tag:
            batch.put.append({**row, "kind": known.kind, "indexed": int(known.indexed)})
            self.summary.unchanged += 1
            return
        suffix = Path(item.name or "").suffix.lower()
        reason = None
        if suffix not in SUPPORTED_SUFFIXES:
            reason = "unsupported"
        elif item.size is not None and item.size > self.settings.graph_max_file_bytes:
            reason = "too_large"
        else:
            try:
                content = self.client.download(f"me/drive/items/{quote_id(item.id)}/content", item.size)
                loaded = load_bytes(content, suffix)
            except SkipFile as exc:
                reason = str(exc.reason)
            except NotFound:
                reason = "gone"  # deleted between the delta page and the download; the next round says so
            else:
                batch.docs.append(drive_document(item, loaded.segments, title=loaded.title, kind=loaded.kind))
                batch.put.append({**row, "kind": "file", "indexed": 1})
                return
        self.summary.skipped += 1
        if known is not None and known.indexed:  # e.g. renamed to a type the index cannot read
            self.summary.removed += self.index.remove_document(source)
        batch.put.append({**row, "kind": "file", "indexed": 0, "skipped": reason})

    # -- quarantine repair -----------------------------------------------------------------------------

    def _repair(self) -> None:
        """Re-fetch quarantined items by id: valid now means indexed, 404 means gone."""
        entries = [
            e
            for e in self.state.open_quarantine()
            if e[3] and e[2] in _ITEM_URLS and (e[2], e[3]) not in self._quarantined_now
        ]
        if not entries:
            return
        self._report("repair")
        for _, scope, kind, graph_id in entries:
            assert graph_id is not None
            url, params, apply = _ITEM_URLS[kind]
            source = f"graph:{kind}:{graph_id}"
            try:
                raw = self.client.get_item(
                    url.format(quote_id(graph_id)),
                    msgspec.Raw,
                    params=params,
                    prefer=_TEXT_BODY if kind != "driveItem" else "",
                )
            except NotFound:
                self.summary.removed += self.index.remove_document(source)
                self.state.commit_page(scope, 0, forget=[source])
                self.state.resolve(kind, graph_id)
                self.summary.repaired += 1
                continue
            except (GraphError, ItemDrift) as exc:
                log.info("quarantined %s %s not repaired yet: %s", kind, graph_id[:24], exc)
                continue
            before = self.summary.quarantined
            batch = _Batch()
            target = scope
            if kind == "message":
                folder = _field(raw, "parentFolderId")
                target = f"mail:{folder}" if folder and self.state.cursor(f"mail:{folder}") else scope
            cursor = self.state.cursor(target)
            getattr(self, apply)(target, [raw], batch)
            if self.summary.quarantined == before:
                self._commit(target, cursor.round if cursor else 0, batch, None, None)
                self.state.resolve(kind, graph_id)
                self.summary.repaired += 1


_ITEM_URLS: dict[str, tuple[str, dict[str, str] | None, str]] = {
    "message": ("me/messages/{}", {"$select": MESSAGE_SELECT}, "_apply_messages"),
    "event": ("me/events/{}", None, "_apply_events"),
    "driveItem": ("me/drive/items/{}", None, "_apply_drive"),
}


def _mail_event(message: Message, folder: str) -> dict[str, Any]:
    sender = message.sender.email_address if message.sender else None
    return {
        "messageId": message.id,
        "sourceRef": f"graph:message:{message.id}",
        "folder": folder,
        "sender": (sender.address or "") if sender else "",
        "subject": message.subject or "",
        "text": (message.body.text() if message.body else "") or message.body_preview or "",
        "receivedAt": message.received_date_time.isoformat() if message.received_date_time else None,
        "webLink": message.web_link,
        "conversationId": message.conversation_id,
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
