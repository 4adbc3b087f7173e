"""The Graph stand-in speaks Graph: every property it emits exists on the entity type in Microsoft's v1.0
CSDL metadata (tests/reference/graph/) with a compatible type; paging and delta behave as documented;
the writes Deskpilot's actions make (reply drafts, events, To Do tasks, OneDrive uploads) behave as Graph's
do where exactly-once depends on it, and faults hit writes before or after they are applied."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from conftest import REPO, free_port
from graph_helpers import graph_settings, sign_in, vault  # noqa: F401
from lxml import etree

from deskpilot.server.connectors.standin import Faults, StandIn, generate

pytestmark = pytest.mark.integration

# Graph's CSDL metadata, gzipped (tests/reference/README.md says where it comes from).
METADATA = REPO / "tests" / "reference" / "graph" / "cleanMetadata_v1.0.xml.gz"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
_INTS = {"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte", "Edm.SByte"}
_STRINGS = {"Edm.String", "Edm.Guid", "Edm.Binary", "Edm.Duration", "Edm.Date", "Edm.TimeOfDay"}


class Csdl:
    """Entity, complex and enum types of the `microsoft.graph` schema, with inherited properties."""

    def __init__(self, path: Path) -> None:
        with gzip.open(path) as xml:
            root = etree.parse(xml).getroot()
        schema = next(s for s in root.iter(f"{EDM}Schema") if s.get("Namespace") == "microsoft.graph")
        self.structured: dict[str, tuple[str | None, dict[str, tuple[str, bool]]]] = {}
        self.enums: dict[str, set[str]] = {}
        for element in schema:
            name = element.get("Name")
            if element.tag in (f"{EDM}EntityType", f"{EDM}ComplexType"):
                props = {
                    p.get("Name"): (p.get("Type"), p.get("Nullable") != "false")
                    for p in element.iter(f"{EDM}Property")
                }
                # Contained navigation properties appear inline when expanded (linkedResources).
                props |= {
                    p.get("Name"): (p.get("Type"), True) for p in element.iter(f"{EDM}NavigationProperty")
                }
                self.structured[name] = (element.get("BaseType"), props)
            elif element.tag == f"{EDM}EnumType":
                self.enums[name] = {m.get("Name") for m in element.iter(f"{EDM}Member")}

    def properties(self, type_name: str) -> dict[str, tuple[str, bool]]:
        out: dict[str, tuple[str, bool]] = {}
        name: str | None = type_name
        while name:
            base, props = self.structured[name.removeprefix("graph.").removeprefix("microsoft.graph.")]
            out = {**props, **out}
            name = base
        return out

    def check(self, value: Any, type_name: str, where: str) -> list[str]:
        if type_name.startswith("Collection("):
            if not isinstance(value, list):
                return [f"{where}: {type_name} needs a list, got {value!r:.60}"]
            return [e for i, v in enumerate(value) for e in self.check(v, type_name[11:-1], f"{where}[{i}]")]
        if type_name in _STRINGS:
            return (
                [] if isinstance(value, str) else [f"{where}: {type_name} needs a string, got {value!r:.60}"]
            )
        if type_name == "Edm.DateTimeOffset":
            try:
                datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                return [] if isinstance(value, str) else [f"{where}: not a string"]
            except ValueError:
                return [f"{where}: {value!r} is not an Edm.DateTimeOffset"]
        if type_name in _INTS:
            return (
                []
                if isinstance(value, int) and not isinstance(value, bool)
                else [f"{where}: needs an integer"]
            )
        if type_name in ("Edm.Double", "Edm.Single", "Edm.Decimal"):
            return (
                []
                if isinstance(value, int | float) and not isinstance(value, bool)
                else [f"{where}: needs a number"]
            )
        if type_name == "Edm.Boolean":
            return [] if isinstance(value, bool) else [f"{where}: needs a boolean"]
        short = type_name.removeprefix("graph.")
        if short in self.enums:
            ok = isinstance(value, str) and all(v.strip() in self.enums[short] for v in value.split(","))
            return [] if ok else [f"{where}: {value!r} is not a member of enum {short}"]
        if short in self.structured:
            return self.object(value, short, where)
        return [f"{where}: unknown type {type_name}"]

    def object(self, value: Any, type_name: str, where: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: {type_name} needs an object"]
        props = self.properties(type_name)
        errors = []
        for key, item in value.items():
            if key.startswith("@"):  # instance annotations (@odata.etag, @removed) are not properties
                continue
            if key not in props:
                errors.append(f"{where}.{key}: no such property on {type_name}")
            elif item is None:
                errors += [] if props[key][1] else [f"{where}.{key}: null, but not nullable"]
            else:
                errors += self.check(item, props[key][0], f"{where}.{key}")
        return errors


@pytest.fixture(scope="module")
def csdl() -> Csdl:
    return Csdl(METADATA)


def test_the_checker_catches_what_graph_would_not_send(csdl: Csdl) -> None:
    good = {
        "id": "x",
        "subject": "s",
        "isRead": True,
        "toRecipients": [{"emailAddress": {"address": "a@b"}}],
        "importance": "high",
        "receivedDateTime": "2025-01-01T10:00:00Z",
        "body": {"contentType": "html"},
    }
    assert csdl.object(good, "message", "$") == []
    bad = {
        "subjekt": "s",
        "isRead": "yes",
        "toRecipients": {"emailAddress": {}},
        "importance": "urgent",
        "receivedDateTime": "yesterday",
        "body": {"contentType": "markdown"},
    }
    assert len(csdl.object(bad, "message", "$")) == 6


@pytest.mark.usefixtures("vault")
def test_every_payload_the_standin_emits_matches_graph_metadata(
    csdl: Csdl, request: pytest.FixtureRequest
) -> None:
    with StandIn(generate(seed=1, messages=30, files=10, events=5)) as standin:
        token = sign_in(graph_settings(standin)).access_token()
        client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10)
        request.addfinalizer(client.close)
        now = datetime.now(UTC)
        window = {
            "startDateTime": (now - timedelta(days=60)).isoformat(),
            "endDateTime": (now + timedelta(days=60)).isoformat(),
        }
        t = standin.tenant
        inbox = t.folder("Inbox")

        def get(path: str, **params: str) -> Any:
            r = client.get(
                path if path.startswith("http") else standin.graph_url + path, params=params or None
            )
            assert r.status_code == 200, r.text
            return r.json()

        checks: list[tuple[Any, str]] = [(get("/me"), "user")]
        checks += [(f, "mailFolder") for f in get("/me/mailFolders")["value"]]
        checks += [(f, "mailFolder") for f in get(f"/me/mailFolders/{inbox.id}/childFolders")["value"]]
        delta = get(f"/me/mailFolders/{inbox.id}/messages/delta")
        checks += [(m, "message") for m in delta["value"]]
        client.headers["Prefer"] = 'outlook.body-content-type="text"'
        checks += [(get(f"/me/messages/{next(iter(t.messages))}"), "message")]
        drive = get("/me/drive/root/delta")
        while "@odata.nextLink" in drive:
            checks += [(i, "driveItem") for i in drive["value"]]
            drive = get(drive["@odata.nextLink"])
        checks += [(i, "driveItem") for i in drive["value"]]
        checks += [(e, "event") for e in get("/me/calendarView/delta", **window)["value"]]
        # Deletions as delta reports them.
        t.delete_file(next(f.id for f in t.files.values() if f.marker))
        t.delete_message(next(m.id for m in t.messages.values() if m.folder_id == inbox.id))
        checks += [(i, "driveItem") for i in get(drive["@odata.deltaLink"])["value"]]
        removed = get(delta.get("@odata.deltaLink") or delta["@odata.nextLink"])["value"]
        checks += [(m, "message") for m in removed]

        # SharePoint: followed sites, a site, its document libraries, a library's delta.
        site = t.add_site("Marketing", libraries=("Documents", "Campaign Assets"))
        library = t.library(site)
        t.add_file("brief.txt", b"The brief.", parent_id=t.add_drive_folder("Briefs", library=library.id).id)
        checks += [(s, "site") for s in get("/me/followedSites")["value"]]
        checks += [(get(f"/sites/{site.id}"), "site")]
        checks += [(d, "drive") for d in get(f"/sites/{site.id}/drives")["value"]]
        in_library = get(f"/drives/{library.id}/root/delta")["value"]
        assert {i["name"] for i in in_library} == {"Briefs", "brief.txt"}
        checks += [(i, "driveItem") for i in in_library]

        kinds = {k for _, k in checks}
        assert kinds == {"user", "mailFolder", "message", "driveItem", "event", "site", "drive"}
        assert len(checks) > 30
        assert any("deleted" in i for i, k in checks if k == "driveItem")
        errors = [e for payload, kind in checks for e in csdl.object(payload, kind, f"{kind}")]
        assert errors == []


@pytest.mark.usefixtures("vault")
def test_paging_and_delta_semantics(request: pytest.FixtureRequest) -> None:
    with StandIn(generate(seed=2, messages=60, files=0, events=0), max_page_size=7) as standin:
        token = sign_in(graph_settings(standin)).access_token()
        client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10)
        request.addfinalizer(client.close)
        t = standin.tenant
        folder = t.folder("Inbox")
        in_folder = {m.id for m in t.messages.values() if m.folder_id == folder.id}
        url, seen, pages = f"{standin.graph_url}/me/mailFolders/{folder.id}/messages/delta", [], 0
        while True:
            body = client.get(url).json()
            seen += [m["id"] for m in body["value"]]
            pages += 1
            if "@odata.nextLink" in body:
                url = body["@odata.nextLink"]
                if pages == 1:  # changes during a round show up in this round or the next, never lost
                    t.delete_message(sorted(in_folder)[-1])
                continue
            delta = body["@odata.deltaLink"]
            break
        assert len(in_folder) > 7 and pages == -(-len(in_folder) // 7) and len(seen) == len(set(seen))
        assert set(seen) | {sorted(in_folder)[-1]} >= in_folder
        changed = t.change_message(sorted(in_folder)[0], subject="Changed")
        added = t.add_message(folder.id, "Added", "text")
        next_round = client.get(delta).json()
        by_id = {m["id"]: m for m in next_round["value"]}
        assert by_id[changed.id]["subject"] == "Changed" and added.id in by_id
        assert by_id[sorted(in_folder)[-1]]["@removed"] == {"reason": "deleted"}
        t.expire_delta_links()
        gone = client.get(next_round["@odata.deltaLink"])
        assert (
            gone.status_code == 410 and gone.json()["error"]["code"] == "syncStateNotFound"
        )  # as Graph's docs spell it
        assert client.get(f"{standin.graph_url}/me").status_code == 200
        assert httpx.get(f"{standin.graph_url}/me").status_code == 401  # no token, no data


def test_the_standin_runs_by_hand() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deskpilot.server.connectors.standin",
            "--port",
            str(port),
            "--messages",
            "20",
            "--files",
            "2",
            "--events",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                state = httpx.get(f"http://127.0.0.1:{port}/_standin/state", timeout=1).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert state["messages"] == 20 and state["files"] == 6  # 2 folders, 2 files, a picture, an empty file
        created = httpx.post(
            f"http://127.0.0.1:{port}/_standin/messages",
            json={"folder": "Archive", "subject": "By hand", "body": "hello"},
        ).json()
        assert created["id"] and httpx.get(f"http://127.0.0.1:{port}/_standin/state").json()["messages"] == 21
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "DESKPILOT_GRAPH_BASE_URL=" in err


# -- the writes of Deskpilot's actions ---------------------------------------------------------------------

PROP = "String {0b7c4a9e-5f1d-4c8e-9a3b-6d2e1f0a7c55} Name DeskpilotKey"
EXPAND = f"singleValueExtendedProperties($filter=id eq '{PROP}')"


def marked(key: str) -> str:
    return f"singleValueExtendedProperties/Any(ep: ep/id eq '{PROP}' and ep/value eq '{key}')"


class Graph(NamedTuple):
    standin: StandIn
    http: httpx.Client


@pytest.fixture
def graph(request: pytest.FixtureRequest) -> Graph:
    """A small tenant and an httpx client with a token the stand-in issued (sign-in is tested above)."""
    standin = StandIn(generate(seed=4, messages=8, files=0, events=0)).start()
    request.addfinalizer(standin.stop)
    token = standin.issue_tokens("deskpilot-tests", "")["access_token"]
    client = httpx.Client(base_url=standin.graph_url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    request.addfinalizer(client.close)
    return Graph(standin, client)


def event_body(**extra: Any) -> dict[str, Any]:
    return {
        "subject": "Budget review",
        "body": {"contentType": "text", "content": "Agenda"},
        "start": {"dateTime": "2026-11-30T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-11-30T11:00:00", "timeZone": "Europe/Berlin"},
        "location": {"displayName": "Room 3"},
        "attendees": [{"emailAddress": {"address": "kim@fabrikam.example"}, "type": "required"}],
        **extra,
    }


def test_action_payloads_match_graph_metadata(csdl: Csdl, graph: Graph) -> None:
    t = graph.standin.tenant
    original = next(iter(t.messages.values()))
    ext = {"singleValueExtendedProperties": [{"id": PROP, "value": "k-1"}]}
    checks: list[tuple[Any, str]] = []

    def ok(response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    checks.append(
        (
            ok(graph.http.post(f"/me/messages/{original.id}/createReply", json={"message": ext}), 201),
            "message",
        )
    )
    found = ok(
        graph.http.get(
            "/me/mailFolders/drafts/messages", params={"$filter": marked("k-1"), "$expand": EXPAND}
        )
    )
    checks += [(m, "message") for m in found["value"]]
    assert found["value"][0]["singleValueExtendedProperties"] == [{"id": PROP, "value": "k-1"}]
    checks.append(
        (ok(graph.http.post("/me/events", json=event_body(transactionId="k-1", **ext)), 201), "event")
    )
    checks += [
        (e, "event")
        for e in ok(graph.http.get("/me/events", params={"$filter": marked("k-1"), "$expand": EXPAND}))[
            "value"
        ]
    ]
    lists = ok(graph.http.get("/me/todo/lists"))["value"]
    checks += [(todo, "todoTaskList") for todo in lists]
    task = {
        "title": "Send the figures",
        "body": {"content": "from the thread", "contentType": "text"},
        "dueDateTime": {"dateTime": "2026-12-01T00:00:00", "timeZone": "UTC"},
        "linkedResources": [
            {
                "applicationName": "Deskpilot",
                "externalId": "k-1",
                "displayName": "Mail",
                "webUrl": "https://x.example/m",
            }
        ],
    }
    checks.append((ok(graph.http.post(f"/me/todo/lists/{lists[0]['id']}/tasks", json=task), 201), "todoTask"))
    tasks = ok(
        graph.http.get(f"/me/todo/lists/{lists[0]['id']}/tasks", params={"$expand": "linkedResources"})
    )["value"]
    checks += [(item, "todoTask") for item in tasks]
    put = graph.http.put(
        "/me/drive/root:/Finance/Q4/notes.txt:/content",
        content=b"figures",
        headers={"Content-Type": "text/plain"},
        params={"@microsoft.graph.conflictBehavior": "fail"},
    )
    checks.append((ok(put, 201), "driveItem"))
    checks.append((ok(graph.http.get("/me/drive/root:/Finance/Q4/notes.txt")), "driveItem"))
    checks += [(f, "mailFolder") for f in ok(graph.http.get("/me/mailFolders"))["value"]]

    assert {k for _, k in checks} == {
        "message",
        "event",
        "todoTaskList",
        "todoTask",
        "driveItem",
        "mailFolder",
    }
    assert [e for payload, kind in checks for e in csdl.object(payload, kind, kind)] == []


def test_writes_show_up_in_delta_like_everything_else(graph: Graph) -> None:
    t = graph.standin.tenant
    drafts = graph.http.get("/me/mailFolders/drafts").json()["id"]
    now = datetime.now(UTC)
    window = {
        "startDateTime": (now - timedelta(days=1)).isoformat(),
        "endDateTime": (now + timedelta(days=9)).isoformat(),
    }
    rounds = {
        "mail": graph.http.get(f"/me/mailFolders/{drafts}/messages/delta").json()["@odata.deltaLink"],
        "drive": graph.http.get("/me/drive/root/delta").json()["@odata.deltaLink"],
        "calendar": graph.http.get("/me/calendarView/delta", params=window).json()["@odata.deltaLink"],
    }
    draft = graph.http.post(
        f"/me/messages/{next(iter(t.messages))}/createReply", json={"comment": "Thanks"}
    ).json()
    start = (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (now + timedelta(days=2, hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    when = {"start": {"dateTime": start, "timeZone": "UTC"}, "end": {"dateTime": end, "timeZone": "UTC"}}
    event = graph.http.post("/me/events", json=event_body(**when)).json()
    upload = graph.http.put(
        "/me/drive/root:/memo.txt:/content", content=b"memo", headers={"Content-Type": "text/plain"}
    )
    ids = {scope: {i["id"] for i in graph.http.get(link).json()["value"]} for scope, link in rounds.items()}
    assert (
        draft["id"] in ids["mail"] and event["id"] in ids["calendar"] and upload.json()["id"] in ids["drive"]
    )


def test_reply_drafts_and_their_lookup(graph: Graph) -> None:
    t = graph.standin.tenant
    original = next(m for m in t.messages.values() if m.cc)
    body = {
        "comment": "Agreed.",
        "message": {"singleValueExtendedProperties": [{"id": PROP, "value": "k-2"}]},
    }
    draft = graph.http.post(f"/me/messages/{original.id}/createReplyAll", json=body).json()
    assert draft["isDraft"] and draft["subject"] == f"RE: {original.subject}".replace("RE: RE: ", "RE: ")
    assert draft["toRecipients"][0]["emailAddress"]["address"] == f"{original.sender[1]}@contoso.example"
    assert (
        len(draft["ccRecipients"]) == len(original.cc) and draft["conversationId"] == original.conversation_id
    )
    assert draft["body"]["content"].count("Agreed.") == 1
    assert draft["parentFolderId"] == graph.http.get("/me/mailFolders/drafts").json()["id"]

    both = {"comment": "x", "message": {"body": {"contentType": "text", "content": "y"}}}
    assert graph.http.post(f"/me/messages/{original.id}/createReply", json=both).status_code == 400
    assert graph.http.post("/me/messages/AAMkAGnothere/createReply", json={}).status_code == 404
    assert graph.http.get("/me/messages", params={"$filter": "isRead eq true"}).status_code == 400

    def lookup(folder: str) -> list[str]:
        r = graph.http.get(f"/me/{folder}messages", params={"$filter": marked("k-2")})
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["value"]]

    assert lookup("mailFolders/drafts/") == lookup("") == [draft["id"]]
    assert graph.http.delete(f"/me/messages/{draft['id']}").status_code == 204
    # Soft delete: gone from Drafts, still found over the whole mailbox (in Deleted Items), then for good.
    assert lookup("mailFolders/drafts/") == [] and lookup("") == [draft["id"]]
    assert [e["gone"] for e in t.effects(include_gone=True)] == [True] and t.effects() == []
    assert graph.http.delete(f"/me/messages/{draft['id']}").status_code == 204
    assert graph.http.delete(f"/me/messages/{draft['id']}").status_code == 404 and lookup("") == []


def test_events_tasks_and_files_semantics(graph: Graph) -> None:
    t = graph.standin.tenant
    first = graph.http.post("/me/events", json=event_body(transactionId="tx-1"))
    again = graph.http.post("/me/events", json=event_body(transactionId="tx-1", subject="Changed"))
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert first.json()["start"] == {"dateTime": "2026-11-30T09:00:00.0000000", "timeZone": "UTC"}
    assert first.json()["isOrganizer"] and first.json()["transactionId"] == "tx-1"
    assert graph.http.post("/me/events", json=event_body(colour="red")).status_code == 400
    assert graph.http.delete(f"/me/events/{first.json()['id']}").status_code == 204
    assert graph.http.delete(f"/me/events/{first.json()['id']}").status_code == 404

    lists = graph.http.get("/me/todo/lists").json()["value"]
    assert [(x["displayName"], x["wellknownListName"]) for x in lists] == [
        ("Tasks", "defaultList"),
        ("Follow-ups", "none"),
    ]
    tasks = f"/me/todo/lists/{lists[1]['id']}/tasks"
    link = {"applicationName": "Deskpilot", "externalId": "k-3", "displayName": "Deskpilot"}
    task = graph.http.post(tasks, json={"title": "Call back", "linkedResources": [link]}).json()
    assert task["linkedResources"][0]["externalId"] == "k-3" and task["linkedResources"][0]["id"]
    assert "linkedResources" not in graph.http.get(tasks).json()["value"][0]
    assert (
        graph.http.get(tasks, params={"$filter": "linkedResources/any(r: r/externalId eq 'k-3')"}).status_code
        == 400
    )
    assert (
        graph.http.get(f"/me/todo/lists/{lists[0]['id']}/tasks/{task['id']}").status_code == 404
    )  # other list
    assert graph.http.delete(f"{tasks}/{task['id']}").status_code == 204
    assert graph.http.delete(f"{tasks}/{task['id']}").status_code == 404

    def put(path: str, content: bytes, conflict: str = "fail") -> httpx.Response:
        params = {"@microsoft.graph.conflictBehavior": conflict}
        return graph.http.put(f"/me/drive/root:/{path}:/content", content=content, params=params)

    assert graph.http.get("/me/drive/root:/Deals/2026/terms.md").status_code == 404
    made = put("Deals/2026/terms.md", b"v1")
    assert made.status_code == 201 and made.json()["parentReference"]["path"] == "/drive/root:/Deals/2026"
    clash = put("deals/2026/TERMS.md", b"v2")  # OneDrive names compare without case
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "nameAlreadyExists"
    assert put("Deals/2026/terms.md", b"v2", "replace").status_code == 200
    assert put("Deals/2026/terms.md", b"v3", "rename").json()["name"] == "terms 1.md"
    assert (
        graph.http.get("/me/drive/root:/Deals/2026/terms.md:/content", follow_redirects=True).content == b"v2"
    )
    assert put("Deals/bad:name.md", b"x").status_code == 400
    assert graph.http.delete(f"/me/drive/items/{made.json()['id']}").status_code == 204
    assert graph.http.delete(f"/me/drive/items/{made.json()['id']}").status_code == 404
    kinds = [(e["kind"], e["gone"]) for e in t.effects(include_gone=True)]
    assert kinds == [
        ("event", True),
        ("task", True),
        ("folder", False),
        ("folder", False),
        ("file", True),
        ("file", False),
    ]
    assert httpx.get(f"{graph.standin.url}/_standin/effects").json() == t.effects()


def test_faults_on_writes_come_before_or_after_the_write(graph: Graph) -> None:
    standin, t = graph.standin, graph.standin.tenant
    reply = f"/me/messages/{next(iter(t.messages))}/createReply"
    for kind, status in (("throttle", 429), ("unavailable", 503)):
        standin.set_faults(Faults(rate=1.0, kinds={kind: 1.0}, retry_after=0, methods=("POST",)))
        assert graph.http.get("/me").status_code == 200  # reads are not hit
        assert graph.http.post(reply, json={}).status_code == status
    assert t.effects() == []  # refused before it was applied
    standin.set_faults(Faults(rate=1.0, kinds={"drop_after": 1.0}, max_faults=1))
    assert graph.http.get("/me").status_code == 200  # drop_after never hits a read
    with pytest.raises(httpx.TransportError):
        graph.http.post(reply, json={})
    assert len(t.effects()) == 1  # applied, though the client heard nothing
    standin.set_faults(Faults(rate=1.0, kinds={"drop": 1.0}, methods=("POST",), max_faults=1))
    with pytest.raises(httpx.TransportError):
        graph.http.post(reply, json={})
    assert len(t.effects()) == 1  # dropped before it was applied
    assert graph.http.post(reply, json={}).status_code == 201 and len(t.effects()) == 2


def test_the_standin_makes_its_pdfs_without_fpdf2() -> None:
    """fpdf2 is a test-only dependency; the stand-in is product code (`python -m ...standin`). Its PDFs are
    written byte by byte, and pypdf (what the index reads PDFs with) finds their text."""
    script = (
        "import io, sys\n"
        "class NoFpdf:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'fpdf': raise ImportError('fpdf2 is not installed')\n"
        "sys.meta_path.insert(0, NoFpdf())\n"
        "import pypdf\n"
        "from deskpilot.server.connectors.standin import generate\n"
        "files = generate(messages=2, files=10, events=0).files.values()\n"
        "pdfs = [f for f in files if f.name.endswith('.pdf')]\n"
        "assert pdfs and all(f.marker in pypdf.PdfReader(io.BytesIO(f.content)).pages[0].extract_text()"
        " for f in pdfs)\n"
        "print(len(pdfs), 'fpdf' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "False"]
