"""Approvals a person makes, and where webhooks may go (issue 13), each finding a test that failed before.

- A policy change or a decision names a person ({name, address}); lineage records both.
- Loosening approval needs `confirmLoosening: true` (409 `confirmation_required`), and IT can forbid it
  (403 `loosening_forbidden`); tightening needs neither.
- A proposal's confidence is the cited run's, never the client's.
- Webhook URLs: allow-listed receivers only, checked at proposal (400 `webhook_not_allowed`) and when
  they run (the action fails and nothing is sent), after DNS, on every address, no redirects followed.

Everything stays on 127.0.0.1: receivers are real servers there, and host names that must not be looked
up outside are answered by a resolver the test gives (`Destinations(resolve=...)`).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import app_client, free_port
from fakes import RecordingQueue, ScriptedAI, fake_adapters, record_run
from litestar.testing import TestClient
from sqlite_utils.migrations import Migrations
from webhook_receiver import WebhookReceiver

from deskpilot.inference import ScriptedBackend
from deskpilot.server.actions._tables import m001_actions, m002_one_time_format
from deskpilot.server.actions.adapters import WebhookAdapter, WebhookSecrets
from deskpilot.server.actions.destinations import DestinationRefused, Destinations, HostNotFound, public
from deskpilot.server.actions.outbox import Outbox
from deskpilot.server.actions.policy import Automation, AutomationUpdate, loosenings
from deskpilot.server.app import create_app
from deskpilot.server.core.wire import Person
from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.lineage import LineageStore
from deskpilot.server.settings import Settings, load_settings
from deskpilot.server.worker import WorkerRuntime

ALICE = {"name": "Alice Adams", "address": "alice@contoso.example"}
ADMIN = {"name": "IT Admin", "address": "it-admin@contoso.example"}
OWN_PORT = 8765  # the app's port in these tests (load_settings' default), which no webhook may call


def _client(**overrides: Any) -> TestClient[Any]:
    return app_client(create_app(load_settings(**overrides), backend=ScriptedBackend(["ok"])))


@pytest.fixture
def client(app_home: Path) -> Iterator[TestClient[Any]]:
    with _client() as c:
        yield c


def _put(client: TestClient[Any], name: str, **body: Any) -> Any:
    return client.put(f"/v1/automations/{name}", json={"actor": ADMIN, **body})


def _run(db_path: Path, confidence: float | None, status: str = "ok") -> str:
    """A closed run in lineage, as a model run records one."""
    with LineageStore(db_path) as lineage:
        return record_run(lineage, "extract", confidence, status=status)


# -- approvals: loosening needs a confirmation, and IT may forbid it ------------------------------------


@pytest.mark.integration
def test_loosening_without_confirmation_is_409_and_changes_nothing(client: TestClient[Any]) -> None:
    cases = [
        ("taskpane", {"approval": {"webhook": "never"}}, "webhook: always -> never"),
        ("taskpane", {"approval": {"calendar_event": "below_threshold"}}, "always -> below_threshold"),
        ("taskpane", {"approval": {"todo_task": "never"}}, "todo_task: below_threshold -> never"),
        ("taskpane", {"threshold": 0.5}, "threshold: 0.8 -> 0.5"),
        ("meeting_followup", {"settings": {"alwaysReview": False}}, "alwaysReview: on -> off"),
    ]
    for name, change, words in cases:
        before = client.get(f"/v1/automations/{name}").json()["automation"]
        r = _put(client, name, **change)
        assert r.status_code == 409, (change, r.text)
        assert r.json()["code"] == "confirmation_required" and words in r.json()["message"]
        assert "confirmLoosening" in r.json()["message"]
        assert client.get(f"/v1/automations/{name}").json()["automation"] == before
    r = client.post("/v1/actions", json={"kind": "calendar_event", "params": _EVENT})
    assert r.json()["action"]["status"] == "pending_review"  # still "always"
    r = _put(client, "taskpane", approval={"webhook": "never"}, confirmLoosening=True)
    assert r.status_code == 200 and r.json()["automation"]["approval"]["webhook"] == "never"
    [entry] = [h for h in client.get("/v1/automations").json()["automations"] if h["name"] == "taskpane"]
    assert entry["updatedBy"] == "IT Admin" and entry["updatedByAddress"] == "it-admin@contoso.example"


_EVENT = {"subject": "Sync", "start": "2026-12-01T10:00:00", "end": "2026-12-01T10:30:00"}


@pytest.mark.integration
def test_tightening_needs_no_confirmation_even_where_loosening_is_forbidden(app_home: Path) -> None:
    with _client(allow_loosening_approval=False) as client:
        assert _put(client, "taskpane", approval={"draft_reply": "always"}).status_code == 200
        assert _put(client, "taskpane", approval={"todo_task": "always"}).status_code == 200
        assert _put(client, "taskpane", threshold=0.9).status_code == 200
        assert _put(client, "taskpane", enabled=False, dailyBudget=3).status_code == 200  # not approval


@pytest.mark.integration
def test_it_can_forbid_loosening_whatever_the_confirmation(app_home: Path) -> None:
    with _client(allow_loosening_approval=False) as client:
        before = client.get("/v1/automations/taskpane").json()["automation"]
        for confirm in (False, True):
            r = _put(client, "taskpane", approval={"webhook": "never"}, confirmLoosening=confirm)
            assert r.status_code == 403, r.text
            assert (
                r.json()["code"] == "loosening_forbidden"
                and "webhook: always -> never" in r.json()["message"]
            )
        assert client.get("/v1/automations/taskpane").json()["automation"] == before


@pytest.mark.unit
def test_what_counts_as_loosening() -> None:
    base = Automation(name="a")
    assert loosenings(base, base) == []
    tighter = Automation(
        name="a", approval={**base.approval, "draft_reply": "always", "todo_task": "always"}, threshold=0.9
    )
    assert loosenings(base, tighter) == []
    assert loosenings(tighter, base) == [
        "draft_reply: always -> never",
        "todo_task: always -> below_threshold",
        "threshold: 0.9 -> 0.8",
    ]
    off = Automation(name="a", settings={"alwaysReview": False})
    assert loosenings(base, off) == ["alwaysReview: on -> off"] and loosenings(off, base) == []
    # A kind with no mode is "always": naming it "never" loosens.
    bare = Automation(name="a", approval={})
    assert loosenings(bare, Automation(name="a", approval={"webhook": "never"})) == [
        "webhook: always -> never"
    ]


# -- approvals: a person, named and recorded -----------------------------------------------------------


@pytest.mark.integration
def test_decisions_and_policy_changes_need_a_person(client: TestClient[Any]) -> None:
    action = client.post("/v1/actions", json={"kind": "calendar_event", "params": _EVENT}).json()["action"]
    for body in (
        {},
        {"reviewer": "alice"},  # a free string: anyone at all
        {"reviewer": {"name": "Alice"}},
        {"reviewer": {"address": "alice@contoso.example"}},
        {"reviewer": {"name": "Alice", "address": "not an address"}},
        {"reviewer": {"name": "Alice", "address": "alice@contoso"}},
        {"reviewer": {"name": " ", "address": "alice@contoso.example"}},
        {"reviewer": {"name": "Alice\n", "address": "alice@contoso.example"}},
        {"reviewer": {"name": "A" * 201, "address": "alice@contoso.example"}},
        {"reviewer": {"name": "Alice", "address": "a@" + "b" * 320 + ".example"}},
        {"reviewer": {**ALICE, "role": "admin"}},
    ):
        for verb in ("approve", "reject", "retry"):
            r = client.post(f"/v1/actions/{action['id']}/{verb}", json=body)
            assert r.status_code == 400, (verb, body, r.text)
            assert r.json()["code"] == "invalid_request"
    assert client.get(f"/v1/actions/{action['id']}").json()["action"]["status"] == "pending_review"
    for actor in (None, "admin", {"name": "IT Admin"}, {"name": "IT", "address": "it@"}):
        body = {"enabled": False} | ({} if actor is None else {"actor": actor})
        r = client.put("/v1/automations/taskpane", json=body)
        assert r.status_code == 400, (actor, r.text)
    assert client.get("/v1/automations/taskpane").json()["automation"]["enabled"] is True


@pytest.mark.integration
def test_the_log_records_the_persons_name_and_address(client: TestClient[Any], app_home: Path) -> None:
    action = client.post("/v1/actions", json={"kind": "calendar_event", "params": _EVENT}).json()["action"]
    r = client.post(f"/v1/actions/{action['id']}/approve", json={"reviewer": ALICE, "note": "ok"})
    assert r.status_code == 200 and r.json()["action"]["approval"] == "Alice Adams"
    history = client.get(f"/v1/actions/{action['id']}").json()["history"]
    assert [(h["event"], h["actor"], h["actorAddress"]) for h in history] == [
        ("proposed", "taskpane", None),
        ("approved", "Alice Adams", "alice@contoso.example"),
    ]
    assert _put(client, "taskpane", approval={"webhook": "never"}, confirmLoosening=True).status_code == 200
    [change] = [h for h in _history("taskpane") if h.event == "automation.updated"]
    assert (change.actor, change.actor_address) == ("IT Admin", "it-admin@contoso.example")
    assert change.detail["loosened"] == ["webhook: always -> never"] and change.detail["confirmed"] is True
    result = CliRunner().invoke(_cli(), ["audit", "export", "--table", "actions"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(r["event"], r["actor"], r.get("actor_address")) for r in rows} >= {
        ("approved", "Alice Adams", "alice@contoso.example"),
        ("automation.updated", "IT Admin", "it-admin@contoso.example"),
    }
    with LineageStore(load_settings().db_path) as lineage:
        assert lineage.verify().ok


def _cli() -> Any:
    from deskpilot.server.cli import main

    return main


def _history(subject: str) -> list[Any]:
    with LineageStore(load_settings().db_path) as lineage:
        return Outbox(lineage).history(subject)


@pytest.mark.unit
def test_log_rows_from_before_stay_readable_and_verified(app_home: Path) -> None:
    """A database whose action log has no `actor_address` yet: the migration adds it, old rows keep
    their hashes, and read back without an address."""
    old = Migrations("deskpilot.actions")
    old()(m001_actions)
    old()(m002_one_time_format)
    with LineageStore(load_settings().db_path) as lineage:
        lineage.migrate(old)
        with lineage.transaction() as conn:
            lineage.append_chained(
                conn,
                "action_log",
                {
                    "id": "old-1",
                    "at": "2026-11-30T08:15:02.000000Z",
                    "subject": "action",
                    "subject_id": "a-old",
                    "event": "approved",
                    "actor": "alice",
                    "detail": "{}",
                },
            )
        outbox = Outbox(lineage)  # migrates: m003 adds the columns
        outbox.update_automation("taskpane", AutomationUpdate(threshold=0.95), Person(**ADMIN))
        [entry] = outbox.history("a-old")
        assert (entry.actor, entry.actor_address) == ("alice", None)
        [change] = outbox.history("taskpane")
        assert change.actor_address == "it-admin@contoso.example"
        assert lineage.verify().ok and lineage.verify().actions_checked == 2


# -- confidence: the cited run's, never the client's ----------------------------------------------------


@pytest.mark.integration
def test_a_confidence_sent_by_the_client_is_refused(client: TestClient[Any]) -> None:
    for confidence in (1.0, 0.99, 2):
        r = client.post(
            "/v1/actions", json={"kind": "todo_task", "params": {"title": "x"}, "confidence": confidence}
        )
        assert r.status_code == 400 and "confidence" in r.json()["message"], r.text
    assert client.get("/v1/actions").json()["actions"] == []


@pytest.mark.integration
def test_the_cited_runs_confidence_decides(client: TestClient[Any], app_home: Path) -> None:
    db = load_settings().db_path
    sure, unsure, failed = _run(db, 0.95), _run(db, 0.5), _run(db, None, status="error")

    def propose(title: str, run_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "todo_task", "params": {"title": title}}
        r = client.post("/v1/actions", json=body | ({"runId": run_id} if run_id else {}))
        assert r.status_code == 201, r.text
        return dict(r.json()["action"])

    cases = [("a", sure, "queued", 0.95), ("b", unsure, "pending_review", 0.5)]
    cases += [("c", None, "pending_review", 0.0), ("d", "no-such-run", "pending_review", 0.0)]
    cases += [("e", failed, "pending_review", 0.0)]
    for title, run_id, status, confidence in cases:
        action = propose(title, run_id)
        assert (action["status"], action["confidence"]) == (status, confidence), title
    with LineageStore(db) as lineage:  # a person accepted the unsure run's result: it is certain now
        reviews = ReviewQueue(lineage)
        item = reviews.enqueue(
            run_id=unsure,
            task="extract",
            template_id="t",
            model_id="m",
            reasons=["low confidence"],
            confidence=0.5,
            proposed={"x": 1},
            fields={},
            spec={},
        )
        reviews.decide(item.id, decision="accept", reviewer="Alice", final={"x": 1})
    action = propose("f", unsure)
    assert (action["status"], action["confidence"]) == ("queued", 1.0)
    detail = client.get(f"/v1/actions/{action['id']}").json()["history"][0]["detail"]
    assert detail["confidence_from"] == "accepted in review"


@pytest.mark.unit
def test_a_workflow_cites_the_run_it_used(app_home: Path) -> None:
    settings = load_settings()
    ai = ScriptedAI(confidence=0.95)
    runtime = WorkerRuntime(settings, adapters=fake_adapters(), ai=ai, queue=RecordingQueue())  # type: ignore[arg-type]
    ai.lineage = runtime.lineage
    try:
        record, _ = runtime.engine.start(
            "invoice_intake", {"text": "Invoice", "runId": "x"}, origin="o", actor="me"
        )
        assert record is not None
        runtime.queue.drain()
        done = runtime.engine.get(record.id)
        [task] = done.actions
        assert task.run_id == done.outputs["extract"]["runId"] and task.confidence == 0.95
        assert done.status == "completed"  # 0.95 is above the threshold: approved by policy
        ai.confidence = 0.5
        low, _ = runtime.engine.start("invoice_intake", {"text": "Invoice"}, origin="o2", actor="me")
        assert low is not None
        runtime.queue.drain()
        [pending] = runtime.engine.get(low.id).actions
        assert pending.status == "pending_review" and pending.confidence == 0.5
    finally:
        runtime.close()


# -- webhook destinations: at proposal --------------------------------------------------------------------


@pytest.fixture
def hooks(app_home: Path) -> Iterator[tuple[TestClient[Any], int]]:
    """The app, allowing one receiver on 127.0.0.1 (by address, path prefix /hooks/), the app's own port
    (which stays refused), and a host name that resolves to a loopback address."""
    port = free_port()
    allow = (f"http://127.0.0.1:{port}/hooks/", f"http://127.0.0.1:{OWN_PORT}/", f"https://localhost:{port}/")
    with _client(webhook_allow=allow) as client:
        yield client, port


def _propose_hook(client: TestClient[Any], url: str) -> Any:
    return client.post("/v1/actions", json={"kind": "webhook", "params": {"url": url, "payload": {"a": 1}}})


SSRF = [
    ("file:///etc/passwd", "must be https"),
    ("http://example.com/hooks/x", "must be https"),  # http to a public host
    ("https://example.com/hooks/x", "not an allowed webhook receiver"),  # not on the list
    ("http://user:pass@127.0.0.1:{port}/hooks/x", "credentials"),
    ("http://169.254.169.254/latest/meta-data/", "must be https"),
    ("https://169.254.169.254/latest/meta-data/", "not an allowed"),
    ("https://[fd00:ec2::254]/latest/meta-data/", "not an allowed"),
    ("http://127.0.0.1:{other}/hooks/x", "not an allowed"),  # loopback, not on the list
    ("http://127.0.0.1:8765/v1/actions", "own API"),  # allow-listed, and still refused
    ("http://localhost:8765/v1/actions", "must be https"),
    ("http://[::1]:8765/v1/actions", "own API"),
    ("http://127.0.0.1:{port}/hooks/../v1/actions", "'..'"),
    ("http://127.0.0.1:{port}/hooks/%2e%2e/v1/actions", "'..'"),
    ("http://127.0.0.1:{port}/hooks/%2E%2E/v1/actions", "'..'"),
    ("http://127.0.0.1:{port}/hooks/%252e%252e/v1/actions", "'..'"),
    ("http://127.0.0.1:{port}/hooks/.%2e/v1/actions", "'..'"),
    ("http://127.0.0.1:{port}/hooks%2f..%2fv1", "encoded"),
    ("http://127.0.0.1:{port}/hooksx/y", "outside"),  # a prefix only on a segment boundary
    ("http://127.0.0.1:{port}/other", "outside"),
    ("http://[::1]:{port}/hooks/x", "not an allowed"),
    ("http://[::ffff:127.0.0.1]:{port}/hooks/x", "not an allowed"),
    ("http://2130706433:{port}/hooks/x", "standard form"),  # 127.0.0.1 as one number
    ("http://0x7f000001:{port}/hooks/x", "standard form"),
    ("http://0177.0.0.1:{port}/hooks/x", "standard form"),
    ("http://127.1:{port}/hooks/x", "standard form"),
    ("https://localhost:{port}/hooks/x", "resolves to 127.0.0.1"),  # allow-listed name, loopback address
    ("http://127.0.0.1:{port}\\@evil.example/hooks/x", ""),
    ("gopher://127.0.0.1:{port}/hooks/x", "must be https"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("url", "words"), SSRF, ids=[u for u, _ in SSRF])
def test_a_webhook_url_is_refused_at_proposal(
    hooks: tuple[TestClient[Any], int], url: str, words: str
) -> None:
    client, port = hooks
    r = _propose_hook(client, url.format(port=port, other=free_port()))
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "webhook_not_allowed" and words in r.json()["message"]
    assert client.get("/v1/actions").json()["actions"] == []


@pytest.mark.integration
def test_an_allowed_receiver_is_accepted_at_proposal(hooks: tuple[TestClient[Any], int]) -> None:
    client, port = hooks
    for url in (
        f"http://127.0.0.1:{port}/hooks/x",
        f"http://127.0.0.1:{port}/hooks",
        f"http://127.0.0.1:{port}/hooks/a%20b?x=1",
    ):
        assert _propose_hook(client, url).status_code == 201, url


@pytest.mark.integration
def test_a_webhook_in_an_automations_settings_is_checked(hooks: tuple[TestClient[Any], int]) -> None:
    client, port = hooks
    for key in ("financeWebhook", "escalationWebhook"):
        r = _put(client, "invoice_intake", settings={key: "https://169.254.169.254/latest"})
        assert r.status_code == 400 and r.json()["code"] == "webhook_not_allowed", r.text
    r = _put(client, "invoice_intake", settings={"financeWebhook": f"http://127.0.0.1:{port}/hooks/f"})
    assert r.status_code == 200, r.text


@pytest.mark.unit
def test_not_public_addresses() -> None:
    for text in ("169.254.169.254", "fd00:ec2::254", "127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3",
                 "192.168.1.1", "172.16.0.1", "100.64.0.1", "0.0.0.0", "::", "224.0.0.1", "fe80::1",
                 "64:ff9b::7f00:1", "2002:7f00:1::", "240.0.0.1", "255.255.255.255"):  # fmt: skip
        assert not public(ipaddress.ip_address(text)), text
    for text in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"):
        assert public(ipaddress.ip_address(text)), text


@pytest.mark.unit
def test_every_address_a_name_resolves_to_is_checked() -> None:
    answers = {"hooks.example.test": ["93.184.216.34", "10.0.0.7"], "ok.example.test": ["93.184.216.34"]}
    destinations = Destinations(
        ["https://hooks.example.test/in/", "https://ok.example.test/in/"], resolve=lambda h, p: answers[h]
    )
    with pytest.raises(DestinationRefused, match=r"10\.0\.0\.7"):
        destinations.check("https://hooks.example.test/in/x")
    assert destinations.check("https://OK.example.test./in/x") == ["93.184.216.34"]

    def nowhere(host: str, port: int) -> list[str]:
        raise HostNotFound(host)

    with pytest.raises(HostNotFound):
        Destinations(["https://ok.example.test/"], resolve=nowhere).check("https://ok.example.test/x")
    # An entry that cannot be honoured is ignored (and said so), never widened.
    bad = Destinations(["http://hooks.example.test/", "https://u:p@ok.example.test/", "ftp://x.test/"])
    assert len(bad.problems) == 3 and bad.entries == []


# -- webhook destinations: at execution ---------------------------------------------------------------------


class Listener:
    """A TCP port on 127.0.0.1 that counts connections and answers none."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def _runtime(settings: Settings, webhook: WebhookAdapter) -> WorkerRuntime:
    adapters: dict[str, Any] = {**fake_adapters(), "webhook": webhook}
    return WorkerRuntime(settings, adapters=adapters, ai=ScriptedAI(), queue=RecordingQueue())  # type: ignore[arg-type]


def _run_to_the_end(runtime: WorkerRuntime, url: str) -> Any:
    """Propose in process (as a workflow does, with no check at proposal), approve as a person, execute."""
    outbox = runtime.outbox
    action, _ = outbox.propose(
        "webhook", {"url": url, "payload": {"n": 1}}, title="t", origin="o", actor="me"
    )
    outbox.decide(action.id, approve=True, actor=Person(**ALICE))
    runtime.queue.execute(action.id)  # as the approve endpoint does
    runtime.queue.drain()
    return outbox.get(action.id)


@pytest.mark.integration
def test_a_name_that_resolves_to_a_private_address_at_execution_fails_and_sends_nothing(
    app_home: Path,
) -> None:
    """DNS rebinding: the allow-listed name resolved to a public address when the action was proposed,
    and resolves to 127.0.0.1 when it runs. The check runs where the socket opens: nothing connects."""
    listener = Listener()
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])
    allow = [f"https://hooks.example.test:{listener.port}/in/"]
    destinations = Destinations(allow, own_port=OWN_PORT, resolve=lambda host, port: next(answers))
    url = f"https://hooks.example.test:{listener.port}/in/x"
    assert destinations.check(url) == ["93.184.216.34"]  # at proposal: a public address
    runtime = _runtime(
        load_settings(), WebhookAdapter(WebhookSecrets(), destinations=destinations, timeout=2)
    )
    try:
        done = _run_to_the_end(runtime, url)
        assert done.status == "failed" and "127.0.0.1" in (done.error or ""), done
        assert done.failures == 1  # refused, not retried
    finally:
        runtime.close()
        listener.close()
    assert listener.accepted == 0


@pytest.mark.integration
def test_execution_refuses_a_receiver_the_allow_list_does_not_name(app_home: Path) -> None:
    with WebhookReceiver() as hook:
        settings = load_settings(webhook_allow=(f"http://127.0.0.1:{free_port()}/",))  # another port
        runtime = _runtime(
            settings, WebhookAdapter(WebhookSecrets(), destinations=Destinations.from_settings(settings))
        )
        try:
            done = _run_to_the_end(runtime, hook.url + "/x")
        finally:
            runtime.close()
        assert done.status == "failed" and "not an allowed webhook receiver" in (done.error or "")
        assert hook.deliveries == []


class _Redirect(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(302)
        self.send_header("Location", self.server.target)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.integration
def test_a_redirect_fails_the_action_and_its_target_gets_nothing(app_home: Path) -> None:
    with WebhookReceiver() as target:
        redirect = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
        redirect.target, redirect.hits = target.url + "/x", 0  # type: ignore[attr-defined]
        threading.Thread(target=redirect.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        port = redirect.server_address[1]
        settings = load_settings(
            webhook_allow=(f"http://127.0.0.1:{port}/", target.url.rsplit("/", 1)[0] + "/")
        )
        runtime = _runtime(
            settings, WebhookAdapter(WebhookSecrets(), destinations=Destinations.from_settings(settings))
        )
        try:
            done = _run_to_the_end(runtime, f"http://127.0.0.1:{port}/in")
        finally:
            runtime.close()
            redirect.shutdown()
            redirect.server_close()
        assert (
            done.status == "failed" and "302" in (done.error or "") and "not followed" in (done.error or "")
        )
        assert redirect.hits == 1 and target.deliveries == []  # type: ignore[attr-defined]
