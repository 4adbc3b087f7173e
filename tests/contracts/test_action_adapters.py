"""The action adapter contract (`deskpilot.server.actions._types.ActionAdapter`), run over every adapter.

What the outbox relies on: one effect per idempotency key, whatever is lost in between (an answer, the
process); compensating removes it and may be repeated; a receiver that refuses makes a `TransientError`
and nothing else. Each adapter gets a fresh instance per attempt, as a restarted worker would, over the
same receiver.

Adapters: the five real ones against real receivers on 127.0.0.1 (`integration`): the Graph stand-in
through the real GraphClient for reply drafts, events, To Do tasks and OneDrive files, and a webhook
receiver that checks signatures. And `FakeAdapter` over its in-memory `FakeReceiver` (`unit`), which the
outbox and workflow tests use in their place. Faults come from the receivers, not from mocks; the one
test double is a GraphClient that "dies" right after Graph acted, handed to the adapters through their
factory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from fakes import FakeAdapter
from graph_helpers import vault  # noqa: F401 (a fixture)
from receivers import Env, env_fixture  # noqa: F401 (the fixture `env`)

from deskpilot.server.actions._types import (
    ActionAdapter,
    CalendarEventParams,
    DraftReplyParams,
    FileDocumentParams,
    TodoTaskParams,
    TransientError,
    WebhookParams,
    idempotency_key,
)
from deskpilot.server.actions.adapters import WebhookSecrets
from deskpilot.server.connectors.auth import GraphAuth
from deskpilot.server.connectors.graph import GraphClient
from deskpilot.server.connectors.standin import Faults
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.usefixtures("vault")

_STANDIN_KIND = {
    "draft_reply": "draft",
    "calendar_event": "event",
    "todo_task": "task",
    "file_document": "file",
}


@dataclass(frozen=True)
class Case:
    """One adapter, its receiver, and how to observe and disturb that receiver."""

    kind: str
    receiver: Literal["graph", "webhook", "fake"]
    make: Callable[[Env], Any]
    write: str = ""  # the HTTP method of the write at Graph

    @property
    def name(self) -> str:
        return "fake" if self.receiver == "fake" else self.kind

    def params(self, env: Env) -> tuple[str, Any]:
        params = self.make(env)
        return idempotency_key(self.kind, params, "tests:adapters"), params

    def adapter(self, env: Env) -> ActionAdapter:
        """A fresh adapter over the same receiver, as a new worker process would build it."""
        if self.receiver == "fake":
            fake: Any = env.built_from({self.kind: FakeAdapter(self.kind, env.fake)})
            return fake[self.kind]  # type: ignore[no-any-return]
        return env.adapters()[self.kind]  # type: ignore[no-any-return]

    def made(self, env: Env) -> list[dict[str, Any]]:
        """Every effect the receiver ever made for this kind, removed ones included."""
        if self.receiver == "webhook":
            return env.hook.effects(include_retracted=True)
        if self.receiver == "fake":
            return list(env.fake.made)
        kind = _STANDIN_KIND[self.kind]
        return [e for e in env.standin.tenant.effects(include_gone=True) if e["kind"] == kind]

    def live(self, env: Env) -> list[dict[str, Any]]:
        if self.receiver == "webhook":
            return env.hook.effects()
        return [e for e in self.made(env) if not e["gone"]]

    def refuse_writes(self, env: Env) -> None:
        """A 503 without Retry-After (or the fake's TransientError) to every write, before it is applied."""
        if self.receiver == "webhook":
            env.hook.fail_next(100, 503)
        elif self.receiver == "fake":
            env.fake.always_fail = TransientError
        else:
            env.standin.set_faults(Faults(rate=1.0, kinds={"unavailable": 1.0}, methods=(self.write,)))

    def accept_writes(self, env: Env) -> None:
        if self.receiver == "webhook":
            env.hook.clear_faults()
        elif self.receiver == "fake":
            env.fake.always_fail = None
        else:
            env.standin.set_faults(Faults())

    def lose_next_answer(self, env: Env) -> None:
        """The next write is applied, and the connection closes before the answer."""
        if self.receiver == "webhook":
            env.hook.drop_after_next()
        elif self.receiver == "fake":
            env.fake.lose_answers = 1
        else:
            env.standin.set_faults(
                Faults(rate=1.0, kinds={"drop_after": 1.0}, methods=(self.write,), max_faults=1)
            )


CASES = [
    Case(
        "draft_reply",
        "graph",
        lambda env: DraftReplyParams(message_id=env.first_message, body="Thanks, will do."),
        "POST",
    ),
    Case(
        "calendar_event",
        "graph",
        lambda env: CalendarEventParams(
            subject="Budget review",
            start="2026-11-30T10:00:00",
            end="2026-11-30T10:30:00",
            time_zone="Europe/Berlin",
            location="Room 3",
            attendees=["kim@fabrikam.example"],
        ),
        "POST",
    ),
    Case(
        "todo_task",
        "graph",
        lambda env: TodoTaskParams(
            title="Send the figures", body="Q4", due="2026-12-01", link_url="https://x.example/m"
        ),
        "POST",
    ),
    Case(
        "file_document",
        "graph",
        lambda env: FileDocumentParams(folder="Finance/Invoices", name="summary.txt", text="Total: 1200 EUR"),
        "PUT",
    ),
    Case(
        "webhook",
        "webhook",
        lambda env: WebhookParams(
            url=env.hook.url, payload={"event": "invoice.approved", "amount": 1200}, secret="crm"
        ),
    ),
    Case("todo_task", "fake", lambda env: TodoTaskParams(title="Send the figures", due="2026-12-01")),
]


def _param(case: Case) -> Any:
    tier = pytest.mark.unit if case.receiver == "fake" else pytest.mark.integration
    return pytest.param(case, id=case.name, marks=tier)


@pytest.fixture(params=[_param(c) for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def receivers(case: Case, request: pytest.FixtureRequest) -> Iterator[Env]:
    """The real receivers (the stand-in and the webhook receiver, `receivers.env`) for a real adapter;
    for the fake, its in-memory receiver only, with no server started."""
    if case.receiver != "fake":
        yield request.getfixturevalue("env")
        return
    fake_only = Env(standin=None, hook=None, settings=load_settings(), secrets=WebhookSecrets())  # type: ignore[arg-type]
    yield fake_only
    fake_only.close()


def test_execute_makes_one_effect_and_a_repeat_finds_it(receivers: Env, case: Case) -> None:
    key, params = case.params(receivers)
    first = case.adapter(receivers).execute(key, params)
    again = case.adapter(receivers).execute(key, params)
    assert not first.existed and again.existed and again.ref == first.ref
    assert len(case.made(receivers)) == 1 and len(case.live(receivers)) == 1


def test_a_lost_answer_still_leaves_one_effect(receivers: Env, case: Case) -> None:
    key, params = case.params(receivers)
    adapter = case.adapter(receivers)
    case.lose_next_answer(receivers)
    if case.receiver == "graph":  # the lookup after the ambiguous answer finds it (events: transactionId)
        first = adapter.execute(key, params)
        assert not first.existed
    else:  # nothing to look up: the next attempt sends again, and the receiver dedupes
        with pytest.raises(TransientError):
            adapter.execute(key, params)
        first = None
    assert len(case.made(receivers)) == 1
    again = adapter.execute(key, params)
    assert again.existed and len(case.made(receivers)) == 1 and (first is None or again.ref == first.ref)


def test_compensate_removes_it_and_may_be_repeated(receivers: Env, case: Case) -> None:
    key, params = case.params(receivers)
    adapter = case.adapter(receivers)
    effect = adapter.execute(key, params)
    adapter.compensate(key, params, effect)
    assert case.live(receivers) == []
    case.adapter(receivers).compensate(key, params, effect)  # already gone: success
    assert case.live(receivers) == [] and len(case.made(receivers)) == 1


def test_a_receiver_that_refuses_is_transient_and_makes_nothing(receivers: Env, case: Case) -> None:
    key, params = case.params(receivers)
    adapter = case.adapter(receivers)
    case.refuse_writes(receivers)
    with pytest.raises(TransientError):
        adapter.execute(key, params)
    assert case.made(receivers) == []
    case.accept_writes(receivers)
    assert not adapter.execute(key, params).existed and len(case.made(receivers)) == 1


# -- a crash between Graph acting and the adapter returning (Graph adapters) ---------------------------------


class Crash(BaseException):
    """The worker process dies (kill -9, power cut): nothing after this line runs."""


class CrashAfterWrite(GraphClient):
    """A GraphClient whose process dies right after Graph acted on a write, before the adapter returns."""

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        answer = super().request(method, url, **kwargs)
        if method.upper() != "GET":
            raise Crash
        return answer


@pytest.mark.parametrize("case", [_param(c) for c in CASES if c.receiver == "graph"])
def test_a_crash_after_graph_acted_leaves_one_effect(env: Env, case: Case) -> None:
    key, params = case.params(env)
    dying = env.adapters(lambda: CrashAfterWrite(GraphAuth(env.settings), env.settings))
    with pytest.raises(Crash):
        dying[case.kind].execute(key, params)
    assert len(case.made(env)) == 1  # made, and nobody recorded it
    effect = case.adapter(env).execute(key, params)  # the restarted worker
    assert effect.existed and effect.ref == case.made(env)[0]["id"] and len(case.made(env)) == 1
