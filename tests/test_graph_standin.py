"""The Graph stand-in speaks Graph: every property it emits exists on the entity type in Microsoft's v1.0
CSDL metadata (shared/reference/graph/) with a compatible type; paging and delta behave as documented."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO, free_port
from deskpilot.server.connectors.standin import StandIn, generate
from graph_helpers import graph_settings, sign_in, vault  # noqa: F401
from lxml import etree

METADATA = REPO.parent / "shared" / "reference" / "graph" / "cleanMetadata_v1.0.xml"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
_INTS = {"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte", "Edm.SByte"}
_STRINGS = {"Edm.String", "Edm.Guid", "Edm.Binary", "Edm.Duration", "Edm.Date", "Edm.TimeOfDay"}


class Csdl:
    """Entity, complex and enum types of the `microsoft.graph` schema, with inherited properties."""

    def __init__(self, path: Path) -> None:
        root = etree.parse(str(path)).getroot()
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
    if not METADATA.is_file():
        pytest.skip(f"Graph metadata not found at {METADATA}")
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

        kinds = {k for _, k in checks}
        assert kinds == {"user", "mailFolder", "message", "driveItem", "event"} and len(checks) > 30
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
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"
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
        out, err = proc.communicate(timeout=10)
    assert "DESKPILOT_GRAPH_BASE_URL=" in err
