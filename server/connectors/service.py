"""`GraphConnector`: the Microsoft 365 side of a running server (or of the CLI).

It runs one sync at a time on a background thread (the cross-process `SyncLock` is taken before the
thread starts, so a second request gets its answer at once), reports its progress and last outcome,
and fetches whole conversations for thread summaries. Each operation reads the sign-in from the
keyring afresh, so a `deskpilot login` in a terminal takes effect without restarting the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import msgspec

from deskpilot.indexes import DocumentIndex
from deskpilot.server.connectors.auth import AuthError, GraphAuth, NotSignedIn
from deskpilot.server.connectors.graph import GraphClient
from deskpilot.server.connectors.models import email_in
from deskpilot.server.connectors.state import Cursor, SyncState
from deskpilot.server.connectors.sync import GraphSync, SyncBusy, SyncLock, SyncProgress, SyncSummary
from deskpilot.server.core.wire import EmailIn
from deskpilot.server.settings import Settings

__all__ = ["ConversationOut", "GraphConnector", "LastRun", "ScopeOut", "SkippedItemOut", "SyncStatus"]

log = logging.getLogger("deskpilot.connectors")
SKIPPED_SHOWN = 50  # skipped files listed per scope in the status (the count covers them all)


class _Out(msgspec.Struct, rename="camel", kw_only=True):
    pass


class LastRun(_Out):
    status: str  # "ok", "partial" (some scope failed), "cancelled", "failed", "interrupted"
    started_at: str
    finished_at: str | None = None
    summary: SyncSummary | None = None
    error: str | None = None


class SkippedItemOut(_Out):
    """A file of a scope that is not in the index, and why; `retry_at` when it is tried again."""

    name: str
    reason: str  # "malwareDetected", "http_400", "unsupported", "too_large", "empty"...
    retry_at: str | None = None  # ISO, UTC; none: not retried until the file changes
    attempts: int = 0


class ScopeOut(_Out):
    scope: str  # "mail:<folder id>", "drive", "drive:<library id>", "calendar"
    name: str
    state: str  # "current" (at a delta link) or "in_progress" (mid-round; resumes from its next page)
    full_round: bool
    updated_at: str | None = None
    succeeded_at: str | None = None  # when a round of the scope last completed (ISO, UTC)
    deferred_until: str | None = None  # throttled beyond its budget: goes on in the first run after this
    deferred_reason: str | None = None
    skipped_count: int = 0
    skipped: list[SkippedItemOut] = []  # the first SKIPPED_SHOWN, those with a retry first


class SyncStatus(_Out):
    configured: bool
    signed_in: bool
    account: str | None = None
    running: bool = False
    progress: SyncProgress | None = None
    last_run: LastRun | None = None
    quarantined: int = 0
    scopes: list[ScopeOut] = []
    error: str | None = None  # why the last background run could not start or stopped


class ConversationOut(_Out):
    conversation_id: str
    messages: list[EmailIn]


class GraphConnector:
    def __init__(
        self,
        settings: Settings,
        index: DocumentIndex,
        on_new_mail: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.settings, self.index = settings, index
        self.on_new_mail = on_new_mail
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._progress: SyncProgress | None = None
        self._error: str | None = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.settings.graph_client_id)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def auth(self) -> GraphAuth:
        return GraphAuth(self.settings)

    # -- background sync --------------------------------------------------------------------------------

    def start(self, *, full: bool = False) -> None:
        """Start a sync in the background. Raises NotConfigured, NotSignedIn (via whoami) or SyncBusy."""
        auth = self.auth()
        if auth.whoami() is None:
            raise NotSignedIn("not signed in to Microsoft 365: run `deskpilot login` on this computer")
        with self._lock:
            if self.running:
                raise SyncBusy("a sync is already running")
            lock = SyncLock(self.settings.home / "graph-sync.lock")
            lock.acquire()
            self._cancel.clear()
            self._error = None
            self._progress = SyncProgress(phase="starting")
            self._thread = threading.Thread(
                target=self._run, args=(auth, lock, full), name="graph-sync", daemon=True
            )
            self._thread.start()

    def _run(self, auth: GraphAuth, lock: SyncLock, full: bool) -> None:
        state = SyncState(self.settings.sync_db_path)
        client = GraphClient(auth, self.settings, cancel=self._cancel)
        try:
            GraphSync(
                client,
                self.index,
                state,
                self.settings,
                progress=self._set_progress,
                on_new_mail=self.on_new_mail,
            ).run(full=full)
        except Exception as exc:  # reported by status(); the server keeps running
            self._error = f"{type(exc).__name__}: {exc}"
            log.error("background sync failed: %s", self._error)
        finally:
            client.close()
            state.close()
            lock.release()

    def _set_progress(self, progress: SyncProgress) -> None:
        self._progress = progress

    def close(self, timeout: float = 10.0) -> None:
        """Stop a running sync after its current request (what it committed stays) and wait for it."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> SyncStatus:
        status = SyncStatus(
            configured=self.configured,
            signed_in=False,
            running=self.running,
            progress=self._progress if self.running else None,
            error=self._error,
        )
        if self.configured:
            try:
                who = self.auth().whoami()
            except AuthError as exc:
                status.error = status.error or str(exc)
                who = None
            status.signed_in, status.account = who is not None, who.username if who else None
        if self.settings.sync_db_path.exists():
            state = SyncState(self.settings.sync_db_path)
            try:
                last: dict[str, Any] | None = state.last_run()
                if last is not None:
                    summary = msgspec.convert(last["summary"], SyncSummary) if last["summary"] else None
                    status.last_run = LastRun(
                        status=last["status"],
                        started_at=last["started_at"],
                        finished_at=last["finished_at"],
                        summary=summary,
                        error=last["error"],
                    )
                status.quarantined = state.quarantined_count()
                status.scopes = [_scope_out(state, c) for c in state.cursors()]
            finally:
                state.close()
        return status

    # -- conversations ----------------------------------------------------------------------------------

    def conversation(self, conversation_id: str) -> list[EmailIn]:
        """All messages of a conversation, oldest first, as /v1/summarize takes them in `thread`."""
        client = GraphClient(self.auth(), self.settings)
        try:
            return [email_in(m) for m in client.conversation(conversation_id)]
        finally:
            client.close()


def _scope_out(state: SyncState, cursor: Cursor) -> ScopeOut:
    """One scope as the pane shows it: where its round stands, its last success, and what it left out."""
    return ScopeOut(
        scope=cursor.scope,
        name=cursor.name,
        full_round=cursor.full,
        state="in_progress" if cursor.next_link or not cursor.delta_link else "current",
        succeeded_at=cursor.succeeded_at,
        deferred_until=cursor.deferred_until,
        deferred_reason=cursor.deferred_reason,
        skipped_count=state.skipped_count(cursor.scope),
        skipped=[
            SkippedItemOut(
                name=row.name or row.graph_id,
                reason=row.skipped or "",
                retry_at=row.retry_at,
                attempts=row.attempts,
            )
            for row in state.skipped_items(cursor.scope, SKIPPED_SHOWN)
        ],
    )
