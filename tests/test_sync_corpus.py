"""The conformance corpus (tests/graph_corpus/, Microsoft's published Graph examples): every payload goes
through the parsing code, and the multi-page sequences run through `GraphSync` against a loopback server
that replays them page by page (the real GraphClient, O365 and HTTP; sign-in from the Graph stand-in)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
import pytest
from graph_helpers import graph_settings, indexed, sign_in, vault  # noqa: F401

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.server.connectors.auth import GraphAuth
from deskpilot.server.connectors.graph import GraphClient, ItemDrift, decode_item
from deskpilot.server.connectors.models import DriveItem, Event, MailFolder, Message, Page, message_document
from deskpilot.server.connectors.standin import StandIn, generate
from deskpilot.server.connectors.state import SyncState
from deskpilot.server.connectors.sync import GraphSync, SyncSummary
from deskpilot.server.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("vault")]

CORPUS = Path(__file__).resolve().parent / "graph_corpus"
DOCS_GRAPH = "https://graph.microsoft.com/v1.0"
KIND = {"message": Message, "event": Event, "driveitem": DriveItem, "mailfolder": MailFolder}
# No id (placeholders, or a truncated example): drift by design, quarantined rather than guessed at.
PLACEHOLDERS = {
    "message-delta-reference.json",
    "event-delta-reference.json",
    "event-calendarview-reference.json",
}


def kind_of(path: Path) -> type[Any]:
    name = (path.parent.name if path.parent.name != "single" else path.name).split("-")[0]
    return KIND[name]


def payloads(path: Path) -> list[bytes]:
    """The items of a corpus file: a single entity (`*-get-*`), or the values of a page. A delta page
    always ends in a link; a list example may not (its last page, or cut short by the documentation)."""
    if "-get-" in path.name:
        return [path.read_bytes()]
    page = msgspec.json.decode(path.read_bytes(), type=Page)
    assert page.value
    if "delta" in f"{path.parent.name}/{path.name}":
        assert page.next_link or page.delta_link
    return [bytes(raw) for raw in page.value]


@pytest.mark.parametrize("path", sorted(CORPUS.rglob("*.json")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_corpus_payload_goes_through_the_parser(path: Path) -> None:
    for raw in payloads(path):
        if path.name in PLACEHOLDERS:
            with pytest.raises(ItemDrift, match="does not match the schema"):
                decode_item(raw, kind_of(path))
        else:
            item = decode_item(raw, kind_of(path))
            assert item.id == json.loads(bytes(raw))["id"]


class Replay(ThreadingHTTPServer):
    """Graph as the corpus recorded it: each request answered from a file chosen by its path and token."""

    def __init__(self, routes: dict[tuple[str, str], Any]) -> None:
        super().__init__(("127.0.0.1", 0), _ReplayHandler)
        self.routes = routes
        self.served: list[tuple[str, str]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1.0"

    def answer(self, path: str, query: str) -> tuple[int, bytes]:
        """The route whose path ends the request's path and whose query part is in its query, the longest
        query part winning (a token over the first page's bare URL)."""
        keys = [k for k in self.routes if path.endswith(k[0]) and k[1] in query]
        key = max(keys, key=lambda k: len(k[1]), default=None)
        self.served.append((path, query))
        if key is None:
            return 404, b'{"error": {"code": "itemNotFound", "message": "not in the corpus"}}'
        body = self.routes[key]
        if isinstance(body, bytes):
            return 200, body
        return 200, json.dumps(body).replace(DOCS_GRAPH, self.url).encode()


class _ReplayHandler(BaseHTTPRequestHandler):
    server: Replay

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        status, body = self.server.answer(unquote(split.path), unquote(split.query))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def corpus(name: str) -> Any:
    return json.loads((CORPUS / name).read_text())


def empty_round(link: str) -> dict[str, Any]:
    return {"value": [], "@odata.deltaLink": f"{DOCS_GRAPH}/{link}?$deltatoken=replayed"}


@pytest.fixture
def replay() -> Iterator[Replay]:
    folder = "AQMkADNkNAAAgEMAAAA"
    messages = "message-delta-sequence"
    routes: dict[tuple[str, str], Any] = {  # (the end of the path, a part of the query): the answer
        # Glue the documentation does not give: the folder the sequence is in, empty drive and calendar,
        # no followed sites.
        ("/me/mailFolders", ""): {"value": [{"id": folder, "displayName": "Inbox", "totalItemCount": 5}]},
        ("/messages/delta", ""): corpus(f"{messages}/1.json"),
        ("/messages/delta", "$skiptoken=GwcBoTmPuoTQWfcsAbkYM"): corpus(f"{messages}/2.json"),
        ("/messages/delta", "$skiptoken=GwcBoTmPKILK4jLH7mAd1lLU"): corpus(f"{messages}/3.json"),
        ("/messages/delta", "$deltatoken=GwcBoTmPuoGNlgXgF1nyUNMXY"): corpus(f"{messages}/4-next-round.json"),
        ("/me/drive/root/delta", ""): corpus("driveitem-delta-sequence/1.json"),
        ("/me/drive/delta(token=1230919asd190410jlka)", ""): corpus("driveitem-delta-sequence/2.json"),
        ("/me/drive/root/delta", "(token='"): empty_round("me/drive/root/delta"),
        ("/me/drive/items/123010204abac/content", ""): b"The text of file.txt, replayed.",
        ("/calendarView/delta", ""): empty_round("me/calendarView/delta"),
        ("/me/followedSites", ""): {"value": []},  # no SharePoint sites followed
    }
    with replaying(routes) as server:
        yield server


@contextmanager
def replaying(routes: dict[tuple[str, str], Any]) -> Iterator[Replay]:
    server = Replay(routes)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def run_sync(settings: Settings, index: DocumentIndex) -> SyncSummary:
    client, state = GraphClient(GraphAuth(settings), settings), SyncState(settings.sync_db_path)
    try:
        return GraphSync(client, index, state, settings).run()
    finally:
        client.close()
        state.close()


def test_the_corpus_sequences_run_through_graph_sync(replay: Replay, tmp_path: Path) -> None:
    with StandIn(generate(messages=1, files=0, events=0)) as standin:  # the sign-in only
        settings = graph_settings(standin, graph_base_url=replay.url, home=tmp_path / "home")
        sign_in(settings)
        with DocumentIndex(settings.home / "index", embedder=HashEmbedder()) as index:

            def run() -> SyncSummary:
                client, state = GraphClient(GraphAuth(settings), settings), SyncState(settings.sync_db_path)
                try:
                    return GraphSync(client, index, state, settings).run()
                finally:
                    client.close()
                    state.close()

            first = run()
            assert first.errors == [] and first.quarantined == 0
            docs = indexed(index.folder)
            subjects = [t for t in docs.values() if t.startswith("Subject:")]
            assert len(subjects) == 5 and any("Holiday hours update" in t for t in subjects)
            assert "graph:driveItem:123010204abac" in docs  # file.txt, path rebuilt without parentReference
            assert "graph:driveItem:0123456789abc" not in docs  # folder2: deleted on the last page

            second = run()  # the next round: an @removed for an id never seen, a change of isRead
            assert second.errors == [] and second.removed == 0 and second.quarantined == 0
            assert indexed(index.folder).keys() == docs.keys()
        tokens = [q.rpartition("token=")[2] for path, q in replay.served if path.endswith("/messages/delta")]
        assert tokens[1:] == [
            "GwcBoTmPuoTQWfcsAbkYM",
            "GwcBoTmPKILK4jLH7mAd1lLU",
            "GwcBoTmPuoGNlgXgF1nyUNMXY",
        ]


def test_the_documented_mail_folder_list_syncs_every_folder_but_the_search_folder(tmp_path: Path) -> None:
    """user-list-mailfolders.md, example 1: eight folders and a `mailSearchFolder` ("Weekly digests", a
    saved search over the Inbox). A search folder's messages are in real folders; syncing it as a folder
    fetched them twice and gave them its name."""
    listed = corpus("single/mailfolder-list-example1.json")
    search = "AAMkADYRAAAZg1yTAAA="
    routes: dict[tuple[str, str], Any] = {
        ("/me/mailFolders", ""): listed,
        ("/childFolders", ""): {"value": []},  # glue: Inbox's and Conversation History's children
        ("/messages/delta", ""): empty_round("me/mailFolders/x/messages/delta"),
        ("/me/drive/root/delta", ""): empty_round("me/drive/root/delta"),
        ("/calendarView/delta", ""): empty_round("me/calendarView/delta"),
        ("/me/followedSites", ""): {"value": []},
    }
    with StandIn(generate(messages=1, files=0, events=0)) as standin, replaying(routes) as replay:
        settings = graph_settings(standin, graph_base_url=replay.url, home=tmp_path / "home")
        sign_in(settings)
        with DocumentIndex(settings.home / "index", embedder=HashEmbedder()) as index:
            summary = run_sync(settings, index)
        assert summary.errors == [] and summary.folders == 8
        state = SyncState(settings.sync_db_path)
        try:
            mail = {
                c.scope.removeprefix("mail:"): c.name for c in state.cursors() if c.scope.startswith("mail:")
            }
        finally:
            state.close()
        folders = {f["id"]: f["displayName"] for f in listed["value"] if f["id"] != search}
        assert mail == folders
        assert not any(search in path for path, _ in replay.served)


def test_the_documented_message_get_goes_through_the_client_into_an_index_document(tmp_path: Path) -> None:
    """message-get.md, examples 1 (HTML body) and 3 (text body with emoji as surrogate pairs), fetched
    by `GraphClient.get_item` over HTTP and turned into the document the index keeps."""
    routes: dict[tuple[str, str], Any] = {
        ("/me/messages/AAMkADhMGAAA=", ""): corpus("single/message-get-example1.json"),
        ("/me/messages/AAMkAGI1AAAoZCfHAAA=", ""): corpus("single/message-get-example3.json"),
    }
    with StandIn(generate(messages=1, files=0, events=0)) as standin, replaying(routes) as replay:
        settings = graph_settings(standin, graph_base_url=replay.url, home=tmp_path / "home")
        client = GraphClient(sign_in(settings), settings)
        try:
            html = client.get_item("me/messages/AAMkADhMGAAA=", Message)
            text = client.get_item("me/messages/AAMkAGI1AAAoZCfHAAA=", Message)
        finally:
            client.close()
    doc = message_document(html, "Inbox")
    assert doc.source == "graph:message:AAMkADhMGAAA="
    body = doc.text or ""
    assert (
        "Subject: 9/9/2018: concert" in body and "From: Adele Vance <adelev@contoso.OnMicrosoft.com>" in body
    )
    assert "The group represents Nevada." in body and "<html>" not in body
    assert (
        html.received_date_time is not None
        and html.received_date_time.isoformat() == "2018-09-09T03:15:08+00:00"
    )
    welcome = message_document(text)
    welcome_body = welcome.text or ""
    assert "[\U0001f60a]" in welcome_body and "Thanks!" in welcome_body
