"""Action adapters against real receivers on 127.0.0.1: the Graph stand-in (reply drafts, events, To Do
tasks, OneDrive files) through the real GraphClient, and a webhook receiver that checks signatures.

One contract suite runs over every adapter: one effect per idempotency key, whatever is lost in between
(an answer, the process); compensating removes it and may be repeated; a receiver that refuses makes a
TransientError and nothing else. Then what is particular to each adapter, to GraphClient's writes and to
the webhook secrets. Faults come from the receivers, not from mocks; the one test double is a GraphClient
that "dies" right after Graph acted, handed to the adapters through their factory."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from graph_helpers import graph_settings, sign_in, use_keyring, vault  # noqa: F401
from webhook_receiver import WebhookReceiver

from deskpilot.server.actions._types import (
    ACTION_KINDS,
    CalendarEventParams,
    DraftReplyParams,
    Effect,
    FileDocumentParams,
    PermanentError,
    TodoTaskParams,
    TransientError,
    WebhookParams,
    idempotency_key,
)
from deskpilot.server.actions.adapters import (
    KEY_PROPERTY,
    RETRACTED,
    WebhookAdapter,
    WebhookSecrets,
    build_adapters,
    default_graph_factory,
)
from deskpilot.server.connectors.auth import GraphAuth
from deskpilot.server.connectors.graph import GraphAmbiguous, GraphClient, GraphUnavailable, quote_id
from deskpilot.server.connectors.standin import Faults, StandIn, generate
from deskpilot.server.connectors.tokens import InsecureKeyringError
from deskpilot.server.settings import Settings

pytestmark = pytest.mark.usefixtures("vault")

SECRET = "whsec-test-6f1c4c1e8d1b4b6e"


def graph_posts(standin: StandIn) -> int:
    """POSTs that reached Graph (sign-in's POSTs to the authority are not Graph's)."""
    return sum(1 for r in standin.requests if r[1] == "POST" and r[2].startswith("/v1.0/"))


@dataclass
class Env:
    standin: StandIn
    hook: WebhookReceiver
    settings: Settings
    secrets: WebhookSecrets
    built: list[Any] = field(default_factory=list)

    def adapters(self, factory: Callable[[], GraphClient] | None = None) -> dict[str, Any]:
        """A fresh set, as a new worker process would build it (closed at the end of the test)."""
        made = build_adapters(self.settings, factory or default_graph_factory(self.settings), self.secrets)
        self.built.extend(made.values())
        return made

    def built_from(self, made: dict[str, Any]) -> dict[str, Any]:
        self.built.extend(made.values())
        return made

    def close(self) -> None:
        for adapter in self.built:
            if hasattr(adapter, "close"):
                adapter.close()

    def client(self) -> GraphClient:
        return GraphClient(GraphAuth(self.settings), self.settings)

    @property
    def first_message(self) -> str:
        return next(iter(self.standin.tenant.messages))


@pytest.fixture
def env() -> Iterator[Env]:
    with (
        StandIn(generate(seed=7, messages=6, files=0, events=0)) as standin,
        WebhookReceiver(secret=SECRET.encode()) as hook,
    ):
        settings = graph_settings(standin, graph_max_retries=2)
        sign_in(settings)
        secrets = WebhookSecrets()
        secrets.set("crm", SECRET)
        env = Env(standin, hook, settings, secrets)
        yield env
        env.close()


# -- one contract, every adapter ----------------------------------------------------------------------------

_STANDIN_KIND = {
    "draft_reply": "draft",
    "calendar_event": "event",
    "todo_task": "task",
    "file_document": "file",
}


@dataclass(frozen=True)
class Case:
    kind: str
    write: str  # the HTTP method of the write at Graph; "" for the webhook
    make: Callable[[Env], Any]

    def params(self, env: Env) -> tuple[str, Any]:
        params = self.make(env)
        return idempotency_key(self.kind, params, "tests:adapters"), params

    def made(self, env: Env) -> list[dict[str, Any]]:
        """Every effect the receiver ever made for this kind, removed ones included."""
        if not self.write:
            return env.hook.effects(include_retracted=True)
        kind = _STANDIN_KIND[self.kind]
        return [e for e in env.standin.tenant.effects(include_gone=True) if e["kind"] == kind]

    def live(self, env: Env) -> list[dict[str, Any]]:
        return env.hook.effects() if not self.write else [e for e in self.made(env) if not e["gone"]]

    def refuse_writes(self, env: Env) -> None:
        """503 without Retry-After to every write, before it is applied."""
        if not self.write:
            env.hook.fail_next(100, 503)
        else:
            env.standin.set_faults(Faults(rate=1.0, kinds={"unavailable": 1.0}, methods=(self.write,)))

    def accept_writes(self, env: Env) -> None:
        if not self.write:
            env.hook.clear_faults()
        else:
            env.standin.set_faults(Faults())

    def lose_next_answer(self, env: Env) -> None:
        """The next write is applied, and the connection closes before the answer."""
        if not self.write:
            env.hook.drop_after_next()
        else:
            env.standin.set_faults(
                Faults(rate=1.0, kinds={"drop_after": 1.0}, methods=(self.write,), max_faults=1)
            )


CASES = [
    Case(
        "draft_reply",
        "POST",
        lambda env: DraftReplyParams(message_id=env.first_message, body="Thanks, will do."),
    ),
    Case(
        "calendar_event",
        "POST",
        lambda env: CalendarEventParams(
            subject="Budget review",
            start="2026-11-30T10:00:00",
            end="2026-11-30T10:30:00",
            time_zone="Europe/Berlin",
            location="Room 3",
            attendees=["kim@fabrikam.example"],
        ),
    ),
    Case(
        "todo_task",
        "POST",
        lambda env: TodoTaskParams(
            title="Send the figures", body="Q4", due="2026-12-01", link_url="https://x.example/m"
        ),
    ),
    Case(
        "file_document",
        "PUT",
        lambda env: FileDocumentParams(folder="Finance/Invoices", name="summary.txt", text="Total: 1200 EUR"),
    ),
    Case(
        "webhook",
        "",
        lambda env: WebhookParams(
            url=env.hook.url, payload={"event": "invoice.approved", "amount": 1200}, secret="crm"
        ),
    ),
]
GRAPH_CASES = [c for c in CASES if c.write]


@pytest.fixture(params=CASES, ids=lambda c: c.kind)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


def test_build_adapters_covers_every_kind(env: Env) -> None:
    assert set(env.adapters()) == set(ACTION_KINDS) == set(env.built_from(build_adapters(env.settings)))
    assert all(adapter.kind == kind for kind, adapter in env.adapters().items())


def test_execute_makes_one_effect_and_a_repeat_finds_it(env: Env, case: Case) -> None:
    key, params = case.params(env)
    adapter = env.adapters()[case.kind]
    first = adapter.execute(key, params)
    again = env.adapters()[case.kind].execute(key, params)
    assert not first.existed and again.existed and again.ref == first.ref
    assert len(case.made(env)) == 1 and len(case.live(env)) == 1


def test_a_lost_answer_still_leaves_one_effect(env: Env, case: Case) -> None:
    key, params = case.params(env)
    adapter = env.adapters()[case.kind]
    case.lose_next_answer(env)
    if case.kind == "webhook":  # nothing to look up: the next attempt sends again, the receiver dedupes
        with pytest.raises(TransientError):
            adapter.execute(key, params)
        first = None
    else:  # the lookup after the ambiguous answer finds it (events: Graph's transactionId does)
        first = adapter.execute(key, params)
        assert not first.existed
    assert len(case.made(env)) == 1
    again = adapter.execute(key, params)
    assert again.existed and len(case.made(env)) == 1 and (first is None or again.ref == first.ref)


class Crash(BaseException):
    """The worker process dies (kill -9, power cut): nothing after this line runs."""


class CrashAfterWrite(GraphClient):
    """A GraphClient whose process dies right after Graph acted on a write, before the adapter returns."""

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        answer = super().request(method, url, **kwargs)
        if method.upper() != "GET":
            raise Crash
        return answer


@pytest.mark.parametrize("case", GRAPH_CASES, ids=lambda c: c.kind)
def test_a_crash_after_graph_acted_leaves_one_effect(env: Env, case: Case) -> None:
    key, params = case.params(env)
    dying = env.adapters(lambda: CrashAfterWrite(GraphAuth(env.settings), env.settings))
    with pytest.raises(Crash):
        dying[case.kind].execute(key, params)
    assert len(case.made(env)) == 1  # made, and nobody recorded it
    effect = env.adapters()[case.kind].execute(key, params)  # the restarted worker
    assert effect.existed and effect.ref == case.made(env)[0]["id"] and len(case.made(env)) == 1


def test_compensate_removes_it_and_may_be_repeated(env: Env, case: Case) -> None:
    key, params = case.params(env)
    adapter = env.adapters()[case.kind]
    effect = adapter.execute(key, params)
    adapter.compensate(key, params, effect)
    assert case.live(env) == []
    env.adapters()[case.kind].compensate(key, params, effect)  # already gone: success
    assert case.live(env) == [] and len(case.made(env)) == 1


def test_a_receiver_that_refuses_is_transient_and_makes_nothing(env: Env, case: Case) -> None:
    key, params = case.params(env)
    adapter = env.adapters()[case.kind]
    case.refuse_writes(env)
    with pytest.raises(TransientError):
        adapter.execute(key, params)
    assert case.made(env) == []
    case.accept_writes(env)
    assert not adapter.execute(key, params).existed and len(case.made(env)) == 1


# -- GraphClient's writes -----------------------------------------------------------------------------------


@pytest.fixture
def client(env: Env) -> Iterator[GraphClient]:
    graph = env.client()
    yield graph
    graph.close()


def test_a_post_whose_outcome_is_unknown_is_not_sent_again(env: Env, client: GraphClient) -> None:
    reply = f"me/messages/{quote_id(env.first_message)}/createReply"
    for kind in ("drop", "drop_after"):  # before and after Graph applied it: the client cannot tell
        env.standin.set_faults(Faults(rate=1.0, kinds={kind: 1.0}, methods=("POST",), max_faults=1))
        with pytest.raises(GraphAmbiguous):
            client.post(reply, {"comment": kind})
    env.standin.set_faults(Faults(rate=1.0, kinds={"unavailable": 1.0}, methods=("POST",), max_faults=1))
    with pytest.raises(GraphAmbiguous) as raised:
        client.post(reply, {"comment": "503"})
    assert raised.value.status == 503
    assert graph_posts(env.standin) == 3  # none of them sent twice
    assert len(env.standin.tenant.effects()) == 1  # only drop_after's was applied
    assert client.stats["ambiguous:connection"] == 2 and client.stats["ambiguous:http_503"] == 1


def test_a_post_graph_did_not_process_is_sent_again(env: Env, client: GraphClient) -> None:
    env.standin.set_faults(
        Faults(rate=1.0, kinds={"throttle": 1.0}, retry_after=0, methods=("POST",), max_faults=2)
    )
    draft = client.post(f"me/messages/{quote_id(env.first_message)}/createReply", {"comment": "ok"})
    assert (
        draft["isDraft"] and client.stats["retry:throttled"] == 2 and len(env.standin.tenant.effects()) == 1
    )


def test_a_post_that_never_connected_is_retried_then_unavailable(env: Env) -> None:
    dead = graph_settings(
        env.standin, graph_base_url=f"http://127.0.0.1:{free_port()}/v1.0", graph_max_retries=2
    )
    graph = GraphClient(GraphAuth(dead), dead)
    try:
        with pytest.raises(GraphUnavailable):
            graph.post("me/events", {"subject": "x"})
        assert graph.stats["retry:connection"] == 3 and not any(
            k.startswith("ambiguous") for k in graph.stats
        )
    finally:
        graph.close()


def test_delete_says_whether_it_deleted(env: Env, client: GraphClient) -> None:
    when = {"dateTime": "2026-11-30T10:00:00", "timeZone": "UTC"}
    first = client.post("me/events", {"subject": "a", "start": when, "end": when})["id"]
    assert client.delete(f"me/events/{quote_id(first)}") is True
    assert client.delete(f"me/events/{quote_id(first)}") is False
    second = client.post("me/events", {"subject": "b", "start": when, "end": when})["id"]
    env.standin.set_faults(Faults(rate=1.0, kinds={"drop_after": 1.0}, methods=("DELETE",), max_faults=1))
    assert client.delete(f"me/events/{quote_id(second)}") is False  # deleted, answer lost, sent again: 404
    assert env.standin.tenant.effects() == [] and client.stats["retry:connection"] == 1


# -- what is particular to each Graph adapter ---------------------------------------------------------------


def test_a_reply_draft_is_marked_and_looked_up_in_drafts_only(env: Env) -> None:
    t = env.standin.tenant
    original = next(m for m in t.messages.values() if m.cc)
    params = DraftReplyParams(message_id=original.id, body="Agreed, thanks.", reply_all=True)
    adapter = env.adapters()["draft_reply"]
    effect = adapter.execute("dp-draft-1", params)
    draft = t.messages[effect.ref]
    assert draft.is_draft and draft.folder_id == t.well_known_folder("drafts").id
    assert draft.extended == {KEY_PROPERTY: "dp-draft-1"} and draft.subject.startswith("RE: ")
    assert draft.cc and draft.body.startswith("Agreed, thanks.") and effect.detail["webLink"]
    adapter.compensate("dp-draft-1", params, effect)
    assert t.messages[effect.ref].folder_id == t.well_known_folder("deleteditems").id  # Graph's soft delete
    assert not adapter.execute("dp-draft-1", params).existed  # a deleted draft is not this action's effect


def test_a_sent_reply_cannot_be_taken_back(env: Env) -> None:
    t, adapter = env.standin.tenant, env.adapters()["draft_reply"]
    params = DraftReplyParams(message_id=env.first_message, body="Sent already")
    effect = adapter.execute("dp-draft-2", params)
    t.messages[effect.ref].is_draft = False
    t.move_message(effect.ref, t.well_known_folder("sentitems").id)
    with pytest.raises(PermanentError, match="sent"):
        adapter.compensate("dp-draft-2", params, effect)
    assert effect.ref in t.messages


def test_a_reply_to_a_missing_message_is_permanent(env: Env) -> None:
    with pytest.raises(PermanentError, match="gone"):
        env.adapters()["draft_reply"].execute(
            "dp-draft-3", DraftReplyParams(message_id="AAMkAGgone=", body="x")
        )


def test_an_event_carries_the_key_twice_and_graph_dedupes_a_lost_answer(env: Env) -> None:
    key, params = CASES[1].params(env)
    env.standin.set_faults(Faults(rate=1.0, kinds={"drop_after": 1.0}, methods=("POST",), max_faults=1))
    effect = env.adapters()["calendar_event"].execute(key, params)
    event = env.standin.tenant.events[effect.ref]
    assert event.transaction_id == key and event.extended == {KEY_PROPERTY: key}
    assert graph_posts(env.standin) == 2 and len(env.standin.tenant.events) == 1
    assert (
        event.start.isoformat() == "2026-11-30T09:00:00+00:00"
        and event.attendees[0][1] == "kim@fabrikam.example"
    )
    bad = CalendarEventParams(
        subject="x", start="2026-11-30T10:00:00", end="2026-11-30T11:00:00", time_zone="Mars/Base"
    )
    with pytest.raises(PermanentError):
        env.adapters()["calendar_event"].execute("dp-event-bad", bad)


def test_todo_tasks_go_to_the_default_or_a_named_list(env: Env) -> None:
    t, adapter = env.standin.tenant, env.adapters()["todo_task"]
    lists = {todo.display_name: todo.id for todo in t.todo_lists.values()}
    default = adapter.execute("dp-task-1", CASES[2].make(env))
    named_params = TodoTaskParams(title="Call back", list_name="follow-ups")
    named = adapter.execute("dp-task-2", named_params)
    assert (default.detail["listId"], named.detail["listId"]) == (lists["Tasks"], lists["Follow-ups"])
    task = t.tasks[default.ref]
    assert task.due == "2026-12-01T00:00:00" and task.body == "Q4"
    assert task.linked[0] | {"id": ""} == {
        "id": "",
        "applicationName": "Deskpilot",
        "externalId": "dp-task-1",
        "displayName": "Send the figures",
        "webUrl": "https://x.example/m",
    }
    adapter.compensate("dp-task-2", named_params, Effect(ref=named.ref))  # no listId: found again by name
    assert named.ref not in t.tasks
    with pytest.raises(PermanentError, match="no To Do list"):
        adapter.execute("dp-task-3", TodoTaskParams(title="x", list_name="Nope"))
    with pytest.raises(PermanentError, match="ISO date"):
        adapter.execute("dp-task-4", TodoTaskParams(title="x", due="next friday"))


def test_a_file_is_never_written_over_someone_elses(env: Env) -> None:
    t, adapter = env.standin.tenant, env.adapters()["file_document"]
    docs = t.add_drive_folder("Docs")
    theirs = t.add_file("plan.md", b"their plan", parent_id=docs.id)
    with pytest.raises(PermanentError, match="different item"):
        adapter.execute("dp-file-1", FileDocumentParams(folder="Docs", name="plan.md", text="our plan"))
    assert t.files[theirs.id].content == b"their plan"
    same = adapter.execute(
        "dp-file-2", FileDocumentParams(folder="/Docs/", name="PLAN.md", text="their plan")
    )
    assert same.existed and same.ref == theirs.id  # the same bytes at the path: that is the file

    params = FileDocumentParams(
        folder="Docs", name="logo.png", content_b64=base64.b64encode(b"\x89PNG").decode()
    )
    effect = adapter.execute("dp-file-3", params)
    assert t.files[effect.ref].content == b"\x89PNG" and effect.detail["path"] == "Docs/logo.png"
    t.change_file(effect.ref, b"edited by a person")
    with pytest.raises(PermanentError, match="changed"):
        adapter.compensate("dp-file-3", params, effect)
    assert effect.ref in t.files
    for bad in (
        FileDocumentParams(folder="Docs", name="a.txt"),
        FileDocumentParams(folder="Docs", name="a.txt", text="x", content_b64="eA=="),
        FileDocumentParams(folder="Docs", name="a:b.txt", text="x"),
        FileDocumentParams(folder="Docs", name="a.txt", content_b64="not base64!"),
    ):
        with pytest.raises(PermanentError):
            adapter.execute("dp-file-bad", bad)


# -- webhooks ----------------------------------------------------------------------------------------------


def hook_params(env: Env, **changes: Any) -> WebhookParams:
    values: dict[str, Any] = {"url": env.hook.url, "payload": {"event": "invoice.approved"}, "secret": "crm"}
    return WebhookParams(**(values | changes))


def test_a_webhook_is_signed_and_a_wrong_secret_is_permanent(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = env.adapters()["webhook"]
    effect = adapter.execute("dp-hook-1", hook_params(env))
    assert effect.ref == "dlv_0001" and effect.detail["status"] == 200
    assert env.hook.effects()[0]["payload"] == {"event": "invoice.approved"}
    with WebhookReceiver(secret=b"another secret") as other:
        with pytest.raises(PermanentError, match="401"):
            adapter.execute("dp-hook-2", hook_params(env, url=other.url))
        assert other.effects() == [] and other.deliveries[0]["status"] == 401
    stale = WebhookAdapter(env.secrets, clock=lambda: 1_000_000_000)  # 2001: a replayed delivery
    env.built.append(stale)
    with pytest.raises(PermanentError, match="401"):
        stale.execute("dp-hook-3", hook_params(env))
    assert SECRET not in caplog.text and "sha256=" not in caplog.text


def test_a_webhook_secret_must_exist_and_unsigned_hooks_stay_unsigned(env: Env) -> None:
    adapter = env.adapters()["webhook"]
    with pytest.raises(PermanentError, match="no webhook secret named 'erp'"):
        adapter.execute("dp-hook-4", hook_params(env, secret="erp"))
    assert env.hook.deliveries == []  # refused before anything was sent
    with WebhookReceiver() as open_hook:
        adapter.execute("dp-hook-5", hook_params(env, url=open_hook.url, secret=None))
        assert len(open_hook.effects()) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(408, TransientError), (429, TransientError), (500, TransientError), (503, TransientError),
     (400, PermanentError), (401, PermanentError), (404, PermanentError), (422, PermanentError)],
)  # fmt: skip
def test_webhook_statuses_are_transient_or_permanent(env: Env, status: int, error: type[Exception]) -> None:
    env.hook.fail_next(1, status)
    with pytest.raises(error, match=str(status)):
        env.adapters()["webhook"].execute("dp-hook-6", hook_params(env))
    assert env.hook.effects() == []


def test_webhook_failures_that_are_not_statuses(env: Env) -> None:
    adapter = env.adapters()["webhook"]
    with pytest.raises(TransientError):  # connection refused
        adapter.execute("dp-hook-7", hook_params(env, url=f"http://127.0.0.1:{free_port()}/hooks"))
    env.hook.drop_next()
    with pytest.raises(TransientError):  # dropped before it was applied
        adapter.execute("dp-hook-7", hook_params(env))
    env.hook.fail_always("/hooks/broken", 400)
    for _ in range(2):
        with pytest.raises(PermanentError):
            adapter.execute("dp-hook-8", hook_params(env, url=env.hook.url + "/broken"))
    with pytest.raises(PermanentError, match="http or https"):
        adapter.execute("dp-hook-9", hook_params(env, url="ftp://127.0.0.1/x"))
    assert env.hook.effects() == []


def test_a_409_duplicate_is_done_and_a_retraction_is_sent_once(env: Env) -> None:
    with WebhookReceiver(secret=SECRET.encode(), duplicate_status=409) as hook:
        adapter, params = env.adapters()["webhook"], hook_params(env, url=hook.url)
        first, again = adapter.execute("dp-hook-10", params), adapter.execute("dp-hook-10", params)
        assert (first.existed, again.existed, again.detail["status"]) == (False, True, 409)
        adapter.compensate("dp-hook-10", params, first)
        adapter.compensate("dp-hook-10", params, first)
        assert hook.effects() == [] and hook.effects(include_retracted=True)[0]["retracted"]
        assert hook.retractions == [{"key": "dp-hook-10:retract", "target": "dp-hook-10", "path": "/hooks"}]
        assert [d["key"] for d in hook.deliveries] == ["dp-hook-10"] * 2 + ["dp-hook-10:retract"] * 2
        assert RETRACTED == "deskpilot.action.retracted"


# -- webhook secrets live in the keyring --------------------------------------------------------------------


def test_webhook_secrets_in_the_keyring(env: Env, vault: Path) -> None:  # noqa: F811 (the fixture)
    secrets = WebhookSecrets()
    secrets.set("erp", "s-erp")
    assert secrets.get("erp") == b"s-erp" and "s-erp" in vault.read_text()  # the test vault is the keyring
    assert secrets.delete("erp") is True and secrets.delete("erp") is False
    with pytest.raises(PermanentError, match="'erp'"):
        secrets.get("erp")
    assert "s-erp" not in repr(secrets) and "erp" not in repr(secrets)


def test_webhook_secrets_refuse_a_plaintext_keyring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_keyring(monkeypatch, "keyrings.alt.file.PlaintextKeyring", tmp_path)
    with pytest.raises(InsecureKeyringError):
        WebhookSecrets().set("erp", "s-erp")
    WebhookSecrets(allow_insecure=True).set("erp", "s-erp")
    assert WebhookSecrets().get("erp") == b"s-erp"
