"""What real tenants do that the sync has to survive (issue 16), each against the Graph stand-in switched
to behave that way: files served with more bytes than their `size`, files Graph will not serve (403
`malwareDetected`, an empty 400), a calendar window that must slide with time, a folder deleted in the
page that moved a file out of it, expired delta tokens answered 400/404/410 `syncStateNotFound`, delta
responses without `parentReference.path`, `Retry-After: 1` storms and long Retry-After, and event times
in a Windows time zone. Real msal, O365, HTTP on 127.0.0.1, SQLite and FAISS; the hash embedder keeps
the index fast."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from graph_helpers import assert_index_holds, graph_settings, sign_in, vault  # noqa: F401

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.server.connectors import GraphConnector
from deskpilot.server.connectors.auth import GraphAuth
from deskpilot.server.connectors.graph import GraphClient
from deskpilot.server.connectors.models import DateTimeTimeZone, Event, event_document
from deskpilot.server.connectors.standin import Faults, StandIn, Tenant, file_content, generate
from deskpilot.server.connectors.standin._data import DRIVE_ROOT
from deskpilot.server.connectors.state import SyncState
from deskpilot.server.connectors.sync import GraphSync, SyncSummary
from deskpilot.server.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("vault")]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[DocumentIndex]:
    with DocumentIndex(tmp_path / "home" / "index", embedder=HashEmbedder()) as ix:
        yield ix


def sync(
    settings: Settings,
    index: DocumentIndex,
    *,
    now: datetime | None = None,
    throttle_budget: float | None = None,
    full: bool = False,
) -> SyncSummary:
    if throttle_budget is not None:
        settings = msgspec.structs.replace(settings, graph_throttle_budget_seconds=throttle_budget)
    client = GraphClient(GraphAuth(settings), settings)
    state = SyncState(settings.sync_db_path)
    try:
        return GraphSync(client, index, state, settings, now=(lambda: now) if now else None).run(full=full)
    finally:
        client.close()
        state.close()


def expected(tenant: Tenant, settings: Settings, now: datetime | None = None) -> dict[str, str]:
    return tenant.expected(
        max_file_bytes=settings.graph_max_file_bytes, window_days=settings.graph_calendar_days, now=now
    )


def items(settings: Settings) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(settings.sync_db_path) as conn:
        conn.row_factory = sqlite3.Row
        return {r["graph_id"]: dict(r) for r in conn.execute("SELECT * FROM items")}


def downloads(standin: StandIn, item_id: str) -> int:
    return sum(1 for _, _, path, _, _ in standin.requests if path == f"/_download/{item_id}")


def indexable_files(tenant: Tenant, suffix: str = "") -> list[str]:
    return sorted(f.id for f in tenant.files.values() if f.marker and f.name.endswith(suffix))


# -- a: files that cannot be fetched as they are listed --------------------------------------------------


def test_a_file_served_with_more_bytes_than_its_size_is_indexed_as_served(index: DocumentIndex) -> None:
    with StandIn(generate(seed=21, messages=10, files=15, events=3)) as standin:
        settings = graph_settings(standin)
        sign_in(settings)
        t = standin.tenant
        rewritten = [indexable_files(t, s)[0] for s in (".pdf", ".docx", ".txt")]
        t.rewritten.update(rewritten)
        summary = sync(settings, index)
        assert summary.errors == [] and summary.skipped == 2  # the picture and the empty file only
        assert_index_holds(index, expected(t, settings))
        rows = items(settings)
        for item_id in rewritten:
            assert rows[item_id]["size"] == len(t.files[item_id].content) + 9  # the real size, recorded
            assert downloads(standin, item_id) == 1  # accepted at once, not retried as if truncated


RETRY_FIRST = timedelta(minutes=15)  # the default `graph_retry_first_seconds`


@pytest.mark.slow  # seconds of real retry waits: the full suite runs it
def test_a_file_graph_will_not_serve_is_skipped_with_its_reason_and_retried_later(
    index: DocumentIndex,
) -> None:
    with StandIn(generate(seed=22, messages=30, files=10, events=4)) as standin:
        settings = graph_settings(standin)
        assert settings.graph_retry_first_seconds == RETRY_FIRST.total_seconds()
        sign_in(settings)
        t = standin.tenant
        malware, empty_400 = indexable_files(t)[:2]
        t.blocked.update({malware: "malware", empty_400: "bad_request"})
        now = datetime.now(UTC)
        first = sync(settings, index, now=now)
        # Neither stops the page, the drive, the calendar or the mail.
        assert first.errors == [] and first.skipped == 2 + 2
        blocked = {f"graph:driveItem:{malware}", f"graph:driveItem:{empty_400}"}
        want = expected(t, settings, now)
        assert_index_holds(index, {k: v for k, v in want.items() if k not in blocked})
        rows = items(settings)
        assert (rows[malware]["skipped"], rows[empty_400]["skipped"]) == ("malwareDetected", "http_400")
        assert rows[malware]["attempts"] == 1
        first_retry = datetime.fromisoformat(rows[malware]["retry_at"])
        assert first_retry == now + RETRY_FIRST

        sync(settings, index, now=now + timedelta(minutes=5))  # not due yet: not asked again
        assert downloads(standin, malware) == 1

        del t.blocked[empty_400]  # served now; the other one still flagged
        later = now + RETRY_FIRST + timedelta(minutes=1)
        retried = sync(settings, index, now=later)
        assert retried.errors == [] and downloads(standin, malware) == 2
        rows = items(settings)
        assert rows[empty_400]["skipped"] is None and rows[empty_400]["retry_at"] is None
        assert rows[malware]["attempts"] == 2  # backing off: twice as long
        assert datetime.fromisoformat(rows[malware]["retry_at"]) == later + 2 * RETRY_FIRST

        t.blocked.clear()
        sync(settings, index, now=later + 2 * RETRY_FIRST + timedelta(minutes=1))
        assert_index_holds(index, expected(t, settings, now))
        assert items(settings)[malware]["skipped"] is None


def test_the_sync_status_shows_per_scope_last_success_skipped_files_and_deferrals(
    index: DocumentIndex,
) -> None:
    with StandIn(generate(seed=29, messages=12, files=8, events=3)) as standin:
        settings = graph_settings(standin)
        sign_in(settings)
        t = standin.tenant
        (malware,) = indexable_files(t)[:1]
        t.blocked[malware] = "malware"
        standin.set_faults(
            Faults(
                rate=1.0, kinds={"long_throttle": 1.0}, long_retry_after=3600, paths=("/calendarView/delta",)
            )
        )
        now = datetime.now(UTC)
        sync(settings, index, now=now, throttle_budget=60)
        status = GraphConnector(settings, index).status()
        scopes = {s.scope: s for s in status.scopes}
        drive, calendar = scopes["drive"], scopes["calendar"]
        assert drive.succeeded_at is not None and drive.deferred_until is None
        names = {s.name: s for s in drive.skipped}
        assert drive.skipped_count == len(drive.skipped) >= 1
        flagged = names[t.files[malware].name]
        assert (flagged.reason, flagged.attempts) == ("malwareDetected", 1)
        assert flagged.retry_at is not None and datetime.fromisoformat(flagged.retry_at) == now + RETRY_FIRST
        assert drive.skipped[0] == flagged  # those with a retry first
        assert all(s.retry_at is None for s in drive.skipped[1:])  # unsupported or empty: not retried
        assert calendar.succeeded_at is None and calendar.deferred_until is not None
        assert datetime.fromisoformat(calendar.deferred_until) == now + timedelta(seconds=3600)
        assert calendar.deferred_reason and "3600" in calendar.deferred_reason
        mail = [s for s in status.scopes if s.scope.startswith("mail:")]
        assert mail and all(s.succeeded_at and s.skipped_count == 0 for s in mail)
        wire = msgspec.json.decode(msgspec.json.encode(status))
        assert {"succeededAt", "deferredUntil", "deferredReason", "skippedCount", "skipped"} <= set(
            wire["scopes"][0]
        )


def test_the_retry_schedule_of_skipped_files_comes_from_the_settings(index: DocumentIndex) -> None:
    with StandIn(generate(seed=30, messages=5, files=6, events=2)) as standin:
        settings = graph_settings(standin, graph_retry_first_seconds=60, graph_retry_max_seconds=150)
        sign_in(settings)
        t = standin.tenant
        (malware,) = indexable_files(t)[:1]
        t.blocked[malware] = "malware"
        now = datetime.now(UTC)
        retries = []
        for minutes in (0, 2, 5, 10):  # each due by then: 60 s, then 120 s, then at most 150 s
            sync(settings, index, now=now + timedelta(minutes=minutes))
            retry_at = datetime.fromisoformat(items(settings)[malware]["retry_at"])
            retries.append((retry_at - now - timedelta(minutes=minutes)).total_seconds())
        assert retries == [60, 120, 150, 150]
        assert downloads(standin, malware) == 4


# -- b: the calendar window slides ------------------------------------------------------------------------


def test_the_calendar_window_slides_with_time(index: DocumentIndex) -> None:
    with StandIn(generate(seed=23, messages=2, files=0, events=0)) as standin:
        settings = graph_settings(standin, graph_calendar_days=10)
        sign_in(settings)
        t = standin.tenant
        now = datetime.now(UTC)
        for days in (-9, -2, 3, 13, 14):  # -9 falls out of the window, 13 and 14 come into it
            event = t.add_event(f"Meeting {days:+d}", "Agenda", now + timedelta(days=days, hours=1))
            event.body += f" {event.marker}"
        sync(settings, index, now=now)
        assert_index_holds(index, expected(t, settings, now))

        later = now + timedelta(days=5)
        summary = sync(settings, index, now=later)
        assert summary.errors == [] and summary.removed == 1
        assert_index_holds(index, expected(t, settings, later))

        # Within a day of drift the delta link goes on: no new round.
        rounds = [q for _, _, path, q, _ in standin.requests if path.endswith("calendarView/delta")]
        sync(settings, index, now=later + timedelta(hours=6))
        again = [q for _, _, path, q, _ in standin.requests if path.endswith("calendarView/delta")]
        assert all("deltatoken" in q for q in again[len(rounds) :])


# -- c: deletes after the whole page ---------------------------------------------------------------------


def test_a_folder_deleted_in_the_page_that_moved_a_file_out_of_it_keeps_the_file(
    index: DocumentIndex,
) -> None:
    tenant = generate(seed=24, messages=2, files=0, events=0)
    folder = tenant.add_drive_folder("Projects")
    sub = tenant.add_drive_folder("Old", folder.id)
    kept, gone, deep = (
        tenant.add_file(name, file_content(name, name, f"text of {name}"), parent_id=parent, marker=name)
        for name, parent in (("kept.txt", folder.id), ("gone.txt", folder.id), ("deep.txt", sub.id))
    )
    with StandIn(tenant) as standin:
        settings = graph_settings(standin)
        sign_in(settings)
        sync(settings, index)
        assert_index_holds(index, expected(tenant, settings))

        tenant.move_file(kept.id, DRIVE_ROOT)
        tenant.delete_file(folder.id)  # and with it gone.txt, Old and deep.txt
        summary = sync(settings, index)
        assert summary.errors == []
        assert_index_holds(index, expected(tenant, settings))
        assert f"graph:driveItem:{kept.id}" in expected(tenant, settings)
        assert {gone.id, deep.id, sub.id, folder.id}.isdisjoint(items(settings))


# -- d: expired delta tokens, whatever the status ---------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 410])
def test_an_expired_delta_token_answered_with_a_resync_code_resyncs(
    status: int, index: DocumentIndex
) -> None:
    with StandIn(generate(seed=25, messages=40, files=5, events=4)) as standin:
        settings = graph_settings(standin)
        sign_in(settings)
        sync(settings, index)
        standin.set_faults(Faults(expired_status=status))
        standin.tenant.expire_delta_links()
        for m in sorted(standin.tenant.messages.values(), key=lambda m: m.id)[:5]:
            standin.tenant.delete_message(m.id)
        summary = sync(settings, index)
        assert summary.errors == [] and summary.resyncs >= 3  # mail folders, the drive, the calendar
        assert_index_holds(index, expected(standin.tenant, settings))
        answered = {s for _, _, path, q, s in standin.requests if "deltatoken" in q}
        assert status in answered


# -- e: paths from the parent chain ------------------------------------------------------------------------


def test_paths_are_rebuilt_from_the_parent_chain_when_delta_leaves_them_out(index: DocumentIndex) -> None:
    tenant = generate(seed=26, messages=2, files=12, events=0)
    tenant.omit_paths = True
    deep = tenant.add_drive_folder("2025", tenant.drive_folder("Reports").id)
    tenant.add_file("deep.txt", b"Deep down. Reference deep-marker.", parent_id=deep.id, marker="deep-marker")
    with StandIn(tenant) as standin:
        settings = graph_settings(standin)
        sign_in(settings)
        assert sync(settings, index).errors == []
        with sqlite3.connect(index.folder / "meta.db") as conn:
            extra = dict(conn.execute("SELECT source, extra FROM documents WHERE source LIKE 'graph:drive%'"))
        assert len(extra) == 13
        for source, text in extra.items():
            item = tenant.files[source.removeprefix("graph:driveItem:")]
            want = tenant.path_of(item).removeprefix("/drive/root:") + "/" + item.name
            assert json.loads(text)["path"] == want
        assert any(json.loads(t)["path"] == "/Documents/Reports/2025/deep.txt" for t in extra.values())

        # A folder renamed later: its files are not in the delta, new ones under it get the new name.
        tenant.drive_folder("Reports").name = "Reports 2025"
        tenant.touch("drive", tenant.drive_folder("Reports 2025").id)
        tenant.add_file("new.txt", b"New. Reference new-marker.", parent_id=deep.id, marker="new-marker")
        assert sync(settings, index).errors == []
        with sqlite3.connect(index.folder / "meta.db") as conn:
            paths = [json.loads(e).get("path") for (e,) in conn.execute("SELECT extra FROM documents")]
        assert "/Documents/Reports 2025/2025/new.txt" in paths


# -- f: throttling -----------------------------------------------------------------------------------------


@pytest.mark.slow  # seconds of real retry waits: the full suite runs it
def test_a_retry_after_1_storm_does_not_make_a_scope_give_up(index: DocumentIndex) -> None:
    with StandIn(generate(seed=27, messages=20, files=3, events=3)) as standin:
        settings = graph_settings(standin, graph_max_retries=2)
        sign_in(settings)
        sync(settings, index)
        for n in range(3):
            added = standin.tenant.add_message(standin.tenant.folder("Inbox").id, f"During the storm {n}", "")
            added.body = f"Storm news. {added.marker}"
        # Every request answered 429 Retry-After: 1 for 5 requests in a row: more than graph_max_retries.
        standin.set_faults(Faults(rate=1.0, kinds={"storm": 1.0}, storm_length=4, max_faults=1))
        summary = sync(settings, index)
        assert summary.errors == [] and summary.deferred == []
        assert summary.retries["throttled"] == 5 and summary.throttle_seconds == pytest.approx(5.0)
        assert_index_holds(index, expected(standin.tenant, settings))


@pytest.mark.timeout(120)  # before the fix, a 3600 s Retry-After was waited for 300 s
def test_a_long_retry_after_defers_its_scope_which_resumes_in_a_later_run(index: DocumentIndex) -> None:
    with StandIn(generate(seed=28, messages=20, files=6, events=3)) as standin:
        settings = graph_settings(standin, graph_throttle_budget_seconds=60)
        sign_in(settings)
        now = datetime.now(UTC)
        sync(settings, index, now=now)
        t = standin.tenant
        added = t.add_file("after.txt", b"Added later. Reference after-marker.", marker="after-marker")
        message = t.add_message(t.folder("Inbox").id, "Meanwhile", "")
        message.body = f"Meanwhile in the inbox. {message.marker}"
        standin.set_faults(
            Faults(
                rate=1.0,
                kinds={"long_throttle": 1.0},
                long_retry_after=3600,
                paths=("/drive/root/delta",),
                max_faults=1,
            )
        )
        first = sync(settings, index, now=now)
        assert first.errors == [] and len(first.deferred) == 1 and "OneDrive" in first.deferred[0]
        want = expected(t, settings, now)
        assert_index_holds(index, {k: v for k, v in want.items() if k != f"graph:driveItem:{added.id}"})
        state = SyncState(settings.sync_db_path)
        cursor = state.cursor("drive")
        state.close()
        assert cursor is not None and cursor.deferred_until is not None
        assert datetime.fromisoformat(cursor.deferred_until) == now + timedelta(seconds=3600)

        asked = len(standin.requests)
        second = sync(settings, index, now=now + timedelta(minutes=30))
        assert second.errors == [] and "OneDrive" in second.deferred[0]
        assert not any(p.endswith("/drive/root/delta") for _, _, p, _, _ in standin.requests[asked:])

        third = sync(settings, index, now=now + timedelta(minutes=61))
        assert third.errors == [] and third.deferred == []
        assert_index_holds(index, expected(t, settings, now))


# -- g: time zones -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "local", "utc"),
    [
        ("Pacific Standard Time", "2025-03-03T09:00:00.0000000", "2025-03-03T17:00:00+00:00"),
        ("W. Europe Standard Time", "2025-07-01T09:30:00.0000000", "2025-07-01T07:30:00+00:00"),
        ("Europe/Paris", "2025-01-15T12:00:00.0000000", "2025-01-15T11:00:00+00:00"),
        ("UTC", "2025-01-15T12:00:00.0000000", "2025-01-15T12:00:00+00:00"),
        ("Tokyo Standard Time", "2025-01-15T12:00:00", "2025-01-15T03:00:00+00:00"),
    ],
)
def test_times_in_a_windows_or_iana_zone_are_converted(zone: str, local: str, utc: str) -> None:
    parsed = DateTimeTimeZone(date_time=local, time_zone=zone).parse()
    assert parsed is not None and parsed.isoformat() == utc


def test_a_time_in_an_unknown_zone_is_unknown_not_utc() -> None:
    assert DateTimeTimeZone(date_time="2025-01-15T12:00:00", time_zone="Mars Standard Time").parse() is None


def test_events_asked_for_in_a_windows_time_zone_keep_their_moment() -> None:
    now = datetime.now(UTC)
    with StandIn(generate(seed=29, messages=1, files=0, events=6, now=now)) as standin:
        settings = graph_settings(standin)
        sign_in(settings)
        client = GraphClient(GraphAuth(settings), settings)
        try:
            page = client.get_page(
                "me/calendarView/delta",
                params={
                    "startDateTime": (now - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "endDateTime": (now + timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
                prefer='outlook.timezone="Pacific Standard Time"',
            )
        finally:
            client.close()
        events = [msgspec.json.decode(raw, type=Event) for raw in page.value]
        assert len(events) == 6
        for event in events:
            assert event.start is not None and event.start.time_zone == "Pacific Standard Time"
            truth = standin.tenant.events[event.id].start
            assert event_document(event).date == truth
            assert event.start.date_time[:16] != truth.strftime("%Y-%m-%dT%H:%M")  # really shifted


# -- retention: synced data past its period is not indexed again ----------------------------------------


def test_mail_past_the_synced_retention_period_is_not_indexed_and_leaves_the_index(
    index: DocumentIndex,
) -> None:
    with StandIn(generate(seed=31, messages=0, files=0, events=0)) as standin:
        settings = graph_settings(standin)
        sign_in(settings)
        t = standin.tenant
        now = datetime.now(UTC)
        inbox = t.folder("Inbox").id
        old = t.add_message(inbox, "Budget 2024", "Old numbers", received=now - timedelta(days=400))
        new = t.add_message(inbox, "Budget 2026", "New numbers", received=now - timedelta(days=3))
        first = sync(settings, index, now=now)
        assert first.errors == [] and first.expired == 0
        assert index.document(f"graph:message:{old.id}") is not None
        # The organisation sets a one-year retention for synced data; a full round brings everything again.
        kept = msgspec.structs.replace(settings, retention_synced_days=365)
        second = sync(kept, index, now=now, full=True)
        assert second.errors == [] and second.expired >= 1 and "past retention" in second.line()
        assert index.document(f"graph:message:{old.id}") is None
        assert index.document(f"graph:message:{new.id}") is not None
        assert old.id in items(kept)  # still known to the sync state: not "new mail" if it changes later
