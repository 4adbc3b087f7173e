"""Mail, OneDrive, SharePoint libraries and calendar into the document index, incrementally, through Graph
delta queries.

`GraphSync.run()` is a plain function that returns what it did (a `SyncSummary`). Per scope (each mail
folder, the OneDrive, each SharePoint document library, the calendar) it follows the delta feed page by
page: every item is validated (`models.py`); a valid one is indexed (`graph:message:<id>`,
`graph:driveItem:<id>`, `graph:event:<id>`) or removed (`@removed`, `deleted`); an invalid one is
quarantined with its payload and error, logged and counted, and re-fetched by id at the end of every run
until it validates. The page goes into the index before its successor link goes into `SyncState`, so a
crash at any point resumes from the last recorded link and re-applies at most one page (see `state.py`).
An expired link (410, or any 40X whose code says the sync state is gone) starts a full round of that
scope, which also removes what disappeared meanwhile. One scope failing (Graph unavailable after all
retries) is reported and the others go on.

What real tenants do, and what the sync does about it:
- A file that cannot be fetched (403 `malwareDetected`, an empty 400, Graph failing on that one file) is
  recorded as skipped with its reason and retried on later runs, `graph_retry_first_seconds` later (15
  minutes), then doubling up to `graph_retry_max_seconds` (a day); it never stops its page, its scope or
  the others. A byte count that differs from `size` is not a fault (SharePoint rewrites Office and PDF
  files as it serves them): the bytes served are indexed and their real size recorded.
- The calendar window is part of the calendarView delta token, so a round started today keeps today's
  window for ever: when the window's start has moved by more than a day, the calendar starts a full
  round over the new window (its sweep removes what fell out of it).
- Deletes apply after the whole page: a folder reported deleted takes with it only what is still in it
  once the page's moves are applied (Graph: delete a folder locally only if it is empty after the
  changes), so a file moved out of it in the same page stays.
- Delta responses leave out `parentReference.path`: a file's path is rebuilt from its parent chain (folder
  names kept in the state, the page's folders, and a lookup by id for a parent not seen yet).
- Throttling: Retry-After is waited out however long and however often Graph asks, within a budget of
  waiting per scope and run (`graph_throttle_budget_seconds`); a longer wait defers that scope to the
  first run after it, from where it stood, and the other scopes go on.

SharePoint: the document libraries of the sites in `graph_sharepoint_sites`, or when that is empty of the
sites the user follows (`/me/followedSites`), each a scope "drive:<drive id>" that follows the same drive
delta as the OneDrive. A library that fails is reported and the others go on; a site whose libraries
cannot be listed keeps its libraries' scopes (they go on from their cursors), and libraries are dropped
from the index only when a complete listing no longer has them. Sites need the Sites.Read.All permission,
asked for apart from the rest (`auth.SITES_SCOPES`): a sign-in without it reports "SharePoint: needs the
Sites.Read.All permission..." and mail, OneDrive and calendar sync as before.

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
from deskpilot.server.connectors.auth import ConsentRequired
from deskpilot.server.connectors.graph import (
    MESSAGE_SELECT,
    Cancelled,
    DeltaExpired,
    GraphClient,
    GraphError,
    ItemDrift,
    NotFound,
    PageDrift,
    Throttled,
    decode_item,
    quote_id,
)
from deskpilot.server.connectors.models import (
    Drive,
    DriveItem,
    Event,
    MailFolder,
    Message,
    Site,
    drive_document,
    event_document,
    message_document,
)
from deskpilot.server.connectors.state import Cursor, ItemRow, SyncState
from deskpilot.server.core.db import iso_utc
from deskpilot.server.settings import Settings

__all__ = ["GraphSync", "SyncBusy", "SyncLock", "SyncProgress", "SyncSummary"]

log = logging.getLogger("deskpilot.connectors")
ProgressCallback = Callable[["SyncProgress"], None]
_TEXT_BODY = 'outlook.body-content-type="text"'
_MAX_RESYNCS = 2  # per scope and run: a feed that keeps expiring is a failure, not a loop
WINDOW_DRIFT = timedelta(days=1)  # the calendar restarts its delta round when its window moved this far


class SyncProgress(msgspec.Struct, rename="camel", kw_only=True):
    phase: str  # "folders", "mail", "files", "sites", "calendar", "retry", "repair", "done"
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
    expired: int = 0  # items older than `retention_synced_days`: not indexed (removed if they were)
    deferred: list[str] = []  # scopes throttled beyond their budget: they go on in a later run
    throttle_seconds: float = 0.0  # waited for Retry-After
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
            f"{self.resyncs} resyncs, {self.throttle_seconds:.1f} s throttled in {self.seconds:.1f} s"
            + (f"; {self.expired} past retention" if self.expired else "")
        )
        return (
            text
            + (" (cancelled)" if self.cancelled else "")
            + (f"; {len(self.deferred)} deferred" if self.deferred else "")
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
        self.gone: list[str] = []  # drive items reported deleted: their contents go after the page


class _Feed:
    """Where one scope's delta feed stands in this run."""

    def __init__(
        self,
        scope: str,
        name: str,
        phase: str,
        start: str,
        params: dict[str, str] | None,
        apply: Callable[[str, Sequence[msgspec.Raw], _Batch], None],
        cursor: Cursor,
    ) -> None:
        self.scope, self.name, self.phase, self.start, self.params = scope, name, phase, start, params
        self.apply, self.cursor = apply, cursor
        self.url: str = cursor.next_link or cursor.delta_link or start
        self.use_params = params if self.url == start else None
        self.prefer = _TEXT_BODY if phase != "files" else ""
        self.resyncs = 0


def drive_base(scope: str) -> str:
    """The Graph path of a drive scope's drive: "drive" is the user's OneDrive, "drive:<id>" another."""
    return "me/drive" if scope == "drive" else f"drives/{quote_id(scope.removeprefix('drive:'))}"


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
        self.throttle_budget = settings.graph_throttle_budget_seconds
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
        # Drive folders by id: (name, parent id); the root's name is None. For paths (see `_folder_path`).
        self._tree: dict[str, tuple[str | None, str | None]] = {}
        self._library_names: dict[str, str] = {}  # "drive:<id>" -> "Site / Library", for the index

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
            self.summary.throttle_seconds = round(self.client.throttle_waited, 3)
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
        self._follow_libraries()
        self._follow_calendar()
        self._retry_files()
        self._repair()

    def _follow_calendar(self) -> None:
        """The calendar's window slides with time; its delta token does not (the range is encoded in it),
        so a round whose window start has drifted by more than `WINDOW_DRIFT` is started again."""
        now = self._now()
        window = timedelta(days=self.settings.graph_calendar_days)
        start = now - window
        cursor = self.state.cursor("calendar")
        if cursor is not None and (cursor.delta_link or cursor.next_link):
            covered = _parse_iso(cursor.window_start)
            if covered is None or abs(covered - start) > WINDOW_DRIFT:
                log.info(
                    "calendar: the window moved from %s to %s; starting a new round",
                    cursor.window_start,
                    _iso(start),
                )
                self.state.begin_full_round("calendar", "Calendar")
        self._follow(
            "calendar",
            "Calendar",
            "calendar",
            "me/calendarView/delta",
            {"startDateTime": _iso(start), "endDateTime": _iso(now + window)},
            self._apply_events,
        )

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
        self.client.throttle_budget = self.throttle_budget
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
                        if folder.is_search_folder:
                            continue
                        name = f"{prefix}/{folder.display_name}" if prefix else folder.display_name
                        self._folder_names[folder.id] = name
                        out.append(folder)
                        if folder.child_folder_count:
                            pending.append((f"me/mailFolders/{quote_id(folder.id)}/childFolders", name))
        except Throttled as exc:
            self._note_deferred("mail folders", exc)
            return None
        except (GraphError, PageDrift) as exc:
            self._fail("mail folders", exc)
            return None
        finally:
            self.client.throttle_budget = None
        self.summary.folders = len(out)
        return out

    # -- SharePoint document libraries -------------------------------------------------------------------

    def _follow_libraries(self) -> None:
        """Every library of the configured or followed sites, each through its own drive delta."""
        listed, complete = self._libraries()
        known = {c.scope: c.name for c in self.state.cursors() if c.scope.startswith("drive:")}
        if complete:
            for scope in known.keys() - listed.keys():
                self._drop_scope(scope)
            known = {}
        self._library_names = {**known, **listed}
        for scope, name in self._library_names.items():
            self._follow(scope, name, "files", f"{drive_base(scope)}/root/delta", None, self._apply_drive)

    def _libraries(self) -> tuple[dict[str, str], bool]:
        """The document libraries to sync ("drive:<id>" -> "Site / Library"), and whether the listing is
        complete: a site that could not be listed must not look like one the user stopped following."""
        self._report("sites")
        out: dict[str, str] = {}
        self.client.throttle_budget = self.throttle_budget
        try:
            sites, complete = self._sites()
            for site in sites:
                complete = self._site_libraries(site, out) and complete
        except Throttled as exc:
            self._note_deferred("SharePoint sites", exc)
            return out, False
        except ConsentRequired as exc:  # no Sites.Read.All: the libraries known so far go on (Files.*)
            self._fail("SharePoint", exc)
            return out, False
        finally:
            self.client.throttle_budget = None
        return out, complete

    def _sites(self) -> tuple[list[Site], bool]:
        """The configured sites, or else those the user follows; and whether all of them could be read."""
        sites: list[Site] = []
        try:
            if not self.settings.graph_sharepoint_sites:
                pages = self.client.pages("me/followedSites")
                return [decode_item(raw, Site) for page in pages for raw in page.value], True
        except Throttled:
            raise
        except (GraphError, NotFound, PageDrift, ItemDrift) as exc:
            self._fail("SharePoint sites followed", exc)
            return [], False
        complete = True
        for site_id in self.settings.graph_sharepoint_sites:  # one missing site must not hide the others
            try:
                sites.append(self.client.get_item(f"sites/{quote_id(site_id)}", Site))
            except Throttled:
                raise
            except (GraphError, NotFound, ItemDrift) as exc:
                self._fail(f"SharePoint site {site_id}", exc)
                complete = False
        return sites, complete

    def _site_libraries(self, site: Site, out: dict[str, str]) -> bool:
        """Add the site's document libraries to `out`; whether they could be listed."""
        site_name = site.display_name or site.name or site.id
        try:
            for page in self.client.pages(f"sites/{quote_id(site.id)}/drives"):
                for raw in page.value:
                    drive = decode_item(raw, Drive)
                    if drive.drive_type in (None, "documentLibrary"):
                        out[f"drive:{drive.id}"] = f"{site_name} / {drive.name or drive.id}"
        except Throttled:
            raise
        except (GraphError, NotFound, PageDrift, ItemDrift) as exc:
            self._fail(f"SharePoint site {site_name}", exc)
            return False
        return True

    def _drop_scope(self, scope: str) -> None:
        sources = self.state.in_scope(scope)
        for source in sources:
            self.summary.removed += self.index.remove_document(source)
        self.state.drop_scope(scope)
        log.info("scope %s is gone: removed its %d item(s) from the index", scope, len(sources))

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
        if cursor.deferred_until and cursor.deferred_until > iso_utc(self._now()):
            self.summary.deferred.append(f"{name}: throttled, goes on after {cursor.deferred_until}")
            log.info("%s: throttled earlier; goes on after %s", name, cursor.deferred_until)
            return
        feed = _Feed(scope, name, phase, start, params, apply, cursor)
        if feed.use_params is not None:
            self._round_starts(feed)
        self._report(phase, name)
        self.client.throttle_budget = self.throttle_budget
        try:
            while self._next_page(feed):
                pass
        except Throttled as exc:
            self.state.defer(scope, iso_utc(self._now() + timedelta(seconds=exc.retry_after)), str(exc))
            self._note_deferred(name, exc)
        finally:
            self.client.throttle_budget = None

    def _round_starts(self, feed: _Feed) -> None:
        if feed.params and "startDateTime" in feed.params:
            self.state.set_window(feed.scope, feed.params["startDateTime"])

    def _note_deferred(self, name: str, exc: Throttled) -> None:
        self.summary.deferred.append(f"{name}: {exc}")
        log.warning("%s deferred: %s; it goes on from where it stands in a later run", name, exc)

    def _next_page(self, feed: _Feed) -> bool:
        """Fetch, apply and record one page; whether the feed goes on."""
        try:
            page = self.client.get_page(feed.url, params=feed.use_params, prefer=feed.prefer)
        except DeltaExpired as exc:
            return self._resync(feed, exc)
        except PageDrift as exc:
            self._quarantine(feed.scope, "page", exc.body, exc)
            self._fail(feed.name, exc)
            return False
        except Throttled:
            raise
        except (GraphError, NotFound) as exc:
            self._fail(feed.name, exc)
            return False
        batch = _Batch()
        feed.apply(feed.scope, page.value, batch)
        self._commit(feed.scope, feed.cursor.round, batch, page.next_link, page.delta_link)
        self.progress.items_done += len(page.value)
        self._report(feed.phase, feed.name)
        if page.next_link:
            feed.url, feed.use_params = page.next_link, None
            return True
        if page.delta_link is None:
            self._quarantine(
                feed.scope, "page", msgspec.json.encode(page), ValueError("no nextLink or deltaLink")
            )
            self._fail(feed.name, GraphError("a page with neither @odata.nextLink nor @odata.deltaLink"))
            return False
        if feed.cursor.full:
            self._sweep(feed.scope, feed.cursor.round)
        return False

    def _resync(self, feed: _Feed, exc: DeltaExpired) -> bool:
        feed.resyncs += 1
        self.summary.resyncs += 1
        if feed.resyncs > _MAX_RESYNCS:
            self._fail(feed.name, exc)
            return False
        log.warning(
            "%s: delta link expired (%s %s); resyncing the whole %s",
            feed.name,
            exc.status,
            exc.code or exc,
            feed.phase,
        )
        feed.cursor = self.state.begin_full_round(feed.scope, feed.name)
        self._full_round.add(feed.scope)
        feed.url, feed.use_params = feed.start, feed.params
        self._round_starts(feed)
        return True

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
        self._drop_expired(batch)
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

    def _drop_expired(self, batch: _Batch) -> None:
        """Retention for synced data applies as it arrives: mail, events and files dated before
        `retention_synced_days` are not indexed (and leave the index if an older version is there), so a
        full round does not bring back what the purge removed. Their state is kept, so they are not "new"."""
        days = self.settings.retention_synced_days
        if days is None:
            return
        cutoff = self._now() - timedelta(days=days)
        expired = [doc for doc in batch.docs if doc.date is not None and doc.date < cutoff]
        if expired:
            gone = {doc.source for doc in expired}
            batch.docs = [doc for doc in batch.docs if doc.source not in gone]
            for source in gone:
                self.summary.removed += self.index.remove_document(source)
            self.summary.expired += len(expired)

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
            batch.put.append(row.as_put())

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
        items: dict[str, DriveItem] = {}  # an item may come twice in a feed: the last one counts
        for raw in values:
            try:
                item = decode_item(raw, DriveItem)
            except ItemDrift as exc:
                graph_id = self._quarantine(scope, "driveItem", raw, exc)
                if graph_id:
                    self._keep_seen(batch, f"graph:driveItem:{graph_id}")
                continue
            items.pop(item.id, None)
            items[item.id] = item
        for item in items.values():  # the page's folders first: its files' paths may go through them
            if item.deleted is None and item.removed is None and (item.folder or item.root) is not None:
                parent = item.parent_reference.id if item.parent_reference else None
                self._tree[item.id] = (None if item.root is not None else item.name or "", parent)
        for item in items.values():
            source = f"graph:driveItem:{item.id}"
            if item.deleted is not None or item.removed is not None:
                batch.remove.append(source)
                batch.gone.append(item.id)
                continue
            if item.root is not None:
                continue
            parent = item.parent_reference.id if item.parent_reference else None
            row = {
                "source": source,
                "scope": scope,
                "graph_id": item.id,
                "parent": parent,
                "tag": item.e_tag,
                "name": item.name,
            }
            if item.folder is not None or item.file is None:
                batch.put.append({**row, "kind": "folder", "indexed": 0})
                continue
            self._apply_file(scope, item, row, batch)
        batch.remove += self._left_behind(batch)

    def _left_behind(self, batch: _Batch) -> list[str]:
        """What deleted folders take with them once the whole page is applied: what is still in them
        (the state's children, less those the page moved elsewhere), through subfolders."""
        deleted = set(batch.gone)
        parent_now = {put["graph_id"]: put.get("parent") for put in batch.put}
        out: list[str] = []
        pending = list(deleted)
        while pending:
            folder_id = pending.pop()
            children = {c.graph_id: c for c in self.state.children(folder_id)}
            children.update(
                {
                    gid: ItemRow(f"graph:driveItem:{gid}", "", "file", gid, parent, None, False)
                    for gid, parent in parent_now.items()
                    if parent == folder_id and gid not in children
                }
            )
            for child in children.values():
                if child.graph_id in deleted or parent_now.get(child.graph_id, folder_id) != folder_id:
                    continue
                out.append(child.source)
                deleted.add(child.graph_id)
                pending.append(child.graph_id)
        return out

    def _folder_path(self, scope: str, item: DriveItem) -> str:
        """The path of the item's folder ("/Documents/Reports", "" at the root): `parentReference.path`
        when Graph sent it, else rebuilt from the parent chain."""
        ref = item.parent_reference
        if ref is not None and ref.path:
            return ref.path.split(":", 1)[-1]
        names: list[str] = []
        parent = ref.id if ref else None
        while parent and len(names) < 256:  # a cycle in bad data must not hang the sync
            node = self._tree.get(parent) or self._folder_node(scope, parent)
            if node is None or node[0] is None:
                break
            names.append(node[0])
            parent = node[1]
        return "".join("/" + name for name in reversed(names))

    def _folder_node(self, scope: str, folder_id: str) -> tuple[str | None, str | None] | None:
        """(name, parent) of a drive folder: from the state, or asked of Graph (a parent not seen yet)."""
        row = self.state.item(f"graph:driveItem:{folder_id}")
        if row is not None and row.name is not None:
            node: tuple[str | None, str | None] = (row.name, row.parent)
        else:
            try:
                folder = self.client.get_item(
                    f"{drive_base(scope)}/items/{quote_id(folder_id)}",
                    DriveItem,
                    params={"$select": "id,name,parentReference,root"},
                )
            except Throttled:
                raise
            except GraphError as exc:
                log.info("the path of drive folder %s is unknown: %s", folder_id[:24], exc)
                return None
            parent = folder.parent_reference.id if folder.parent_reference else None
            node = (None if folder.root is not None else folder.name or "", parent)
        self._tree[folder_id] = node
        return node

    def _retry_due(self, known: ItemRow | None) -> bool:
        return known is not None and known.retry_at is not None and known.retry_at <= iso_utc(self._now())

    def _apply_file(self, scope: str, item: DriveItem, row: dict[str, Any], batch: _Batch) -> None:
        source = row["source"]
        known = self.state.item(source)
        if known is not None and item.e_tag and known.tag == item.e_tag and not self._retry_due(known):
            batch.put.append({**known.as_put(), **row, "kind": known.kind})
            self.summary.unchanged += 1
            return
        suffix = Path(item.name or "").suffix.lower()
        reason = None
        if suffix not in SUPPORTED_SUFFIXES:
            reason = "unsupported"
        elif item.size is not None and item.size > self.settings.graph_max_file_bytes:
            reason = "too_large"
        else:
            url = f"{drive_base(scope)}/items/{quote_id(item.id)}/content"
            try:
                content = self.client.download(url, item.size)
                loaded = load_bytes(content, suffix)
            except SkipFile as exc:
                reason = str(exc.reason)
            except NotFound:
                reason = "gone"  # deleted between the delta page and the download; the next round says so
            except Throttled:
                raise
            except GraphError as exc:  # 403 malwareDetected, an empty 400, Graph failing on this file
                self._not_fetched(item, row, known, batch, exc)
                return
            else:
                if item.size is not None and len(content) != item.size:
                    log.info(
                        "%s: %d bytes served, size says %d (rewritten as served); indexed as served",
                        item.name,
                        len(content),
                        item.size,
                    )
                folder = self._folder_path(scope, item)
                batch.docs.append(
                    drive_document(
                        item,
                        loaded.segments,
                        title=loaded.title,
                        kind=loaded.kind,
                        folder=folder,
                        size=len(content),
                        library=self._library_names.get(scope),
                    )
                )
                batch.put.append({**row, "kind": "file", "indexed": 1, "size": len(content)})
                return
        self.summary.skipped += 1
        if known is not None and known.indexed:  # e.g. renamed to a type the index cannot read
            self.summary.removed += self.index.remove_document(source)
        batch.put.append({**row, "kind": "file", "indexed": 0, "skipped": reason, "size": item.size})

    def _not_fetched(
        self, item: DriveItem, row: dict[str, Any], known: ItemRow | None, batch: _Batch, exc: GraphError
    ) -> None:
        """A file Graph would not give: skipped with the reason, retried later with backoff. A version
        indexed before stays in the index meanwhile."""
        attempts = (known.attempts if known is not None else 0) + 1
        first, most = self.settings.graph_retry_first_seconds, self.settings.graph_retry_max_seconds
        delay = timedelta(seconds=min(most, first * 2 ** min(attempts - 1, 16)))
        retry_at = iso_utc(self._now() + delay)
        reason = exc.code or (f"http_{exc.status}" if exc.status else type(exc).__name__)
        self.summary.skipped += 1
        log.warning(
            "%s not fetched (%s, attempt %d): %s; retried after %s",
            item.name,
            reason,
            attempts,
            exc,
            retry_at,
        )
        batch.put.append(
            {
                **row,
                "kind": "file",
                "indexed": int(known.indexed) if known is not None else 0,
                "skipped": reason,
                "size": item.size,
                "attempts": attempts,
                "retry_at": retry_at,
            }
        )

    def _retry_files(self) -> None:
        """Files whose retry is due: fetched again by id (a delta round would not send them again)."""
        due = self.state.due_retries(iso_utc(self._now()))
        if not due:
            return
        self._report("retry")
        self.client.throttle_budget = self.throttle_budget
        try:
            for row in due:
                self._retry_file(row)
        except Throttled as exc:
            self._note_deferred("file retries", exc)
        finally:
            self.client.throttle_budget = None

    def _retry_file(self, row: ItemRow) -> None:
        try:
            raw = self.client.get_item(f"{drive_base(row.scope)}/items/{quote_id(row.graph_id)}", msgspec.Raw)
        except NotFound:
            self.summary.removed += self.index.remove_document(row.source)
            self.state.commit_page(row.scope, 0, forget=[row.source])
            return
        except Throttled:
            raise
        except (GraphError, ItemDrift) as exc:
            log.info("retry of %s put off: %s", row.graph_id[:24], exc)
            return
        cursor = self.state.cursor(row.scope)
        batch = _Batch()
        self._apply_drive(row.scope, [raw], batch)
        self._commit(row.scope, cursor.round if cursor else 0, batch, None, None)

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
        self.client.throttle_budget = self.throttle_budget
        try:
            for _, scope, kind, graph_id in entries:
                assert graph_id is not None
                self._repair_one(scope, kind, graph_id)
        except Throttled as exc:
            self._note_deferred("repair of quarantined items", exc)
        finally:
            self.client.throttle_budget = None

    def _repair_one(self, scope: str, kind: str, graph_id: str) -> None:
        url, params, apply = _ITEM_URLS[kind]
        if kind == "driveItem":
            url = drive_base(scope) + "/items/{}"
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
            return
        except Throttled:
            raise
        except (GraphError, ItemDrift) as exc:
            log.info("quarantined %s %s not repaired yet: %s", kind, graph_id[:24], exc)
            return
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


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
