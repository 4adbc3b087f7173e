"""SharePoint document libraries beside the OneDrive (issue 16): the libraries of the sites the user follows
(`/me/followedSites`), or of the sites configured in `graph_sharepoint_sites`, each synced through its own
drive delta (`/drives/{id}/root/delta`) as a scope "drive:<drive id>". Against the Graph stand-in with its
SharePoint sites; real msal, HTTP on 127.0.0.1, SQLite and FAISS (the hash embedder keeps it fast)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from graph_helpers import assert_index_holds, graph_settings, sign_in, vault  # noqa: F401

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.server.connectors.auth import SCOPES, SIGN_IN_SCOPES, ConsentRequired, GraphAuth
from deskpilot.server.connectors.graph import GraphClient
from deskpilot.server.connectors.standin import Faults, StandIn, Tenant, generate
from deskpilot.server.connectors.state import SyncState
from deskpilot.server.connectors.sync import GraphSync, SyncSummary
from deskpilot.server.settings import Settings, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("vault")]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[DocumentIndex]:
    with DocumentIndex(tmp_path / "home" / "index", embedder=HashEmbedder()) as ix:
        yield ix


def sync(settings: Settings, index: DocumentIndex) -> SyncSummary:
    client = GraphClient(GraphAuth(settings), settings)
    state = SyncState(settings.sync_db_path)
    try:
        return GraphSync(client, index, state, settings).run()
    finally:
        client.close()
        state.close()


def metadata(index: DocumentIndex) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(index.folder / "meta.db") as conn:
        rows = conn.execute("SELECT source, extra FROM documents WHERE source LIKE 'graph:driveItem:%'")
        return {source.removeprefix("graph:driveItem:"): json.loads(extra) for source, extra in rows}


def scopes(settings: Settings) -> dict[str, str]:
    state = SyncState(settings.sync_db_path)
    try:
        return {c.scope: c.name for c in state.cursors()}
    finally:
        state.close()


def tenant_with_sites() -> Tenant:
    """The generated OneDrive, mail and calendar; a followed site with two libraries (files in folders),
    another followed site, and a site the user does not follow."""
    t = generate(seed=40, messages=6, files=5, events=2)
    t.omit_paths = True  # as real delta responses: paths come from the parent chain
    marketing = t.add_site("Marketing", libraries=("Documents", "Campaign Assets"))
    docs = t.library(marketing)
    campaigns = t.add_drive_folder("Campaigns", library=docs.id)
    year = t.add_drive_folder("2026", campaigns.id)
    t.add_file(
        "plan.txt", b"Spring launch plan. Reference plan-marker.", parent_id=year.id, marker="plan-marker"
    )
    t.add_file("brief.md", b"# Brief\n\nReference brief-marker.", library=docs.id, marker="brief-marker")
    assets = t.library(marketing, "Campaign Assets")
    t.add_file(
        "tagline.txt", b"Taglines. Reference tagline-marker.", library=assets.id, marker="tagline-marker"
    )
    finance = t.add_site("Finance")
    t.add_file(
        "budget.txt",
        b"Budget. Reference budget-marker.",
        library=t.library(finance).id,
        marker="budget-marker",
    )
    legal = t.add_site("Legal", followed=False)
    t.add_file("nda.txt", b"NDA. Reference nda-marker.", library=t.library(legal).id, marker="nda-marker")
    return t


def expected(t: Tenant, settings: Settings, *, leave_out: tuple[str, ...] = ()) -> dict[str, str]:
    want = t.expected(max_file_bytes=settings.graph_max_file_bytes, window_days=settings.graph_calendar_days)
    gone = {f"graph:driveItem:{f.id}" for f in t.files.values() if f.library in leave_out}
    return {k: v for k, v in want.items() if k not in gone}


def library_of(t: Tenant, site_name: str, library: str = "Documents") -> str:
    site = next(s for s in t.sites.values() if s.display_name == site_name)
    return t.library(site, library).id


def test_a_file_in_a_followed_sites_library_is_indexed_with_its_path(index: DocumentIndex) -> None:
    t = tenant_with_sites()
    with StandIn(t) as standin:
        settings = graph_settings(standin)
        sign_in(settings)
        first = sync(settings, index)
        assert first.errors == []
        legal = library_of(t, "Legal")
        assert_index_holds(index, expected(t, settings, leave_out=(legal,)))  # not followed: not synced
        plan = next(f for f in t.files.values() if f.name == "plan.txt")
        meta = metadata(index)
        assert meta[plan.id]["path"] == "/Campaigns/2026/plan.txt"
        assert meta[plan.id]["library"] == "Marketing / Documents"
        assert meta[plan.id]["webUrl"].startswith("https://contoso.sharepoint.com/sites/Marketing/Documents/")
        onedrive = [m for m in meta.values() if "library" not in m]
        assert onedrive and all(m["path"].startswith("/") for m in onedrive)
        libraries = {
            f"drive:{library_of(t, 'Marketing')}": "Marketing / Documents",
            f"drive:{library_of(t, 'Marketing', 'Campaign Assets')}": "Marketing / Campaign Assets",
            f"drive:{library_of(t, 'Finance')}": "Finance / Documents",
        }
        assert {k: v for k, v in scopes(settings).items() if k.startswith("drive:")} == libraries

        # Incremental: a change, a move and a delete in a library, through its delta link.
        t.change_file(plan.id, b"Summer launch plan. Reference plan-v2.", marker="plan-v2")
        brief = next(f for f in t.files.values() if f.name == "brief.md")
        t.move_file(brief.id, next(f for f in t.files.values() if f.name == "Campaigns").id)
        t.delete_file(next(f for f in t.files.values() if f.name == "tagline.txt").id)
        asked = len(standin.requests)
        second = sync(settings, index)
        assert second.errors == [] and second.indexed == 1 and second.removed == 1  # the move: same text
        assert_index_holds(index, expected(t, settings, leave_out=(legal,)))
        assert metadata(index)[brief.id]["path"] == "/Campaigns/brief.md"
        deltas = [p for _, _, p, q, _ in standin.requests[asked:] if p.endswith("/root/delta")]
        assert all(
            "$deltatoken" in q for _, _, p, q, _ in standin.requests[asked:] if p.endswith("/root/delta")
        )
        assert len(deltas) == 4  # the OneDrive and three libraries, each from its delta link


def test_a_failure_in_one_library_never_blocks_the_others(index: DocumentIndex) -> None:
    t = tenant_with_sites()
    with StandIn(t) as standin:
        settings = graph_settings(standin, graph_max_retries=2)
        sign_in(settings)
        marketing = library_of(t, "Marketing")
        standin.set_faults(
            Faults(rate=1.0, kinds={"unavailable": 1.0}, paths=(f"/drives/{marketing}/root/delta",))
        )
        first = sync(settings, index)
        assert len(first.errors) == 1 and first.errors[0].startswith("Marketing / Documents:")
        legal = library_of(t, "Legal")
        assert_index_holds(index, expected(t, settings, leave_out=(legal, marketing)))

        standin.set_faults(Faults())
        second = sync(settings, index)
        assert second.errors == []
        assert_index_holds(index, expected(t, settings, leave_out=(legal,)))


@pytest.mark.slow  # several sync rounds: the full suite runs it
def test_a_site_that_cannot_be_listed_keeps_its_libraries_and_an_unfollowed_one_is_dropped(
    index: DocumentIndex,
) -> None:
    t = tenant_with_sites()
    with StandIn(t) as standin:
        settings = graph_settings(standin, graph_max_retries=1)
        sign_in(settings)
        assert sync(settings, index).errors == []
        legal, finance = library_of(t, "Legal"), library_of(t, "Finance")
        finance_site = next(s for s in t.sites.values() if s.display_name == "Finance")

        # Finance's libraries cannot be listed this time: its library stays, synced from its cursor.
        standin.set_faults(
            Faults(rate=1.0, kinds={"unavailable": 1.0}, paths=(f"/sites/{finance_site.id}/drives",))
        )
        t.add_file(
            "forecast.txt", b"Forecast. Reference forecast-marker.", library=finance, marker="forecast-marker"
        )
        failed = sync(settings, index)
        assert len(failed.errors) == 1 and failed.errors[0].startswith("SharePoint site Finance:")
        assert_index_holds(index, expected(t, settings, leave_out=(legal,)))

        # Unfollowed, with a complete listing: its library leaves the index and the state.
        standin.set_faults(Faults())
        finance_site.followed = False
        assert sync(settings, index).errors == []
        assert_index_holds(index, expected(t, settings, leave_out=(legal, finance)))
        assert f"drive:{finance}" not in scopes(settings)


def test_configured_sites_are_synced_instead_of_the_followed_ones(index: DocumentIndex) -> None:
    t = tenant_with_sites()
    with StandIn(t) as standin:
        legal = next(s for s in t.sites.values() if s.display_name == "Legal")
        missing = (
            "contoso.sharepoint.com,00000000-0000-0000-0000-000000000000,00000000-0000-0000-0000-000000000000"
        )
        settings = graph_settings(standin, graph_sharepoint_sites=[legal.id, missing])
        sign_in(settings)
        summary = sync(settings, index)
        assert len(summary.errors) == 1 and missing in summary.errors[0]  # one missing site, reported
        followed = tuple(lib.id for lib in t.libraries.values() if lib.site_id != legal.id)
        assert_index_holds(index, expected(t, settings, leave_out=followed))
        assert not any(p.endswith("/followedSites") for _, _, p, _, _ in standin.requests)


def test_configured_sites_come_from_the_environment_separated_by_spaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sites = ["contoso.sharepoint.com,1111,aaaa", "contoso.sharepoint.com,2222,bbbb"]
    monkeypatch.setenv("DESKPILOT_GRAPH_SHAREPOINT_SITES", " ".join(sites))
    assert load_settings().graph_sharepoint_sites == tuple(sites)
    monkeypatch.setenv("DESKPILOT_GRAPH_SHAREPOINT_SITES", json.dumps(sites))
    assert load_settings().graph_sharepoint_sites == tuple(sites)


# -- Sites.Read.All, asked for apart (incremental consent) ------------------------------------------------

CONSENT_MESSAGE = (
    "SharePoint: needs the Sites.Read.All permission: sign in again (`deskpilot login`) "
    "or ask IT to grant admin consent"
)


def sign_in_as_before(settings: Settings) -> GraphAuth:
    """Sign in as Deskpilot did before it asked for Sites.Read.All: consent to SCOPES only."""
    auth = GraphAuth(settings)
    flow = auth.app.initiate_device_flow(scopes=SCOPES)
    assert "access_token" in auth.app.acquire_token_by_device_flow(flow)
    auth.backend.save_token(force=True)
    return auth


@pytest.mark.slow  # several sync rounds: the full suite runs it
def test_a_sign_in_from_before_sites_read_all_keeps_syncing_and_asks_for_it_then_a_new_one_syncs_libraries(
    index: DocumentIndex,
) -> None:
    t = tenant_with_sites()
    with StandIn(t) as standin:
        settings = graph_settings(standin)
        sign_in_as_before(settings)
        assert standin.consented == set(SCOPES)

        first = sync(settings, index)
        assert first.errors == [CONSENT_MESSAGE]  # reported once, for SharePoint, and nothing else failed
        libraries = tuple(t.libraries)
        assert_index_holds(index, expected(t, settings, leave_out=libraries))  # mail, OneDrive, calendar
        assert not [k for k in scopes(settings) if k.startswith("drive:")]
        assert not any(p.endswith("/followedSites") for _, _, p, _, _ in standin.requests)  # never sent
        assert standin.stats["refreshes"] == 0  # the refused Sites.Read.All refresh counts no token

        # The old sign-in still refreshes for the rest: every access token revoked, a second run.
        standin.revoke_access_tokens()
        assert sync(settings, index).errors == [CONSENT_MESSAGE]

        # `deskpilot login` again: it asks for Sites.Read.All too, and the libraries sync.
        sign_in(settings)
        assert standin.consented == set(SIGN_IN_SCOPES)
        after = sync(settings, index)
        assert after.errors == []
        legal = library_of(t, "Legal")
        assert_index_holds(index, expected(t, settings, leave_out=(legal,)))


def test_admin_consent_lets_a_sign_in_from_before_sync_libraries_without_signing_in_again(
    index: DocumentIndex,
) -> None:
    t = tenant_with_sites()
    with StandIn(t, admin_consent=["Sites.Read.All"]) as standin:
        settings = graph_settings(standin)
        sign_in_as_before(settings)
        assert sync(settings, index).errors == []
        assert_index_holds(index, expected(t, settings, leave_out=(library_of(t, "Legal"),)))
        assert standin.consented == set(SCOPES)  # the user was never asked


def test_a_new_sign_in_asks_for_sites_read_all_and_gets_one_token_per_permission_set() -> None:
    with StandIn(generate(messages=1, files=0, events=0)) as standin:
        settings = graph_settings(standin)
        auth = sign_in(settings)
        assert standin.consented == set(SIGN_IN_SCOPES)
        base, sites = auth.access_token(), auth.access_token(scopes=["Sites.Read.All"])
        assert standin.token_scopes[sites] >= {"Sites.Read.All"}
        assert set(SCOPES) <= standin.token_scopes[base]


def test_the_standin_refuses_site_endpoints_to_a_token_without_sites_read_all() -> None:
    with StandIn(tenant_with_sites()) as standin:
        settings = graph_settings(standin)
        auth = sign_in_as_before(settings)
        with pytest.raises(ConsentRequired, match=r"needs the Sites\.Read\.All permission"):
            auth.access_token(scopes=["Sites.Read.All"])
        client = GraphClient(auth, settings)
        try:
            assert client.me().user_principal_name  # the rest is served
            with pytest.raises(ConsentRequired):  # the client never sends a site request without it
                client.get_page("me/followedSites")
        finally:
            client.close()
        # The token for the rest, sent to a site endpoint anyway: Graph's 403.
        for path in ("me/followedSites", f"sites/{next(iter(standin.tenant.sites))}/drives"):
            response = requests.get(
                f"{standin.graph_url}/{path}",
                headers={"Authorization": f"Bearer {auth.access_token()}"},
                timeout=5,
            )
            assert response.status_code == 403 and response.json()["error"]["code"] == "accessDenied"
