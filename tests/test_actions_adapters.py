"""Action adapters against real receivers on 127.0.0.1, beyond their contract: what is particular to each
Graph adapter, and the webhook's signatures, statuses and secrets. The contract every adapter meets (one
effect per idempotency key, compensation, refusals, crashes) is tests/contracts/test_action_adapters.py;
GraphClient's own retry policy is tests/contracts/test_graph_transport.py. Faults come from the
receivers, not from mocks."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from graph_helpers import use_keyring, vault  # noqa: F401
from receivers import SECRET, Env, env_fixture, graph_posts  # noqa: F401 (env_fixture: `env`)
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
)
from deskpilot.server.actions.destinations import Destinations
from deskpilot.server.connectors.standin import Faults
from deskpilot.server.connectors.tokens import InsecureKeyringError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("vault")]


def test_build_adapters_covers_every_kind(env: Env) -> None:
    assert set(env.adapters()) == set(ACTION_KINDS) == set(env.built_from(build_adapters(env.settings)))
    assert all(adapter.kind == kind for kind, adapter in env.adapters().items())


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
    params = CalendarEventParams(
        subject="Budget review",
        start="2026-11-30T10:00:00",
        end="2026-11-30T10:30:00",
        time_zone="Europe/Berlin",
        location="Room 3",
        attendees=["kim@fabrikam.example"],
    )
    key = idempotency_key("calendar_event", params, "tests:adapters")
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
    default_params = TodoTaskParams(
        title="Send the figures", body="Q4", due="2026-12-01", link_url="https://x.example/m"
    )
    default = adapter.execute("dp-task-1", default_params)
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
    effect = env.adapters()["webhook"].execute("dp-hook-1", hook_params(env))
    assert effect.ref == "dlv_0001" and effect.detail["status"] == 200
    assert env.hook.effects()[0]["payload"] == {"event": "invoice.approved"}
    with WebhookReceiver(secret=b"another secret") as other:
        env.allow(other.url)
        with pytest.raises(PermanentError, match="401"):
            env.adapters()["webhook"].execute("dp-hook-2", hook_params(env, url=other.url))
        assert other.effects() == [] and other.deliveries[0]["status"] == 401
    destinations = Destinations.from_settings(env.settings)
    stale = WebhookAdapter(env.secrets, destinations=destinations, clock=lambda: 1_000_000_000)  # 2001
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
        env.allow(open_hook.url)
        env.adapters()["webhook"].execute("dp-hook-5", hook_params(env, url=open_hook.url, secret=None))
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
    nobody = f"http://127.0.0.1:{free_port()}/hooks"
    env.allow(nobody)
    adapter = env.adapters()["webhook"]
    with pytest.raises(TransientError):  # connection refused
        adapter.execute("dp-hook-7", hook_params(env, url=nobody))
    env.hook.drop_next()
    with pytest.raises(TransientError):  # dropped before it was applied
        adapter.execute("dp-hook-7", hook_params(env))
    env.hook.fail_always("/hooks/broken", 400)
    for _ in range(2):
        with pytest.raises(PermanentError):
            adapter.execute("dp-hook-8", hook_params(env, url=env.hook.url + "/broken"))
    with pytest.raises(PermanentError, match="must be https"):
        adapter.execute("dp-hook-9", hook_params(env, url="ftp://127.0.0.1/x"))
    assert env.hook.effects() == []


def test_a_409_duplicate_is_done_and_a_retraction_is_sent_once(env: Env) -> None:
    with WebhookReceiver(secret=SECRET.encode(), duplicate_status=409) as hook:
        env.allow(hook.url)
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
